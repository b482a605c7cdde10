# Sourced: installs rotel (an OTLP collector written in Rust, from PyPI) into a cached venv and
# sets ROTEL_AGENT to its binary. Uses: say, fail. Environment: ROTEL_VERSION, ROTEL_VENV.

ROTEL_VERSION=${ROTEL_VERSION:-0.0.1a15}
ROTEL_VENV=${ROTEL_VENV:-target/rotel-venv}

rotel_install() {
    local stamp="$ROTEL_VENV/.rotel-$ROTEL_VERSION"
    if [ ! -e "$stamp" ]; then
        say "installing rotel==$ROTEL_VERSION into $ROTEL_VENV"
        rm -rf "$ROTEL_VENV"
        timeout 120 python3 -m venv "$ROTEL_VENV" || fail "cannot create a venv"
        timeout 300 "$ROTEL_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "rotel==$ROTEL_VERSION" || fail "pip could not install rotel==$ROTEL_VERSION"
        touch "$stamp"
    fi
    ROTEL_AGENT=$(find "$ROTEL_VENV" -name rotel-agent -type f | head -n 1)
    [ -x "$ROTEL_AGENT" ] || fail "the rotel package holds no rotel-agent binary"
}
