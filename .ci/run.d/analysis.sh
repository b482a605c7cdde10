#!/usr/bin/env bash
# The analysis example: simulated requests kept in a TraceStore, an error-rate alert, and on
# the console the per-model summary, latency by model and the slowest request's critical path.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(timeout 300 cargo run -q -p honeyhive-examples --example analysis)
printf '%s\n' "$out"
# 2 of 18 requests failed: the alert fired once (at a scheduled evaluation during the run or
# at the flush, so its numbers vary) and never recovered (the rate stays above 5%).
[ "$(grep -Ec '^ALERT request errors breached: [0-9.]+% of [0-9]+ requests failed \(threshold 5\.0%\)' <<<"$out")" = 1 ]
[ "$(grep -c '^ALERT' <<<"$out")" = 1 ]
grep -q 'AlertStats { breaches: 1, recoveries: 0, callback_panics: 0 }' <<<"$out"
grep -Eq '^store: 18 traces, 72 spans, [0-9]+ KiB of 1024 KiB, 0 evicted' <<<"$out"
# The per-model summary: calls, errors, tokens, a cost from the price table.
grep -Eq '^  gpt-4o +openai +6 +2 +2480 +290 +0\.0[0-9]+' <<<"$out"
grep -Eq '^  gpt-4o-mini +openai +6 +0 ' <<<"$out"
grep -Eq '^  claude-3-5-haiku-latest +anthropic +6 +0 ' <<<"$out"
# Latency by model: a bar and p50/p95 per model; gpt-4o's rate limits show.
[ "$(grep -Ec '│[█▒ ]{40}│ p50 ' <<<"$out")" = 3 ]
grep -Eq '^  gpt-4o +│.*errors 33%' <<<"$out"
# The critical path, as a list and marked on the waterfall.
grep -q '^Critical path of the slowest request (handle_request, ' <<<"$out"
grep -Eq '^    ◆ chat +[0-9.]+ms  own time on the path' <<<"$out"
grep -Eq '^  ◆ handle_request \[chain\] ' <<<"$out"
grep -Eq '^    ◆ chat \[model\] ' <<<"$out"
