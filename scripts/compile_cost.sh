#!/usr/bin/env bash
# Compile cost of instrumentation, side by side: a generated crate of N fns (half async),
# untraced, with our #[trace], with `#[trace(skip_all, skip_output)]`, fastrace's #[trace] and
# tracing's #[instrument]. Each is rebuilt from scratch (its dependencies stay built) RUNS
# times; the table shows the median wall time, the median CPU time (user + system of cargo and
# rustc: on a shared machine it moves much less with the load than wall time), the CPU time's
# ratio to the untraced crate, and the size of the macro-expanded source
# (`-Zunpretty=expanded`, allowed on stable by RUSTC_BOOTSTRAP=1, for this measurement only)
# against the untraced source. With valgrind installed (or COMPILE_COST_INSTRUCTIONS=1, which
# requires it), also the instructions rustc executes compiling the crate, once under
# cachegrind (without incremental state): a count that does not move with the machine's load,
# so a change to the expansion can be measured on a busy machine (about a minute per variant).
#
# Usage: scripts/compile_cost.sh [N=100] [RUNS=5]
set -euo pipefail
N=${1:-100}
RUNS=${2:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${COMPILE_COST_DIR:-/tmp/honeyhive_compile_cost}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$WORK/target}
LOCK="$HERE/../Cargo.lock"
VARIANTS=(untraced ours ours_skip fastrace tracing)

for v in "${VARIANTS[@]}"; do
  python3 "$HERE/compile_cost_gen.py" "$WORK/$v" "$v" "$N"
  cp "$LOCK" "$WORK/$v/Cargo.lock"
  # Dependencies once, outside the measurement.
  (cd "$WORK/$v" && cargo build --quiet 2>/dev/null || cargo build)
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

INSTRUCTIONS=${COMPILE_COST_INSTRUCTIONS:-$(command -v valgrind >/dev/null && echo 1 || echo 0)}

# Instructions rustc executes building the crate from scratch: the exact rustc command cargo
# runs, without its incremental directory, under cachegrind.
instructions() {
  local dir=$1 crate=$2 cmd
  (cd "$dir" && cargo clean --quiet -p "$crate")
  cmd=$(cd "$dir" && cargo build -v 2>&1 | grep -E "Running \`.*rustc --crate-name $crate " | sed 's/^ *Running `//; s/`$//; s/-C incremental=[^ ]*//')
  (cd "$dir" && eval valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$cmd" 2>&1 >/dev/null) |
    awk '/I *refs/ {gsub(",", "", $NF); print $NF}'
}

declare -A TIME CPU SIZE INSN
for v in "${VARIANTS[@]}"; do
  if [ "$INSTRUCTIONS" = 1 ]; then
    INSN[$v]=$(instructions "$WORK/$v" "compile_cost_$v")
  fi
  # Its own target directory: RUSTC_BOOTSTRAP would otherwise invalidate the timed builds.
  SIZE[$v]=$(cd "$WORK/$v" && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$CARGO_TARGET_DIR/expand" cargo rustc --quiet --profile check --lib -- -Zunpretty=expanded 2>/dev/null | wc -c)
  samples=()
  cpu=()
  for _ in $(seq "$RUNS"); do
    (cd "$WORK/$v" && cargo clean --quiet -p "compile_cost_$v")
    read -r wall user sys < <(cd "$WORK/$v" && { /usr/bin/time -f '%e %U %S' cargo build --quiet; } 2>&1 | tail -1)
    samples+=("$wall")
    cpu+=("$(echo "$user + $sys" | bc)")
  done
  TIME[$v]=$(printf '%s\n' "${samples[@]}" | median)
  CPU[$v]=$(printf '%s\n' "${cpu[@]}" | median)
done

base=${CPU[untraced]}
size=${SIZE[untraced]}
echo "$N fns (half async), median of $RUNS fresh builds of the crate"
if [ "$INSTRUCTIONS" = 1 ]; then
  insn=${INSN[untraced]}
  printf '| %-10s | %6s | %5s | %9s | %14s | %14s | %17s |\n' variant "wall s" "CPU s" "CPU ratio" "expanded ratio" "rustc G instr" "instruction ratio"
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' ------------ -------: ------: ----------: ---------------: ---------------: ------------------:
  for v in "${VARIANTS[@]}"; do
    printf '| %-10s | %6.2f | %5.2f | %8.2fx | %13.2fx | %14.3f | %16.2fx |\n' "$v" "${TIME[$v]}" "${CPU[$v]}" \
      "$(echo "${CPU[$v]} / $base" | bc -l)" "$(echo "${SIZE[$v]} / $size" | bc -l)" \
      "$(echo "${INSN[$v]} / 1000000000" | bc -l)" "$(echo "${INSN[$v]} / $insn" | bc -l)"
  done
  exit 0
fi
printf '| %-10s | %6s | %5s | %9s | %14s |\n' variant "wall s" "CPU s" "CPU ratio" "expanded ratio"
printf '|%s|%s|%s|%s|%s|\n' ------------ -------: ------: ----------: ---------------:
for v in "${VARIANTS[@]}"; do
  printf '| %-10s | %6.2f | %5.2f | %8.2fx | %13.2fx |\n' "$v" "${TIME[$v]}" "${CPU[$v]}" \
    "$(echo "${CPU[$v]} / $base" | bc -l)" "$(echo "${SIZE[$v]} / $size" | bc -l)"
done
