#!/usr/bin/env python3
"""Checks the simulated RAG trace (examples/src/lib.rs) as Arize Phoenix stored it.

Usage: phoenix_check.py BASE_URL PROJECT [TIMEOUT_SECONDS]

Reads every span of PROJECT from Phoenix's REST API (GET /v1/projects/{project}/spans,
following next_cursor), retrying until the eight spans of one trace are there or the timeout
passes (ingestion is asynchronous). Then checks names, parent links, Phoenix span kinds (from
`openinference.span.kind`), HoneyHive event types, token counts and the failed tool call.
Exits 0 when everything matches; otherwise prints every mismatch and exits 1.
Standard library only, so any python3 can run it.
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# name -> (parent name, Phoenix span kind, honeyhive_event_type)
EXPECTED = {
    "answer_question": (None, "CHAIN", "chain"),
    "retrieve": ("answer_question", "RETRIEVER", "retriever"),
    "embed_query": ("retrieve", "EMBEDDING", "embedding"),
    "vector_search": ("retrieve", "TOOL", "tool"),
    "generate_answer": ("answer_question", "LLM", "model"),
    "build_prompt": ("generate_answer", "TOOL", "tool"),
    "openai.chat": ("generate_answer", "LLM", "model"),
    "get_weather": ("answer_question", "TOOL", "tool"),
}
LLM_SPAN = "openai.chat"
ERROR_SPAN = "get_weather"


def fetch_spans(base, project):
    spans, cursor = [], None
    while True:
        query = {"limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        url = (
            f"{base}/v1/projects/{urllib.parse.quote(project, safe='')}/spans?"
            + urllib.parse.urlencode(query)
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            page = json.load(response)
        spans.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return spans


def wait_for_spans(base, project, timeout, expected=None):
    expected = len(EXPECTED) if expected is None else expected
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            spans = fetch_spans(base, project)
            if len(spans) >= expected:
                return spans
            last = f"{len(spans)} of {expected} spans so far"
        except urllib.error.HTTPError as e:
            # 404 until the first span of the project has been ingested.
            last = f"HTTP {e.code} from the spans API"
        except (urllib.error.URLError, OSError) as e:
            last = f"cannot reach Phoenix: {e}"
        if time.monotonic() >= deadline:
            sys.exit(f"phoenix_check: FAIL: spans not queryable after {timeout}s ({last})")
        time.sleep(1)


def token(attrs, key):
    value = attrs.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check(spans):
    problems = []
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    for name in EXPECTED:
        count = len(by_name.get(name, []))
        if count != 1:
            problems.append(f"expected one span named {name!r}, found {count}")
    unexpected = sorted(set(by_name) - set(EXPECTED))
    if unexpected:
        problems.append(f"unexpected spans: {unexpected}")
    if problems:
        return problems, sorted(by_name)

    one = {name: found[0] for name, found in by_name.items()}
    trace_ids = {span["context"]["trace_id"] for span in one.values()}
    if len(trace_ids) != 1:
        problems.append(f"the spans are spread over {len(trace_ids)} traces: {trace_ids}")

    for name, (parent, kind, event_type) in EXPECTED.items():
        span = one[name]
        want_parent = one[parent]["context"]["span_id"] if parent else None
        if span.get("parent_id") != want_parent:
            problems.append(
                f"{name}: parent_id {span.get('parent_id')!r}, expected {want_parent!r} ({parent})"
            )
        if span["span_kind"] != kind:
            problems.append(
                f"{name}: Phoenix span kind {span['span_kind']!r}, expected {kind!r} "
                "(openinference.span.kind)"
            )
        got_type = span["attributes"].get("honeyhive_event_type")
        if got_type != event_type:
            problems.append(f"{name}: honeyhive_event_type {got_type!r}, expected {event_type!r}")
        statuses = ("ERROR",) if name == ERROR_SPAN else ("UNSET", "OK")
        if span["status_code"] not in statuses:
            problems.append(f"{name}: status {span['status_code']!r}, expected one of {statuses}")

    failed = one[ERROR_SPAN]
    if "weather service unavailable" not in failed.get("status_message", ""):
        problems.append(f"{ERROR_SPAN}: status message {failed.get('status_message')!r}")
    exceptions = [e for e in failed.get("events", []) if e["name"] == "exception"]
    if len(exceptions) != 1 or "weather service unavailable" not in str(
        exceptions[0]["attributes"].get("exception.message")
    ):
        problems.append(f"{ERROR_SPAN}: expected one exception event, got {failed.get('events')}")

    attrs = one[LLM_SPAN]["attributes"]
    prompt = token(attrs, "llm.token_count.prompt")
    completion = token(attrs, "llm.token_count.completion")
    total = token(attrs, "llm.token_count.total")
    if not (prompt and completion and total):
        problems.append(
            f"{LLM_SPAN}: token counts missing or not positive integers: "
            f"llm.token_count.prompt={attrs.get('llm.token_count.prompt')!r}, "
            f"completion={attrs.get('llm.token_count.completion')!r}, "
            f"total={attrs.get('llm.token_count.total')!r}"
        )
    elif total != prompt + completion:
        problems.append(f"{LLM_SPAN}: total {total} != prompt {prompt} + completion {completion}")
    for genai, openinference in (
        ("gen_ai.usage.input_tokens", "llm.token_count.prompt"),
        ("gen_ai.usage.output_tokens", "llm.token_count.completion"),
    ):
        if token(attrs, genai) is None or token(attrs, genai) != token(attrs, openinference):
            problems.append(
                f"{LLM_SPAN}: {genai}={attrs.get(genai)!r}, expected an integer equal to "
                f"{openinference}={attrs.get(openinference)!r}"
            )
    return problems, sorted(by_name)


def run_check(tool, usage, check, expected):
    """The command line of a check script: BASE_URL PROJECT [TIMEOUT_SECONDS]; waits for
    `expected` spans, runs `check(spans)` (a list of problems) and exits 1 on any."""
    if len(sys.argv) not in (3, 4):
        sys.exit(usage)
    base, project = sys.argv[1].rstrip("/"), sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) == 4 else 60
    spans = wait_for_spans(base, project, timeout, expected)
    problems = check(spans)
    if problems:
        print(f"{tool}: FAIL: {len(problems)} problem(s) in project {project!r}:")
        for p in problems:
            print(f"  - {p}")
        print(f"spans: {[(s['name'], s['context'], s.get('parent_id')) for s in spans]}")
        sys.exit(1)
    print(f"{tool}: OK: {sorted(s['name'] for s in spans)}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    base, project = sys.argv[1].rstrip("/"), sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) == 4 else 60
    spans = wait_for_spans(base, project, timeout)
    problems, names = check(spans)
    if problems:
        print(f"phoenix_check: FAIL: {len(problems)} problem(s) in project {project!r}:")
        for p in problems:
            print(f"  - {p}")
        print(f"spans as Phoenix returned them: {json.dumps(spans, indent=1, default=str)}")
        sys.exit(1)
    print(f"phoenix_check: OK: {len(spans)} spans in one trace in project {project!r}: {names}")


if __name__ == "__main__":
    main()
