#!/usr/bin/env bash
# The file exporter and honeyhive-traces: the example writes a trace file, the tool reads it.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The tool and its test need the `cli` feature, which the workspace-wide steps leave off.
cargo clippy -p honeyhive-runtime --features cli --bin honeyhive-traces --test cli -- -D warnings
cargo test -p honeyhive-runtime --features cli --test cli
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$(timeout 300 cargo run -q -p honeyhive-examples --example file_export -- "$tmp/traces.jsonl")
printf '%s\n' "$out"
grep -q '^read 3 traces' <<<"$out"
tool() { timeout 300 cargo run -q -p honeyhive-runtime --features cli --bin honeyhive-traces -- "$@"; }
out=$(tool summary "$tmp/traces.jsonl")
printf '%s\n' "$out"
grep -q '^3 traces' <<<"$out"
grep -Eq '^gpt-4o-mini +3 ' <<<"$out"
out=$(tool slowest "$tmp/traces.jsonl" -n 5)
printf '%s\n' "$out"
grep -q '^answer_question ' <<<"$out"
out=$(tool critical-path "$tmp/traces.jsonl")
printf '%s\n' "$out"
grep -q ' · answer_question · ' <<<"$out"
