#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver for CI: answers 200 to every POST (/v1/traces, /v1/metrics)
and logs each request.

Usage: otlp_sink.py PORT_FILE LOG_FILE
Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, and appends one line per
request (path, content-type, body bytes) to LOG_FILE. Exits after 300 s at most.
"""
import http.server
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(f"{self.path} {self.headers.get('content-type')} {len(body)}\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
threading.Timer(300, server.shutdown).start()
server.serve_forever()
