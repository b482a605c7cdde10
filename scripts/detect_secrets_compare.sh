#!/usr/bin/env bash
# Our secret redaction against detect-secrets (PyPI), side by side on the same 472 strings
# (59 fake secret formats in 8 places of a span; see tests/tests/secret_cases/mod.rs).
#
# Installs detect-secrets into a cached venv (target/detect-secrets-venv; reruns reuse it),
# then runs the ignored test tests/tests/detect_secrets.rs, which prints both recalls per
# format and fails if ours is lower or if detect-secrets catches a case we miss.
# Time is bounded at every step; never skips: a failed install fails with a message.
#
# Environment: DETECT_SECRETS_VERSION (default below), DETECT_SECRETS_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${DETECT_SECRETS_VERSION:-1.5.0}
venv=${DETECT_SECRETS_VENV:-${CARGO_TARGET_DIR:-target}/detect-secrets-venv}

fail() {
    printf 'detect_secrets_compare: FAIL: %s\n' "$*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is not installed"
stamp="$venv/.detect-secrets-$version"
if [ ! -e "$stamp" ] || [ ! -x "$venv/bin/python" ]; then
    printf 'detect_secrets_compare: installing detect-secrets==%s into %s\n' "$version" "$venv"
    rm -rf "$venv"
    timeout 120 python3 -m venv "$venv" || fail "cannot create a venv with $(python3 --version)"
    timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "detect-secrets==$version" || fail "pip could not install detect-secrets==$version"
    touch "$stamp"
fi
timeout 20 "$venv/bin/python" -c "import detect_secrets" ||
    fail "detect-secrets does not import from $venv"

HH_DETECT_SECRETS_PYTHON="$(cd "$venv" && pwd)/bin/python" timeout 900 \
    cargo test -p honeyhive-tests --test detect_secrets -- --ignored --nocapture
