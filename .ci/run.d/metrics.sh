#!/usr/bin/env bash
# The metrics example against the local OTLP/HTTP sink: spans at /v1/traces and GenAI metrics
# at /v1/metrics, both protobuf.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
python3 scripts/otlp_sink.py "$tmp/port" "$tmp/log" &
sink=$!
trap 'kill $sink 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ]
out=$(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$tmp/port")" \
    timeout 300 cargo run -q -p honeyhive-examples --example metrics)
printf '%s\n' "$out"
cat "$tmp/log"
grep -q "^/v1/traces application/x-protobuf [1-9]" "$tmp/log"
grep -q "^/v1/metrics application/x-protobuf [1-9]" "$tmp/log"
grep -Eq '^metrics: [1-9][0-9]* model calls observed; requests to .*: [1-9][0-9]* accepted, 0 failed$' <<<"$out"
bash scripts/metrics_e2e.sh
