#!/usr/bin/env python3
"""An OTLP/HTTP receiver that decodes what it gets, for the metrics end-to-end check.

Usage: metrics_sink.py PORT_FILE SUMMARY_FILE
Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, answers 200 to POST /v1/metrics
and /v1/traces (protobuf, gzip or not), and after every request rewrites SUMMARY_FILE with what
arrived so far: spans received, and per metric name its kind, unit, data points and the sum of
its values (a histogram's `sum`, a sum's values). Exits after 600 s at most.
"""
import gzip
import http.server
import json
import os
import sys
import threading

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

lock = threading.Lock()
summary = {"spans": 0, "metrics_requests": 0, "metrics": {}}


def record_metrics(req):
    summary["metrics_requests"] += 1
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                entry = summary["metrics"].setdefault(
                    m.name, {"kind": kind, "unit": m.unit, "points": 0, "total": 0.0, "attrs": []})
                points = getattr(m, kind).data_points
                for p in points:
                    entry["points"] += 1
                    if kind == "histogram":
                        entry["total"] += p.sum
                    elif kind in ("sum", "gauge"):
                        entry["total"] += p.as_double if p.HasField("as_double") else p.as_int
                    keys = sorted(kv.key for kv in p.attributes)
                    if keys not in entry["attrs"]:
                        entry["attrs"].append(keys)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        with lock:
            if self.path == "/v1/metrics":
                req = metrics_service_pb2.ExportMetricsServiceRequest()
                req.ParseFromString(body)
                record_metrics(req)
            elif self.path == "/v1/traces":
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                summary["spans"] += sum(len(ss.spans) for rs in req.resource_spans
                                        for ss in rs.scope_spans)
            with open(sys.argv[2] + ".tmp", "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1)
            os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
threading.Timer(600, server.shutdown).start()
server.serve_forever()
