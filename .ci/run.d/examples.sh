#!/usr/bin/env bash
# The retry and distributed examples: attempts on the waterfall; two services in one trace.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(timeout 300 cargo run -q -p honeyhive-examples --example retry)
printf '%s\n' "$out"
grep -Eq 'attempts\)' <<<"$out"
out=$(timeout 300 cargo run -q -p honeyhive-examples --example distributed)
printf '%s\n' "$out"
grep -q 'request req-2026-demo' <<<"$out"
# One trace: the weather service's handler hangs under the gateway's client span (depth 2,
# indented 6, then the critical-path mark or its blank).
grep -Eq '^      (◆ |  )weather_handler \[chain\]' <<<"$out"
[ "$(grep -c '^trace ' <<<"$out")" = 1 ]
