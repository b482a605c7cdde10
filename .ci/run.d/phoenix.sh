#!/usr/bin/env bash
# End to end against Arize Phoenix (installs it on first run; never skipped).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/phoenix_e2e.sh
