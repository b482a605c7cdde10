#!/usr/bin/env bash
# The scale simulation, small: 1, 2 and 4 services through a collector, every span accounted for.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/scale_sim.sh --check-small
