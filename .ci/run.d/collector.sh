#!/usr/bin/env bash
# Two services -> an OpenTelemetry collector (rotel) -> Phoenix, checked whole in Phoenix.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/collector_e2e.sh
