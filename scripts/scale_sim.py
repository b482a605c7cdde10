#!/usr/bin/env python3
"""Scale simulation: N simulated services x M requests through a collector tier.

Usage: scale_sim.py ROTEL_AGENT LOAD_BINARY [--services 1,2,4,8] [--requests M] [--children K]
                    [--rate R] [--check]

For each N: starts a counting OTLP/HTTP receiver (the "backend") and rotel (the collector)
forwarding to it, runs N copies of the `load` example at once (each M requests of K+1 spans,
paced at R requests/s, 0 = flat out), waits until every service has shut down and the count
has settled, then reports spans made, received by the backend, lost (counted by the services'
shutdown reports), and CPU per delivered span: the services' (getrusage of the children) and
the collector's (/proc/PID/stat). With --check, exits 1 unless every span made was either
received or counted as lost by the service that made it (nothing vanishes unaccounted), and,
at a pace the machine sustains, all were received.
"""
import argparse
import gzip
import http.server
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def fields(buf):
    """(field number, wire type, value or bytes) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield num, wire, value


def count_spans(body):
    """Spans in an ExportTraceServiceRequest: resource_spans(1) > scope_spans(2) > spans(2)."""
    n = 0
    for num, _, rs in fields(body):
        if num == 1:
            for num2, _, ss in fields(rs):
                if num2 == 2:
                    n += sum(1 for num3, _, _ in fields(ss) if num3 == 2)
    return n


class Backend:
    def __init__(self):
        self.spans = 0
        self.lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                with backend.lock:
                    backend.spans += count_spans(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return self.spans


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def run(n, args):
    backend = Backend()
    http_port, grpc_port = free_port(), free_port()
    rotel = subprocess.Popen(
        [args.rotel, "start", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-receiver-metrics-disabled", "--otlp-receiver-logs-disabled",
         "--exporter", "otlp", "--otlp-exporter-protocol", "http",
         "--otlp-exporter-endpoint", f"http://127.0.0.1:{backend.port}",
         "--pid-file", f"/tmp/rotel-sim-{os.getpid()}.pid",
         "--log-file", f"/tmp/rotel-sim-{os.getpid()}.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or rotel.poll() is not None:
                    sys.exit("scale_sim: rotel did not start")
                time.sleep(0.1)
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{http_port}",
                   HH_PROJECT="scale-sim")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        rotel_cpu0 = proc_cpu(rotel.pid)
        started = time.monotonic()
        services = [
            subprocess.Popen([args.load, str(args.requests), str(args.children), str(args.rate)],
                             env=dict(env, OTEL_SERVICE_NAME=f"service-{i}"),
                             stdout=subprocess.PIPE, text=True)
            for i in range(n)]
        reports = []
        for s in services:
            out, _ = s.communicate(timeout=600)
            reports.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # rotel batches for 200 ms: wait until the count stops moving.
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 1.5:
            now = backend.count()
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(0.1)
        rotel_cpu = proc_cpu(rotel.pid) - rotel_cpu0
    finally:
        rotel.terminate()
        try:
            rotel.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rotel.kill()
        backend.server.shutdown()
    made = sum(r["spans"] for r in reports)
    lost = sum(r["dropped"] + r["lost"] for r in reports)
    received = backend.count()
    service_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "services": n, "spans_made": made, "received": received, "lost_counted": lost,
        "unaccounted": made - received - lost, "wall_s": round(wall, 2),
        "service_cpu_us_per_span": round(1e6 * service_cpu / max(received, 1), 2),
        "collector_cpu_us_per_span": round(1e6 * rotel_cpu / max(received, 1), 2),
        "received_per_s": round(received / wall),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("rotel")
    p.add_argument("load")
    p.add_argument("--services", default="1,2,4,8")
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--children", type=int, default=4)
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    rows = [run(int(n), args) for n in args.services.split(",")]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if args.check:
        bad = [r for r in rows if r["unaccounted"] != 0 or r["received"] != r["spans_made"]]
        if bad:
            sys.exit(f"scale_sim: FAIL: spans not delivered or not accounted for: {bad}")
        print("scale_sim: OK: every span made was received")


if __name__ == "__main__":
    main()
