#!/usr/bin/env bash
# GenAI metrics through a real OpenTelemetry collector.
#
# The metrics example exports spans and metrics over OTLP/HTTP protobuf to rotel (an OTLP
# collector written in Rust, from PyPI), which batches and forwards both signals over OTLP/HTTP
# to scripts/metrics_sink.py; the sink decodes them with the OpenTelemetry Python protobuf
# classes (opentelemetry-proto, PyPI). The check: the collector accepted our metrics and passed
# on the GenAI ones with their units, attributes and totals.
#
# Installs rotel and opentelemetry-proto into cached venvs, bounds every step in time, stops
# everything on exit. Never skips. Environment: ROTEL_VERSION, ROTEL_VENV (scripts/lib/rotel.sh),
# PROTO_VENV, PROTO_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'metrics_e2e: %s\n' "$*"; }
fail() {
    printf 'metrics_e2e: FAIL: %s\n' "$*" >&2
    exit 1
}
# free_port, stop_pid.
# shellcheck source=lib/phoenix.sh
. scripts/lib/phoenix.sh
# shellcheck source=lib/rotel.sh
. scripts/lib/rotel.sh

PROTO_VERSION=${PROTO_VERSION:-1.38.0}
PROTO_VENV=${PROTO_VENV:-target/otlp-proto-venv}
stamp="$PROTO_VENV/.opentelemetry-proto-$PROTO_VERSION"
if [ ! -e "$stamp" ]; then
    say "installing opentelemetry-proto==$PROTO_VERSION into $PROTO_VENV"
    rm -rf "$PROTO_VENV"
    timeout 120 python3 -m venv "$PROTO_VENV" || fail "cannot create a venv"
    timeout 300 "$PROTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
        "opentelemetry-proto==$PROTO_VERSION" || fail "pip could not install opentelemetry-proto"
    touch "$stamp"
fi
rotel_install

work=$(mktemp -d "${TMPDIR:-/tmp}/metrics-e2e.XXXXXX")
sink_pid=
cleanup() {
    stop_pid "${ROTEL_PID:-}"
    stop_pid "$sink_pid"
    rm -rf "$work"
}
trap cleanup EXIT

"$PROTO_VENV/bin/python" scripts/metrics_sink.py "$work/port" "$work/summary.json" &
sink_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || fail "the sink did not start"
sink="http://127.0.0.1:$(cat "$work/port")"

rotel_start "$work" "$sink"
otlp_http=$ROTEL_HTTP_PORT

out=$(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_http" \
    timeout 300 cargo run -q -p honeyhive-examples --example metrics) ||
    fail "the metrics example failed"
printf '%s\n' "$out"
grep -Eq '^metrics: [1-9][0-9]* model calls observed; requests to .*: [1-9][0-9]* accepted, 0 failed$' <<<"$out" ||
    fail "rotel did not accept every metrics request"

# rotel batches before it forwards: wait until the sink has the metrics.
started=$SECONDS
until [ -s "$work/summary.json" ] && "$PROTO_VENV/bin/python" - "$work/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want = ["gen_ai.client.token.usage", "gen_ai.client.operation.duration"]
sys.exit(0 if s["spans"] > 0 and all(w in s["metrics"] for w in want) else 1)
PY
do
    ((SECONDS - started < 60)) || { cat "$work/summary.json" 2>/dev/null >&2; fail "the metrics did not come through rotel within 60 s"; }
    sleep 0.5
done
sleep 2 # a last batch in flight
"$PROTO_VENV/bin/python" - "$work/summary.json" <<'PY' || fail "the metrics that came through rotel are not what the example recorded (above)"
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps(s, indent=1))
m = s["metrics"]
tokens = m["gen_ai.client.token.usage"]
assert tokens["kind"] == "histogram" and tokens["unit"] == "{token}", tokens
assert tokens["total"] > 0, tokens
assert any("gen_ai.token.type" in keys and "gen_ai.request.model" in keys for keys in tokens["attrs"]), tokens
duration = m["gen_ai.client.operation.duration"]
assert duration["kind"] == "histogram" and duration["unit"] == "s" and duration["total"] > 0, duration
assert any("error.type" in keys for keys in duration["attrs"]), "no failed call carries error.type"
print(f"metrics_e2e: {s['spans']} spans and {len(m)} metrics came through rotel")
PY
say "OK"
