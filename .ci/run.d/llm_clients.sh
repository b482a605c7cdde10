#!/usr/bin/env bash
# The openai_client example: async-openai calls traced by LlmLayer, a plain and a streamed one,
# each a model span with tokens and cost under the caller's span.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(timeout 300 cargo run -q -p honeyhive-examples --example openai_client)
printf '%s\n' "$out"
grep -q 'answer: Paris is the capital of France. / Paris is the capital of France.' <<<"$out"
[ "$(grep -Ec '^ +(◆ )?openai\.chat \[model\] .* tokens 19→10 +\$[0-9]' <<<"$out")" = 2 ]
