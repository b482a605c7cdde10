#!/usr/bin/env python3
"""Checks the trace of examples/examples/phoenix_integrations.rs as Arize Phoenix stored it:
what the integrations put on it is what Phoenix shows.

Usage: phoenix_integrations_check.py BASE_URL PROJECT [TIMEOUT_SECONDS]

- the agent span: its tags (`tag.tags`) and its metadata (`metadata`, which Phoenix flattens);
- the retriever span: its documents (`retrieval.documents.N.document.{id,content,score,metadata}`);
- the LLM call made through `LlmMiddleware` (no hand-written LlmCall): an LLM span under the
  agent with the model, the prompt, token counts and a cost;
- the tool span: `tool.name` and the parameters' schema;
- inside the tool, a `tracing` span bridged by `HoneyHiveLayer` as its child, carrying the
  `tracing` event as a span event with level and target.
Standard library only.
"""

from phoenix_check import run_check

# name -> (parent, Phoenix span kind)
EXPECTED = {
    "weather_agent": (None, "AGENT"),
    "retrieve": ("weather_agent", "RETRIEVER"),
    "openai.chat": ("weather_agent", "LLM"),
    "get_weather": ("weather_agent", "TOOL"),
    "cache_lookup": ("get_weather", "TOOL"),
}


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
    one = {name: by_name[name][0] for name in EXPECTED}
    if len({s["context"]["trace_id"] for s in one.values()}) != 1:
        problems.append("the spans are not one trace")
    for name, (parent, kind) in EXPECTED.items():
        want = one[parent]["context"]["span_id"] if parent else None
        if one[name].get("parent_id") != want:
            problems.append(f"{name}: parent {one[name].get('parent_id')!r}, expected {parent}")
        if one[name]["span_kind"] != kind:
            problems.append(f"{name}: span kind {one[name]['span_kind']!r}, expected {kind!r}")

    def expect(name, key, want):
        got = one[name]["attributes"].get(key)
        ok = want(got) if callable(want) else got == want
        if not ok:
            problems.append(f"{name}: {key} = {got!r}")

    expect("weather_agent", "tag.tags", lambda v: isinstance(v, list) and "beta" in v)
    expect("weather_agent", "metadata.release", "2026.12")
    expect("retrieve", "retrieval.documents.0.document.content", "Paris is the capital of France.")
    expect("retrieve", "retrieval.documents.0.document.id", "d1")
    expect("retrieve", "retrieval.documents.0.document.score", 0.92)
    expect("retrieve", "retrieval.documents.0.document.metadata.source", "wiki")
    expect("retrieve", "retrieval.documents.1.document.id", "d2")
    expect("openai.chat", "llm.model_name", "gpt-4o-mini")
    expect("openai.chat", "llm.input_messages.0.message.content", "Weather in Paris?")
    for key in ("llm.token_count.prompt", "llm.token_count.completion"):
        expect("openai.chat", key, lambda v: isinstance(v, int) and v > 0)
    expect("openai.chat", "llm.cost.total", lambda v: isinstance(v, float) and v > 0)
    expect("openai.chat", "url.full", lambda v: isinstance(v, str) and v.endswith("/v1/chat/completions"))
    expect("get_weather", "tool.name", "get_weather")
    expect("get_weather", "tool.parameters.properties.city.type", "string")
    expect("cache_lookup", "cache.key", "Paris")
    events = [e for e in one["cache_lookup"].get("events") or [] if e["name"] == "cache miss"]
    if len(events) != 1:
        problems.append(f"cache_lookup: expected the tracing event 'cache miss', got {one['cache_lookup'].get('events')}")
    else:
        attrs = events[0]["attributes"]
        if attrs.get("level") != "INFO" or attrs.get("target") != "phoenix_integrations":
            problems.append(f"cache_lookup: event attributes {attrs}")
    return problems


def main():
    run_check("phoenix_integrations_check", __doc__, check, len(EXPECTED))


if __name__ == "__main__":
    main()
