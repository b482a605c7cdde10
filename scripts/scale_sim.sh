#!/usr/bin/env bash
# The scale simulation (scripts/scale_sim.py): N simulated services x M requests through a
# collector (rotel) into a counting backend, as N grows.
#
#   bash scripts/scale_sim.sh                 # the README's figures: release build, 1-8 services
#   bash scripts/scale_sim.sh --check-small   # CI: debug build, 1-4 services, paced; fails on
#                                             # any span neither delivered nor counted as lost
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'scale_sim: %s\n' "$*"; }
fail() {
    printf 'scale_sim: FAIL: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=lib/rotel.sh
. scripts/lib/rotel.sh
rotel_install
if [ "${1:-}" = "--check-small" ]; then
    timeout 900 cargo build -q -p honeyhive-examples --example load || fail "load does not build"
    timeout 600 python3 scripts/scale_sim.py "$ROTEL_AGENT" target/debug/examples/load \
        --services 1,2,4 --requests 1000 --children 4 --rate 500 --check
else
    timeout 1800 cargo build -q --release -p honeyhive-examples --example load ||
        fail "load does not build"
    timeout 1800 python3 scripts/scale_sim.py "$ROTEL_AGENT" target/release/examples/load \
        --services "${SERVICES:-1,2,4,8}" --requests "${REQUESTS:-20000}" --children 4 \
        --rate "${RATE:-0}"
fi
