#!/usr/bin/env python3
"""Checks that feedback recorded by the `feedback` example reached Arize Phoenix.

Usage: phoenix_feedback_check.py BASE_URL PROJECT SPAN_REF [TIMEOUT_SECONDS]

SPAN_REF is the `hh1.<trace id>.<span id>` the example printed. Posts nothing: reads back,
retrying until the timeout (ingestion is asynchronous),
- the span annotation on the referenced span, from
  GET /v1/projects/{project}/span_annotations?span_ids=<span id>: name `helpfulness`,
  annotator kind HUMAN, score 1, label `thumbs_up`, the comment as its explanation and the
  attribute as its metadata;
- the feedback span, from GET /v1/projects/{project}/spans: `feedback helpfulness`, a child of
  the referenced span in its trace, with a `gen_ai.evaluation.result` event.
Exits 0 when both are there as expected; otherwise prints what Phoenix returned and exits 1.
Standard library only.
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

NAME = "helpfulness"


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def annotations(base, project, span_id):
    query = urllib.parse.urlencode({"span_ids": span_id, "limit": "100"})
    url = f"{base}/v1/projects/{urllib.parse.quote(project, safe='')}/span_annotations?{query}"
    return get(url)["data"]


def spans(base, project):
    out, cursor = [], None
    while True:
        query = {"limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        url = (
            f"{base}/v1/projects/{urllib.parse.quote(project, safe='')}/spans?"
            + urllib.parse.urlencode(query)
        )
        page = get(url)
        out.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def check_annotation(found, span_id):
    mine = [a for a in found if a.get("name") == NAME]
    if len(mine) != 1:
        return [f"expected one annotation named {NAME!r}, found {len(mine)}: {found}"]
    a, problems = mine[0], []
    want = {
        "span_id": span_id,
        "annotator_kind": "HUMAN",
    }
    for key, value in want.items():
        if a.get(key) != value:
            problems.append(f"annotation {key} = {a.get(key)!r}, expected {value!r}")
    result = a.get("result") or {}
    for key, value in (
        ("score", 1.0),
        ("label", "thumbs_up"),
        ("explanation", "accurate and short"),
    ):
        if result.get(key) != value:
            problems.append(f"annotation result.{key} = {result.get(key)!r}, expected {value!r}")
    if (a.get("metadata") or {}).get("user") != "user-123":
        problems.append(f"annotation metadata = {a.get('metadata')!r}, expected user user-123")
    return problems


def check_span(all_spans, trace_id, span_id):
    mine = [s for s in all_spans if s["name"] == f"feedback {NAME}"]
    if len(mine) != 1:
        return [f"expected one span 'feedback {NAME}', found {len(mine)}"]
    s, problems = mine[0], []
    if s["context"]["trace_id"] != trace_id:
        problems.append(f"feedback span in trace {s['context']['trace_id']}, expected {trace_id}")
    if s.get("parent_id") != span_id:
        problems.append(f"feedback span parent_id {s.get('parent_id')!r}, expected {span_id}")
    events = [e for e in s.get("events", []) if e["name"] == "gen_ai.evaluation.result"]
    if len(events) != 1 or events[0]["attributes"].get("gen_ai.evaluation.score.value") != 1.0:
        problems.append(f"feedback span events: {s.get('events')}")
    return problems


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    base, project, span_ref = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) == 5 else 60
    parts = span_ref.split(".")
    if len(parts) != 3 or parts[0] != "hh1":
        sys.exit(f"phoenix_feedback_check: FAIL: {span_ref!r} is not a span reference")
    _, trace_id, span_id = parts
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = annotations(base, project, span_id)
            problems = check_annotation(found, span_id)
            if not problems:
                problems = check_span(spans(base, project), trace_id, span_id)
        except urllib.error.HTTPError as e:
            # 404 until the project and span are ingested.
            problems, found = [f"HTTP {e.code} from {e.url}"], None
        except (urllib.error.URLError, OSError) as e:
            problems, found = [f"cannot reach Phoenix: {e}"], None
        if not problems:
            print(f"phoenix_feedback_check: OK: annotation {NAME!r} on span {span_id} "
                  f"and its feedback span in project {project!r}")
            return
        if time.monotonic() >= deadline:
            print(f"phoenix_feedback_check: FAIL after {timeout}s:")
            for p in problems:
                print(f"  - {p}")
            print(f"annotations as Phoenix returned them: {json.dumps(found, indent=1)}")
            sys.exit(1)
        time.sleep(1)


if __name__ == "__main__":
    main()
