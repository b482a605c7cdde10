#!/usr/bin/env bash
# The feedback example on the console: the request's trace, then the feedback span under it.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u HH_API_KEY -u PHOENIX_COLLECTOR_ENDPOINT \
    timeout 300 cargo run -q -p honeyhive-examples --example feedback)
printf '%s\n' "$out"
grep -Eq '^span ref: hh1\.[0-9a-f]{32}\.[0-9a-f]{16}$' <<<"$out"
grep -q 'feedback helpfulness' <<<"$out"
grep -q '^feedback recorded; backends: 0 delivered, 0 failed$' <<<"$out"
