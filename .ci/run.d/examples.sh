#!/usr/bin/env bash
# The retry, distributed and judge examples: attempts on the waterfall; two services in one
# trace; evaluation results on the evaluator spans.
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
# An LLM as judge: each answer's evaluator span shows the judge's verdict.
out=$(timeout 300 cargo run -q -p honeyhive-examples --example judge)
printf '%s\n' "$out"
grep -Eq '^ +(◆ )?faithfulness \[evaluator\] .*eval faithfulness=1 faithful$' <<<"$out"
grep -Eq '^ +(◆ )?faithfulness \[evaluator\] .*eval faithfulness=0\.57 unfaithful$' <<<"$out"
