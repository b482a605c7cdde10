#!/usr/bin/env bash
# Two services through a real OpenTelemetry collector into a real backend.
#
# The distributed example runs as two processes (the weather service, then the gateway that
# calls it over HTTP on 127.0.0.1); both export OTLP/HTTP to rotel (an OTLP collector written
# in Rust, from PyPI), which batches and forwards to Arize Phoenix. Phoenix must then hold the
# two services' spans as one trace (scripts/collector_check.py).
#
# Installs rotel and Phoenix into cached venvs, starts both on free ports, bounds every step in
# time, and stops both on exit. Never skips.
#
# Environment: ROTEL_VERSION, ROTEL_VENV (scripts/lib/rotel.sh), and
# PHOENIX_VERSION / PHOENIX_VENV (scripts/lib/phoenix.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'collector_e2e: %s\n' "$*"; }
fail() {
    printf 'collector_e2e: FAIL: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=lib/phoenix.sh
. scripts/lib/phoenix.sh

# shellcheck source=lib/rotel.sh
. scripts/lib/rotel.sh

# 1. rotel and Phoenix, installed once per pinned version.
rotel_install
phoenix_install

work=$(mktemp -d "${TMPDIR:-/tmp}/collector-e2e.XXXXXX")
weather_pid=
cleanup() {
    stop_pid "$weather_pid"
    stop_pid "${ROTEL_PID:-}"
    phoenix_stop
    rm -rf "$work"
}
trap cleanup EXIT

# 2. Phoenix, then rotel forwarding to it.
phoenix_start
rotel_start "$work" "$PHOENIX_BASE" --otlp-receiver-metrics-disabled
otlp_http=$ROTEL_HTTP_PORT

# 3. The two services, as two processes, both exporting to the collector.
project="honeyhive-rs-collector-$(date +%s)-$$"
# Phoenix behind the collector reads OpenInference keys: an OTLP endpoint gets GenAI ones
# unless told.
export HH_PROJECT="$project" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_http" \
    HH_CONVENTIONS=both
timeout 900 cargo build -q -p honeyhive-examples --example distributed ||
    fail "the distributed example does not build"
OTEL_SERVICE_NAME=weather-service timeout 300 \
    cargo run -q -p honeyhive-examples --example distributed -- weather "$work/port" \
    >"$work/weather.out" 2>&1 &
weather_pid=$!
started=$SECONDS
until [ -s "$work/port" ]; do
    kill -0 "$weather_pid" 2>/dev/null || { cat "$work/weather.out" >&2; fail "the weather service exited"; }
    ((SECONDS - started < 120)) || fail "the weather service did not start within 120 s"
    sleep 0.2
done
OTEL_SERVICE_NAME=gateway timeout 300 \
    cargo run -q -p honeyhive-examples --example distributed -- \
    gateway "http://127.0.0.1:$(cat "$work/port")/weather" ||
    fail "the gateway failed"
# The weather service exits after its one request, flushing its spans.
timeout 60 tail --pid="$weather_pid" -f /dev/null || fail "the weather service did not exit"
wait "$weather_pid" || { cat "$work/weather.out" >&2; fail "the weather service failed"; }
weather_pid=

# 4. Phoenix holds one trace across both services.
if ! timeout 120 python3 scripts/collector_check.py "$PHOENIX_BASE" "$project" 60; then
    tail -n 20 "$work/rotel.log" "$work/rotel.out" >&2 || true
    phoenix_log_tail
    fail "the trace did not arrive whole through the collector (see above)"
fi
say "OK"
