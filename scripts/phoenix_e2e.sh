#!/usr/bin/env bash
# End to end against a real backend we did not write: Arize Phoenix.
#
# Installs Phoenix in a cached venv (target/phoenix-venv), starts `phoenix serve` on
# 127.0.0.1 with a throwaway working dir and free ports, runs the `otlp` example (a simulated
# RAG request, eight spans) against it over OTLP/HTTP protobuf, reads the spans back from
# GET /v1/projects/{project}/spans and checks names, parent links, span kinds, token counts
# and the failed tool call (scripts/phoenix_check.py), then compares our LLM costs with the ones
# Phoenix computes from its own table (scripts/phoenix_cost_check.py). Stops the server by its PID
# on exit.
#
# Never skips: if Phoenix cannot be installed or started, it fails with a message saying so.
# Time is bounded at every step; a cold install takes about 1-2 minutes, reruns a few seconds.
#
# Environment: PHOENIX_VERSION (default below), PHOENIX_VENV (default target/phoenix-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PHOENIX_VERSION=${PHOENIX_VERSION:-20.26.1}
venv=${PHOENIX_VENV:-target/phoenix-venv}

say() { printf 'phoenix_e2e: %s\n' "$*"; }
fail() {
    printf 'phoenix_e2e: FAIL: %s\n' "$*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is not installed; Phoenix needs Python 3.10-3.13"
command -v curl >/dev/null || fail "curl is not installed"

# 1. Phoenix in a venv, reused while the pinned version is what is installed.
stamp="$venv/.arize-phoenix-$PHOENIX_VERSION"
if [ ! -e "$stamp" ] || [ ! -x "$venv/bin/phoenix" ]; then
    say "installing arize-phoenix==$PHOENIX_VERSION into $venv (about 1-2 minutes)"
    rm -rf "$venv"
    timeout 120 python3 -m venv "$venv" || fail "cannot create a venv with $(python3 --version)"
    timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "arize-phoenix==$PHOENIX_VERSION" ||
        fail "pip could not install arize-phoenix==$PHOENIX_VERSION (network? Python version?)"
    touch "$stamp"
fi

# 2. A throwaway server on free ports.
work=$(mktemp -d "${TMPDIR:-/tmp}/phoenix-e2e.XXXXXX")
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_server EXIT

read -r http_port grpc_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
base="http://127.0.0.1:$http_port"
project="honeyhive-rs-e2e-$(date +%s)-$$"

say "starting phoenix serve on $base (working dir $work)"
# `timeout` bounds the server's life even if this script is killed before its trap runs; it
# passes the TERM sent by stop_server on to Phoenix.
PHOENIX_WORKING_DIR="$work" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$http_port" \
    PHOENIX_GRPC_PORT="$grpc_port" PHOENIX_TELEMETRY_ENABLED=false \
    timeout --kill-after=10 1200 "$venv/bin/phoenix" serve >"$work/phoenix.log" 2>&1 &
server_pid=$!

started=$SECONDS
until curl -sf "$base/healthz" >/dev/null; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        tail -n 40 "$work/phoenix.log" >&2 || true
        fail "phoenix serve exited before answering /healthz (log above)"
    fi
    if ((SECONDS - started > 120)); then
        tail -n 40 "$work/phoenix.log" >&2 || true
        fail "phoenix serve did not answer $base/healthz within 120 s (log above)"
    fi
    sleep 0.5
done
say "Phoenix is up after $((SECONDS - started)) s"

# 3. The example, exporting over OTLP/HTTP protobuf to Phoenix's /v1/traces.
OTEL_EXPORTER_OTLP_ENDPOINT="$base" HH_PROJECT="$project" \
    timeout 900 cargo run -q -p honeyhive-examples --example otlp ||
    fail "the otlp example could not export to Phoenix"

# 4. Read the spans back and check them.
if ! timeout 120 python3 scripts/phoenix_check.py "$base" "$project" 60; then
    tail -n 40 "$work/phoenix.log" >&2 || true
    fail "Phoenix does not hold the expected trace (see above)"
fi

# 5. Our LLM costs for a fixed set of calls against Phoenix's own cost table and calculator.
timeout 900 "$venv/bin/python" scripts/phoenix_cost_check.py ||
    fail "our LLM costs differ from Phoenix's (see above)"
say "OK"
