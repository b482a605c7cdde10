#!/usr/bin/env python3
"""Checks the two-service trace of examples/examples/distributed.rs as Phoenix stored it after
it went through an OpenTelemetry collector.

Usage: collector_check.py BASE_URL PROJECT [TIMEOUT_SECONDS]

Waits until the four spans are queryable, then checks that they form one trace: the weather
service's handler (another process) hangs under the gateway's client span, each service's spans
under their own root, the same request id on every span. Standard library only.
"""

from phoenix_check import run_check  # same directory

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
    run_check("collector_check", __doc__, check, len(EXPECTED))


if __name__ == "__main__":
    main()
