#!/usr/bin/env python3
"""A small HTTP server on 127.0.0.1 for the http-pipeline example and the tests.

  GET  /records/<order_id>   the order's records, as JSON
  POST /notify               takes a JSON summary; needs `Authorization: Bearer <token>`
                             when --token is given (401 otherwise)
  GET  /redirect?to=URL      a 302 to URL
  GET  /big?bytes=N          N bytes of `x`
  GET  /slow?ms=N            waits N ms, then answers
  GET  /seen                 every request received so far (method, path, headers, body), as JSON

Prints `listening on PORT` once it accepts connections; stops on SIGTERM or Ctrl-C.
"""
import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SEEN = []
LOCK = threading.Lock()
RECORDS = {
    "o-1001": {
        "order_id": "o-1001",
        "customer": "c-42",
        "records": [
            {"sku": "A-1", "warehouse": "north", "stock": 12},
            {"sku": "B-2", "warehouse": "south", "stock": 3},
        ],
    }
}


class Handler(BaseHTTPRequestHandler):
    token = None

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json", headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def record(self, body=b""):
        with LOCK:
            SEEN.append({
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            })

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/seen":
            with LOCK:
                return self.reply(200, SEEN)
        self.record()
        query = parse_qs(url.query)
        if url.path.startswith("/records/"):
            order_id = url.path[len("/records/"):]
            if order_id in RECORDS:
                return self.reply(200, RECORDS[order_id])
            return self.reply(404, {"error": f"no records for {order_id}"})
        if url.path == "/redirect":
            return self.reply(302, {}, headers=[("location", query.get("to", ["/"])[0])])
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            return self.reply(200, {"slow": True})
        if url.path == "/big":
            return self.reply(200, b"x" * int(query.get("bytes", ["1000"])[0]), "text/plain")
        return self.reply(200, {"path": url.path})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        self.record(body)
        if urlparse(self.path).path == "/notify":
            if Handler.token is not None and self.headers.get("authorization") != f"Bearer {Handler.token}":
                return self.reply(401, {"error": "missing or wrong bearer token"})
            return self.reply(200, {"notified": True, "bytes": len(body)})
        return self.reply(200, {"posted": len(body)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="the bearer token /notify requires")
    args = parser.parse_args()
    Handler.token = args.token
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
