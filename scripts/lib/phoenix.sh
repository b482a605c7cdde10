# Sourced by the end-to-end scripts: Arize Phoenix in a cached venv, started on free ports with
# a throwaway working dir, stopped by its PID. Every step is bounded in time; a failure says
# what failed and exits (these checks never skip).
#
# Uses: say, fail (defined by the caller). Sets: PHOENIX_BASE, PHOENIX_WORK, PHOENIX_PID.
# Environment: PHOENIX_VERSION (default below), PHOENIX_VENV (default target/phoenix-venv).

PHOENIX_VERSION=${PHOENIX_VERSION:-20.26.1}
PHOENIX_VENV=${PHOENIX_VENV:-target/phoenix-venv}
PHOENIX_PID=

# A free TCP port on 127.0.0.1 (the OS picks; the socket is closed before the server binds).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Installs arize-phoenix==$PHOENIX_VERSION into $PHOENIX_VENV unless that version is there.
phoenix_install() {
    command -v python3 >/dev/null || fail "python3 is not installed; Phoenix needs Python 3.10-3.13"
    command -v curl >/dev/null || fail "curl is not installed"
    local stamp="$PHOENIX_VENV/.arize-phoenix-$PHOENIX_VERSION"
    if [ ! -e "$stamp" ] || [ ! -x "$PHOENIX_VENV/bin/phoenix" ]; then
        say "installing arize-phoenix==$PHOENIX_VERSION into $PHOENIX_VENV (about 1-2 minutes)"
        rm -rf "$PHOENIX_VENV"
        timeout 120 python3 -m venv "$PHOENIX_VENV" ||
            fail "cannot create a venv with $(python3 --version)"
        timeout 900 "$PHOENIX_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "arize-phoenix==$PHOENIX_VERSION" ||
            fail "pip could not install arize-phoenix==$PHOENIX_VERSION (network? Python version?)"
        touch "$stamp"
    fi
}

# Starts `phoenix serve` and waits until it answers /healthz.
phoenix_start() {
    PHOENIX_WORK=$(mktemp -d "${TMPDIR:-/tmp}/phoenix-e2e.XXXXXX")
    local http_port grpc_port
    http_port=$(free_port)
    grpc_port=$(free_port)
    PHOENIX_BASE="http://127.0.0.1:$http_port"
    say "starting phoenix serve on $PHOENIX_BASE (working dir $PHOENIX_WORK)"
    # `timeout` bounds the server's life even if the script is killed before its trap runs; it
    # passes the TERM sent by phoenix_stop on to Phoenix.
    PHOENIX_WORKING_DIR="$PHOENIX_WORK" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$http_port" \
        PHOENIX_GRPC_PORT="$grpc_port" PHOENIX_TELEMETRY_ENABLED=false \
        timeout --kill-after=10 1200 "$PHOENIX_VENV/bin/phoenix" serve \
        >"$PHOENIX_WORK/phoenix.log" 2>&1 &
    PHOENIX_PID=$!
    local started=$SECONDS
    until curl -sf "$PHOENIX_BASE/healthz" >/dev/null; do
        if ! kill -0 "$PHOENIX_PID" 2>/dev/null; then
            tail -n 40 "$PHOENIX_WORK/phoenix.log" >&2 || true
            fail "phoenix serve exited before answering /healthz (log above)"
        fi
        if ((SECONDS - started > 300)); then
            tail -n 40 "$PHOENIX_WORK/phoenix.log" >&2 || true
            fail "phoenix serve did not answer $PHOENIX_BASE/healthz within 300 s (log above)"
        fi
        sleep 0.5
    done
    say "Phoenix is up after $((SECONDS - started)) s"
}

# Stops a process started in the background: TERM, up to 10 s, then KILL.
stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

phoenix_stop() {
    stop_pid "$PHOENIX_PID"
    [ -n "${PHOENIX_WORK:-}" ] && rm -rf "$PHOENIX_WORK"
    return 0
}

# Prints the end of Phoenix's log, for a failure message.
phoenix_log_tail() {
    tail -n 40 "$PHOENIX_WORK/phoenix.log" >&2 || true
}
