#!/usr/bin/env bash
# The deployment files parse and name only documented collector components (scripts/check_deploy.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/deploy-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
    rm -rf "$venv"
    timeout 120 python3 -m venv "$venv"
    timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check "PyYAML==6.0.2"
fi
timeout 60 "$venv/bin/python" scripts/check_deploy.py deploy
