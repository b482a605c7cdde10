#!/usr/bin/env python3
"""Our cost for a fixed set of LLM calls against what Arize Phoenix computes for the same calls.

Run with the Python that has arize-phoenix installed (scripts/phoenix_e2e.sh runs it with its
venv). Our costs come from `cargo run -p honeyhive-examples --example prices` (the built-in
genai-prices snapshot, priced the way spans are). Phoenix's come from its own code and table:
the manifest it loads at startup (phoenix/server/cost_tracking/model_cost_manifest.json, from
LiteLLM), its model lookup (CostModelLookup: name regex, provider, specificity) and its cost
calculator (SpanCostDetailsCalculator), fed the OpenInference attributes our spans carry
(llm.model_name, llm.provider, llm.token_count.prompt / completion and their cache-read,
cache-write and reasoning details).

Calls whose model one side does not price are listed and skipped; a cost that differs by more
than rounding fails the check, unless the datasets are known to disagree on that model's price
(KNOWN_DIFFERENCES, each with the reason). Exits 0 when every call both sides price agrees, and at least
MIN_COMPARED calls were compared.

    target/phoenix-venv/bin/python scripts/phoenix_cost_check.py
"""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MIN_COMPARED = 10

# (GenAI provider name we record, OpenInference provider Phoenix sees, model, input, output,
#  cache read, cache write, reasoning). Input includes cached tokens, output reasoning ones.
PLAIN = (12_000, 800, 0, 0, 0)
CACHED = (12_000, 800, 9_000, 0, 0)
CACHE_WRITE = (12_000, 800, 6_000, 2_000, 0)
REASONING = (3_000, 5_000, 0, 0, 4_200)
LONG = (250_000, 2_000, 0, 0, 0)
CASES = [
    ("openai", "openai", "gpt-4o", *PLAIN),
    ("openai", "openai", "gpt-4o", *CACHED),
    ("openai", "openai", "gpt-4o-mini", *CACHED),
    ("openai", "openai", "gpt-4.1", *CACHED),
    ("openai", "openai", "gpt-4.1-mini", *CACHED),
    ("openai", "openai", "gpt-4.1-nano", *PLAIN),
    ("openai", "openai", "o3", *REASONING),
    ("openai", "openai", "o4-mini", *REASONING),
    ("openai", "openai", "o3-mini", *REASONING),
    ("openai", "openai", "gpt-5", *REASONING),
    ("openai", "openai", "gpt-5-mini", *CACHED),
    ("openai", "openai", "gpt-5-nano", *PLAIN),
    ("openai", "openai", "text-embedding-3-small", 5_000, 0, 0, 0, 0),
    ("anthropic", "anthropic", "claude-sonnet-4-5", *CACHE_WRITE),
    ("anthropic", "anthropic", "claude-sonnet-4-5", *LONG),
    ("anthropic", "anthropic", "claude-sonnet-4", *CACHE_WRITE),
    ("anthropic", "anthropic", "claude-opus-4-1", *CACHE_WRITE),
    ("anthropic", "anthropic", "claude-haiku-4-5", *CACHE_WRITE),
    ("anthropic", "anthropic", "claude-3-5-haiku", *PLAIN),
    ("gcp.gemini", "google", "gemini-2.5-pro", *PLAIN),
    ("gcp.gemini", "google", "gemini-2.5-pro", *LONG),
    ("gcp.gemini", "google", "gemini-2.5-flash", *CACHED),
    ("gcp.gemini", "google", "gemini-2.5-flash-lite", *PLAIN),
    ("gcp.gemini", "google", "gemini-2.0-flash", *PLAIN),
    ("mistral_ai", "mistralai", "mistral-large-2512", *PLAIN),
    ("mistral_ai", "mistralai", "mistral-large-latest", *PLAIN),
    ("mistral_ai", "mistralai", "mistral-small-latest", *PLAIN),
    ("deepseek", "deepseek", "deepseek-chat", *PLAIN),
    ("x_ai", "xai", "grok-4", *PLAIN),
]

# Where the two datasets disagree on a price, not on how to compute it: shown, not failed. A
# difference that goes away is shown too, so the entry can be dropped.
KNOWN_DIFFERENCES = {
    "mistral-large-latest": "genai-prices still maps the alias to Mistral Large 2 ($2/$6 per "
    "million); LiteLLM, hence Phoenix, to Mistral Large 3 (mistral-large-2512, $0.50/$1.50)",
}


def ours() -> list[float | None]:
    """Our cost per case, from the `prices` example."""
    lines = "".join(f"{c[0]} {c[2]} {' '.join(map(str, c[3:]))}\n" for c in CASES)
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "honeyhive-examples", "--example", "prices"],
        cwd=ROOT,
        input=lines,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        sys.exit(f"phoenix_cost_check: the prices example failed:\n{out.stderr}")
    sys.stderr.write(out.stderr)
    costs: list[float | None] = []
    for line in out.stdout.splitlines():
        result = line.split(" -> ", 1)[1].split()
        costs.append(None if result == ["none"] else float(result[0]))
    if len(costs) != len(CASES):
        sys.exit(f"phoenix_cost_check: {len(costs)} costs for {len(CASES)} calls:\n{out.stdout}")
    return costs


def phoenix():
    """Phoenix's lookup and calculator over its built-in manifest, as its server builds them."""
    import re

    import phoenix as px
    from phoenix.db import models
    from phoenix.db.types.token_price_customization import TokenPriceCustomizationParser
    from phoenix.server.cost_tracking.cost_details_calculator import SpanCostDetailsCalculator
    from phoenix.server.cost_tracking.cost_model_lookup import CostModelLookup

    manifest_path = pathlib.Path(px.__file__).parent / "server" / "cost_tracking" / "model_cost_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    built: list = []
    for i, m in enumerate(manifest["models"], start=1):
        model = models.GenerativeModel(
            id=i,
            name=m["name"],
            provider=str(m.get("provider") or "").strip(),
            name_pattern=re.compile(str(m.get("name_pattern") or "").strip()),
            is_built_in=True,
            start_time=None,
        )
        model.token_prices = [
            models.TokenPrice(
                token_type=p["token_type"],
                is_prompt=p["is_prompt"],
                base_rate=p["base_rate"],
                customization=TokenPriceCustomizationParser.parse(p.get("customization")),
            )
            for p in m["token_prices"]
            if p.get("base_rate")
        ]
        built.append(model)
    lookup = CostModelLookup(built)
    version = getattr(px, "__version__", "?")
    return version, lookup, SpanCostDetailsCalculator


def attributes(oi_provider: str, model: str, i: int, o: int, cr: int, cw: int, r: int) -> dict:
    """The OpenInference attributes of our span for the call, nested as Phoenix reads them."""
    token_count: dict = {"prompt": i, "completion": o, "total": i + o}
    prompt_details = {k: v for k, v in (("cache_read", cr), ("cache_write", cw)) if v}
    if prompt_details:
        token_count["prompt_details"] = prompt_details
    if r:
        token_count["completion_details"] = {"reasoning": r}
    return {"llm": {"model_name": model, "provider": oi_provider, "token_count": token_count}}


def main() -> None:
    version, lookup, calculator = phoenix()
    our_costs = ours()
    now = datetime.datetime.now(datetime.timezone.utc)
    compared, known_count, skipped, failed = 0, 0, [], []
    for case, our in zip(CASES, our_costs):
        _, oi_provider, model, *tokens = case
        attrs = attributes(oi_provider, model, *tokens)
        found = lookup.find_model(now, attrs)
        label = f"{model} {tokens}"
        if found is None or our is None:
            who = "Phoenix prices" if found is None else "we price"
            skipped.append(f"{label}: {who} no such model")
            continue
        details = calculator(found.token_prices).calculate_details(attrs)
        theirs = sum(d.cost or 0.0 for d in details)
        ok = abs(our - theirs) <= 1e-12 + 1e-9 * max(abs(our), abs(theirs))
        line = f"{label}: ours {our:.10g}, Phoenix {theirs:.10g} (its model {found.name})"
        known = KNOWN_DIFFERENCES.get(model)
        if known and not ok:
            print(f"  known {line}: {known}")
            known_count += 1
            continue
        print(("  ok   " if ok else "  DIFF ") + line + (" (listed as a known difference)" if known else ""))
        compared += 1
        if not ok:
            failed.append(line)
    for s in skipped:
        print(f"  skip {s}")
    print(
        f"phoenix_cost_check: arize-phoenix {version}: {compared} calls compared, {len(failed)} differ, "
        f"{known_count} known differences, {len(skipped)} skipped"
    )
    if failed:
        sys.exit("phoenix_cost_check: FAIL: our cost differs from Phoenix's for:\n  " + "\n  ".join(failed))
    if compared < MIN_COMPARED:
        sys.exit(f"phoenix_cost_check: FAIL: only {compared} calls compared (want {MIN_COMPARED})")


if __name__ == "__main__":
    main()
