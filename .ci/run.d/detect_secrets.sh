#!/usr/bin/env bash
# Secret redaction recall against detect-secrets on the same 440 strings (installs it on first run).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/detect_secrets_compare.sh
