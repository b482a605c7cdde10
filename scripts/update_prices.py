#!/usr/bin/env python3
"""Regenerates honeyhive-runtime/data/genai-prices.json, the built-in price snapshot.

The data is pydantic's genai-prices (https://pypi.org/project/genai-prices/, MIT; the licence is
copied next to the snapshot). One command updates it:

    scripts/update_prices.py              # newest genai-prices from PyPI, in a throwaway venv
    scripts/update_prices.py 0.2.3        # a pinned version

The package carries its data as Python objects (genai_prices/data.py); this reads them and writes
the same providers in the JSON shape of the project's own data.json (what `UpdatePrices` fetches,
and what `PriceTable::from_path` also reads), reduced to what honeyhive-runtime prices:

- per model: id, its match clauses, and the token prices (input, output, cache read, cache write,
  reasoning output), flat or tiered by input tokens, and any per-request fee;
- per provider: id, name, the clauses that find it by provider name or by model name, and the
  providers it falls back to (Azure -> OpenAI, ...);
- dated prices: the one in force on the snapshot date, any that start later, and time-of-day
  windows (DeepSeek's peak hours); superseded ones are dropped;
- dropped: usage extractors, descriptions, request-tier variants (flex/priority), and audio,
  image and search prices, which honeyhive-runtime does not count.

Models without any token price are kept (with no prices) so that a name still matches them first,
as in genai-prices, and gets no cost rather than another model's.

Then it checks the result: every model's names (its `equals` and `starts_with` rules), with and
without its provider, for a short and a long prompt with cache and reasoning tokens, priced by
honeyhive-runtime (`cargo run --example prices`) and by the package's own `calc_price`, must cost
the same, or both nothing. The one difference allowed: a `provider/model` name without a provider,
which genai-prices does not resolve and honeyhive-runtime prices as that provider's model.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "honeyhive-runtime" / "data"
PRICE_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
)


def main() -> None:
    if sys.argv[1:] == ["--in-venv"]:
        generate()
        verify()
        return
    version = sys.argv[1] if len(sys.argv) > 1 else None
    # Re-run this script inside a throwaway venv that has the package.
    with tempfile.TemporaryDirectory(prefix="genai-prices-") as venv:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        pip = pathlib.Path(venv, "bin", "pip")
        spec = f"genai-prices=={version}" if version else "genai-prices"
        subprocess.run([pip, "install", "--quiet", "--disable-pip-version-check", spec], check=True)
        subprocess.run([pathlib.Path(venv, "bin", "python"), __file__, "--in-venv"], check=True)


def generate() -> None:
    import importlib.metadata

    from genai_prices import types as t
    from genai_prices.data import providers

    today = datetime.datetime.now(datetime.timezone.utc).date()
    version = importlib.metadata.version("genai-prices")

    def clause(c: object) -> dict:
        if isinstance(c, t.ClauseOr):
            return {"or": [clause(x) for x in c.or_]}
        if isinstance(c, t.ClauseAnd):
            return {"and": [clause(x) for x in c.and_]}
        for kind in ("equals", "starts_with", "ends_with", "contains", "regex"):
            if hasattr(c, kind):
                return {kind: getattr(c, kind)}
        raise SystemExit(f"unknown match clause {c!r}: update this script")

    def number(d) -> float | int:
        return int(d) if d == d.to_integral_value() else float(d)

    def price(v) -> object:
        if isinstance(v, t.TieredPrices):
            return {"base": number(v.base), "tiers": [{"start": x.start, "price": number(x.price)} for x in v.tiers]}
        return number(v)

    def prices(mp: t.ModelPrice) -> dict:
        return {k: price(getattr(mp, k)) for k in PRICE_KEYS if getattr(mp, k) is not None}

    def model_prices(m: t.ModelInfo) -> object:
        if isinstance(m.prices, t.ModelPrice):
            return prices(m.prices)
        # genai-prices uses the last entry in force, else the first: keep the one in force by date
        # today, and the later ones (future dates, time-of-day windows).
        current = 0
        for i, c in enumerate(m.prices):
            if c.constraint is None or (
                isinstance(c.constraint, t.StartDateConstraint) and c.constraint.start_date <= today
            ):
                current = i
        kept = m.prices[current:]
        if len(kept) == 1:
            return prices(kept[0].prices)
        out = []
        for i, c in enumerate(kept):
            entry: dict = {"prices": prices(c.prices)}
            if i > 0 and isinstance(c.constraint, t.StartDateConstraint):
                entry["constraint"] = {"start_date": c.constraint.start_date.isoformat()}
            elif i > 0 and isinstance(c.constraint, t.TimeOfDateConstraint):
                utc = datetime.timezone.utc
                entry["constraint"] = {
                    k: datetime.datetime.combine(today, v).astimezone(utc).strftime("%H:%M:%SZ")
                    for k, v in (("start_time", c.constraint.start_time), ("end_time", c.constraint.end_time))
                }
            out.append(entry)
        return out

    out_providers = []
    for p in providers:
        entry: dict = {"id": p.id, "name": p.name}
        if p.provider_match is not None:
            entry["provider_match"] = clause(p.provider_match)
        if p.model_match is not None:
            entry["model_match"] = clause(p.model_match)
        if p.fallback_model_providers:
            entry["fallback_model_providers"] = p.fallback_model_providers
        entry["models"] = [{"id": m.id, "match": clause(m.match), "prices": model_prices(m)} for m in p.models]
        out_providers.append(entry)

    snapshot = {
        "source": f"genai-prices {version} (https://pypi.org/project/genai-prices/), reduced by scripts/update_prices.py",
        "snapshot_date": today.isoformat(),
        "license": "MIT, Copyright (c) Pydantic Services Inc. 2025 to present; see genai-prices.LICENSE",
        "providers": out_providers,
    }
    DATA.mkdir(parents=True, exist_ok=True)
    # One model per line: small diffs between snapshots, and no pretty-printed megabyte.
    def compact(v: object) -> str:
        return json.dumps(v, separators=(",", ":"))

    def provider_text(p: dict) -> str:
        head = compact({k: v for k, v in p.items() if k != "models"})[:-1]
        models = ",\n".join(compact(m) for m in p["models"])
        return f'{head},"models":[\n{models}\n]}}'

    head = json.dumps({k: v for k, v in snapshot.items() if k != "providers"}, indent=1)[:-2]
    body = ",\n".join(provider_text(p) for p in out_providers)
    (DATA / "genai-prices.json").write_text(f'{head},\n "providers": [\n{body}\n]}}\n')
    licence = next(f for f in importlib.metadata.files("genai-prices") if f.name == "LICENSE")
    (DATA / "genai-prices.LICENSE").write_text(licence.read_text())
    n = sum(len(p["models"]) for p in out_providers)
    print(f"wrote {DATA / 'genai-prices.json'}: genai-prices {version}, {len(out_providers)} providers, {n} models, {today}")


def verify() -> None:
    import warnings

    from genai_prices import Usage, calc_price
    from genai_prices import types as t
    from genai_prices.data import providers

    def names(c: object):
        if isinstance(c, t.ClauseEquals):
            yield c.equals
        elif isinstance(c, t.ClauseStartsWith):
            yield c.starts_with
        for x in getattr(c, "or_", []):
            yield from names(x)

    usages = [(3_000, 1_000, 500, 100, 300), (300_000, 2_000, 50_000, 10_000, 1_500)]
    now = datetime.datetime.now(datetime.timezone.utc)
    cases, expected = [], []
    warnings.simplefilter("ignore")
    for p in providers:
        for m in p.models:
            for name in list(names(m.match))[:3]:
                if any(c.isspace() for c in name):
                    continue
                for provider in (p.id, None):
                    for i, o, cr, cw, r in usages:
                        usage = Usage(
                            input_tokens=i,
                            output_tokens=o,
                            cache_read_tokens=cr,
                            cache_write_tokens=cw,
                            output_reasoning_tokens=r,
                        )
                        try:
                            cost = float(calc_price(usage, name, provider_id=provider, genai_request_timestamp=now).total_price)
                        except LookupError:
                            cost = None
                        except ValueError:
                            continue  # a price this usage cannot be priced with (genai-prices says why)
                        cases.append(f"{provider or '-'} {name} {i} {o} {cr} {cw} {r}")
                        expected.append(cost)
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "honeyhive-examples", "--example", "prices"],
        cwd=ROOT,
        input="\n".join(cases) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == len(cases), (len(out), len(cases))
    agree, extension, bad = 0, 0, []
    for case, want, line in zip(cases, expected, out):
        result = line.split(" -> ", 1)[1].split()
        ours = None if result == ["none"] else float(result[0])
        if want is None and ours is None:
            agree += 1
        elif want is None and case.startswith("- ") and "/" in case.split()[1]:
            extension += 1
        elif want is None or ours is None or abs(ours - want) > 1e-12 + 1e-9 * want:
            bad.append(f"{case}: honeyhive-runtime {ours}, genai-prices {want}")
        else:
            agree += 1
    print(f"checked {len(cases)} calls: {agree} agree with genai-prices, {extension} provider/model names priced")
    if bad:
        sys.exit(f"{len(bad)} differences from genai-prices:\n  " + "\n  ".join(bad[:50]))


if __name__ == "__main__":
    main()
