#!/usr/bin/env bash
# End to end against a real backend we did not write: Arize Phoenix.
#
# Installs Phoenix in a cached venv (target/phoenix-venv), starts `phoenix serve` on
# 127.0.0.1 with a throwaway working dir and free ports (scripts/lib/phoenix.sh), runs the
# `otlp` example (a simulated RAG request, eight spans) against it over OTLP/HTTP protobuf,
# then the `phoenix_integrations` example (scripts/phoenix_integrations_check.py), the
# `feedback` example (a span annotation read back by scripts/phoenix_feedback_check.py),
# reads the spans back from GET /v1/projects/{project}/spans and checks names, parent links,
# span kinds, token counts and the failed tool call (scripts/phoenix_check.py), then compares
# our LLM costs with the ones Phoenix computes from its own table (scripts/phoenix_cost_check.py).
# Stops the server by its PID on exit.
#
# Never skips: if Phoenix cannot be installed or started, it fails with a message saying so.
# Time is bounded at every step; a cold install takes about 1-2 minutes, reruns a few seconds.
#
# Environment: PHOENIX_VERSION, PHOENIX_VENV (see scripts/lib/phoenix.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'phoenix_e2e: %s\n' "$*"; }
fail() {
    printf 'phoenix_e2e: FAIL: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=lib/phoenix.sh
. scripts/lib/phoenix.sh

phoenix_install
trap phoenix_stop EXIT
phoenix_start
project="honeyhive-rs-e2e-$(date +%s)-$$"
# An OTLP endpoint gets GenAI keys by default (`with_phoenix` gets OpenInference ones); the
# checks below compare the two conventions side by side, so every run here sends both.
export HH_CONVENTIONS=both

# The example, exporting over OTLP/HTTP protobuf to Phoenix's /v1/traces.
OTEL_EXPORTER_OTLP_ENDPOINT="$PHOENIX_BASE" HH_PROJECT="$project" \
    timeout 900 cargo run -q -p honeyhive-examples --example otlp ||
    fail "the otlp example could not export to Phoenix"

# Read the spans back and check them.
if ! timeout 120 python3 scripts/phoenix_check.py "$PHOENIX_BASE" "$project" 60; then
    phoenix_log_tail
    fail "Phoenix does not hold the expected trace (see above)"
fi

# The integrations (documents, metadata, tags, tool name, an LLM call traced by the reqwest
# middleware, a bridged `tracing` span and event) as Phoenix shows them.
OTEL_EXPORTER_OTLP_ENDPOINT="$PHOENIX_BASE" HH_PROJECT="$project-integrations" \
    timeout 900 cargo run -q -p honeyhive-examples --example phoenix_integrations ||
    fail "the phoenix_integrations example could not export to Phoenix"
if ! timeout 120 python3 scripts/phoenix_integrations_check.py "$PHOENIX_BASE" \
    "$project-integrations" 60; then
    phoenix_log_tail
    fail "Phoenix does not show what the integrations recorded (see above)"
fi

# Feedback after the fact: the example records a request, then feedback on it from its span
# reference; Phoenix shows it as a span annotation and the feedback span under the request.
out=$(PHOENIX_COLLECTOR_ENDPOINT="$PHOENIX_BASE" HH_PROJECT="$project-feedback" \
    timeout 900 cargo run -q -p honeyhive-examples --example feedback) ||
    fail "the feedback example could not send to Phoenix"
printf '%s\n' "$out"
span_ref=$(sed -n 's/^span ref: //p' <<<"$out")
[ -n "$span_ref" ] || fail "the feedback example printed no span reference"
if ! timeout 120 python3 scripts/phoenix_feedback_check.py "$PHOENIX_BASE" \
    "$project-feedback" "$span_ref" 60; then
    phoenix_log_tail
    fail "Phoenix does not show the feedback (see above)"
fi

# Our LLM costs for a fixed set of calls against Phoenix's own cost table and calculator.
timeout 900 "$PHOENIX_VENV/bin/python" scripts/phoenix_cost_check.py ||
    fail "our LLM costs differ from Phoenix's (see above)"
say "OK"
