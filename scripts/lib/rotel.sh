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

# rotel_start WORK_DIR EXPORT_ENDPOINT [EXTRA_FLAGS...]: starts rotel on free ports, receiving
# OTLP/HTTP on 127.0.0.1:$ROTEL_HTTP_PORT and forwarding over OTLP/HTTP to EXPORT_ENDPOINT; sets
# ROTEL_PID and waits (30 s at most) until it listens. Logs in WORK_DIR. Uses free_port.
rotel_start() {
    local work=$1 endpoint=$2
    shift 2
    ROTEL_HTTP_PORT=$(free_port)
    local grpc_port
    grpc_port=$(free_port)
    say "starting rotel on 127.0.0.1:$ROTEL_HTTP_PORT, exporting to $endpoint"
    timeout --kill-after=10 600 "$ROTEL_AGENT" start \
        --otlp-http-endpoint "127.0.0.1:$ROTEL_HTTP_PORT" --otlp-grpc-endpoint "127.0.0.1:$grpc_port" \
        --otlp-receiver-logs-disabled "$@" \
        --exporter otlp --otlp-exporter-protocol http --otlp-exporter-endpoint "$endpoint" \
        --pid-file "$work/rotel.pid" --log-file "$work/rotel.log" \
        >"$work/rotel.out" 2>&1 &
    ROTEL_PID=$!
    local started=$SECONDS
    until curl -s -o /dev/null "http://127.0.0.1:$ROTEL_HTTP_PORT/v1/traces"; do
        kill -0 "$ROTEL_PID" 2>/dev/null || { cat "$work/rotel.out" >&2; fail "rotel exited at start"; }
        ((SECONDS - started < 30)) || fail "rotel did not listen on 127.0.0.1:$ROTEL_HTTP_PORT within 30 s"
        sleep 0.2
    done
    say "rotel is up"
}
