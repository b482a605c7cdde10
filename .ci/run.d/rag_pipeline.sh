#!/usr/bin/env bash
# The rag_pipeline example: model spans show tokens and cost, the trace header the totals.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(cargo run -q -p honeyhive-examples --example rag_pipeline)
printf '%s\n' "$out"
grep -Eq '^trace .* chat_session .* tokens [0-9]+→[0-9]+ · \$[0-9]' <<<"$out"
grep -Eq 'openai\.chat\.stream \[model\] .* tokens [0-9]+→[0-9]+ +\$[0-9]' <<<"$out"
grep -Eq 'anthropic\.rewrite_query \[model\] .* tokens [0-9]+→[0-9]+ +\$[0-9]' <<<"$out"
