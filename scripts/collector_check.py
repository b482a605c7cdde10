#!/usr/bin/env python3
"""Checks the two-service trace of examples/examples/distributed.rs as Phoenix stored it after
it went through an OpenTelemetry collector.

Usage: collector_check.py BASE_URL PROJECT [TIMEOUT_SECONDS]

Waits until the four spans are queryable, then checks that they form one trace: the weather
service's handler (another process) hangs under the gateway's client span, each service's spans
under their own root, the same request id on every span. Standard library only.
"""
import sys

from phoenix_check import fetch_spans, wait_for_spans  # noqa: F401 (same directory)

# name -> parent name
EXPECTED = {
    "gateway_handler": None,
    "call_weather": "gateway_handler",
    "weather_handler": "call_weather",
    "forecast": "weather_handler",
}
REQUEST_ID = "req-2026-demo"


def check(spans):
    problems = []
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    for name in EXPECTED:
        if len(by_name.get(name, [])) != 1:
            problems.append(f"expected one span named {name!r}, found {len(by_name.get(name, []))}")
    if problems:
        return problems
    one = {name: found[0] for name, found in by_name.items()}
    trace_ids = {span["context"]["trace_id"] for span in one.values()}
    if len(trace_ids) != 1:
        problems.append(f"the spans are spread over {len(trace_ids)} traces: {trace_ids}")
    for name, parent in EXPECTED.items():
        want = one[parent]["context"]["span_id"] if parent else None
        if one[name].get("parent_id") != want:
            problems.append(f"{name}: parent_id {one[name].get('parent_id')!r}, expected {want!r}")
        rid = one[name]["attributes"].get("honeyhive.request_id")
        if rid != REQUEST_ID:
            problems.append(f"{name}: honeyhive.request_id {rid!r}, expected {REQUEST_ID!r}")
    return problems


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    base, project = sys.argv[1].rstrip("/"), sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) == 4 else 60
    spans = wait_for_spans(base, project, timeout, len(EXPECTED))
    problems = check(spans)
    if problems:
        print(f"collector_check: FAIL: {len(problems)} problem(s) in project {project!r}:")
        for p in problems:
            print(f"  - {p}")
        print(f"spans: {[(s['name'], s['context'], s.get('parent_id')) for s in spans]}")
        sys.exit(1)
    print(f"collector_check: OK: {len(spans)} spans of two services in one trace")


if __name__ == "__main__":
    main()
