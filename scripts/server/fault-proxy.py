#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for miascan's remote-engine tests: forwards requests to an
upstream server and answers in the ways real deployments fail, on a schedule that is fixed
per request body, so that a client that retries always gets through and a test is never
flaky: the i-th distinct body (from 1) fails on its first attempt by i mod 8, every third
body also on its second attempt (429), and passes after that:

  1: the connection closed before any answer
  2: 429 Too Many Requests with Retry-After: 1
  3: 500 Internal Server Error
  4: a 1.5 s delay, then the real answer
  5: 503 Service Unavailable, no Retry-After
  6: the request forwarded and answered upstream, then the connection closed before the
     answer reaches the client (the work done, the answer lost)
  7: 502 Bad Gateway with an HTML body
  0: the real answer

GET /faults answers the counts of each kind and of requests that carried a bearer token
(the token itself is never stored or printed). GET /control?fail=TEXT makes every request
whose body holds TEXT fail with 500, always (a passage a server cannot score);
GET /control?fail= ends it. Standard library only.

usage: fault-proxy.py --upstream http://127.0.0.1:PORT [--port P]
The port bound is printed on stdout as "listening on PORT".
"""
import argparse
import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {1: "drop", 2: "429", 3: "500", 4: "delay", 5: "503", 6: "lost", 7: "502", 0: "pass"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ""
    lock = threading.Lock()
    n = 0
    seen = {}
    fail = b""
    counts = {k: 0 for k in KINDS.values()}
    with_token = 0

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def forward(self, method, body):
        req = urllib.request.Request(self.upstream + self.path, data=body, method=method)
        for h in ("Content-Type", "Authorization", "Accept"):
            if self.headers.get(h):
                req.add_header(h, self.headers[h])
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "application/json")

    def do_GET(self):
        if self.path.startswith("/control?fail="):
            Proxy.fail = urllib.parse.unquote(self.path.split("=", 1)[1]).encode()
            return self.reply(200, b"{}")
        if self.path == "/faults":
            with self.lock:
                out = dict(self.counts, requests=Proxy.n, with_token=Proxy.with_token)
            return self.reply(200, json.dumps(out).encode())
        code, body, ctype = self.forward("GET", None)
        self.reply(code, body, ctype)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if Proxy.fail and Proxy.fail in body:
            with self.lock:
                Proxy.counts["500"] += 1
            return self.reply(500, b'{"error": {"message": "injected: this one always fails"}}')
        key = hashlib.sha256(body).hexdigest()
        with self.lock:
            Proxy.n += 1
            if (self.headers.get("Authorization") or "").startswith("Bearer "):
                Proxy.with_token += 1
            index, attempts = Proxy.seen.get(key, (len(Proxy.seen) + 1, 0))
            attempts += 1
            Proxy.seen[key] = (index, attempts)
            if attempts == 1:
                kind = KINDS[index % 8]
            elif attempts == 2 and index % 3 == 0:
                kind = "429"
            else:
                kind = "pass"
            Proxy.counts[kind] += 1
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if kind in ("429", "500", "503", "502"):
            extra = [("Retry-After", "1")] if kind == "429" else []
            msg = b"<html><body>bad gateway</body></html>" if kind == "502" else \
                json.dumps({"error": {"message": f"injected {kind}"}}).encode()
            ctype = "text/html" if kind == "502" else "application/json"
            self.close_connection = True
            return self.reply(int(kind), msg, ctype, extra)
        if kind == "delay":
            time.sleep(1.5)
        code, out, ctype = self.forward("POST", body)
        if kind == "lost":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.reply(code, out, ctype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    Proxy.upstream = a.upstream.rstrip("/")
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Proxy)
    srv.daemon_threads = True
    print(f"listening on {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
