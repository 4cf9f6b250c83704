#!/usr/bin/env python3
"""Small HTTP/1.1 upload server for the exfilwatch capture lab.

Lab use only (it is started by captures/record.sh inside a network namespace).

* POST / PUT bodies are read with Content-Length or with chunked
  Transfer-Encoding (de-chunked, trailers skipped); "Expect: 100-continue" is
  answered with an interim "100 Continue" by http.server itself because the
  handler speaks HTTP/1.1.
* The answer is 200 (POST) or 201 (PUT) with a small JSON body that repeats
  the number of body bytes received and their SHA-256.
* GET /files/<name> serves a file from --files (a download); any other GET
  answers a small text body. HEAD is supported too.
* Connections are kept alive (HTTP/1.1) unless the client asks to close.
* One JSON line per transaction is appended to --log (used by the manifest
  checker to cross-check what tshark sees).
"""

import argparse
import hashlib
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time

LOG_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "exfw-lab-upload/1.0"
    sys_version = ""

    # ---- helpers -------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            nchunks = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ValueError("EOF in chunk size line")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers, until the empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                nchunks += 1
                self.rfile.readline(3)  # CRLF after the chunk data
            return b"".join(chunks), nchunks
        length = self.headers.get("Content-Length")
        if length is None:
            return b"", 0
        return self.rfile.read(int(length)), 0

    def _send_delayed(self):
        # --delay-ms stands for a remote server's round trip and work: a
        # lab exchange on a veth lasts well under a millisecond, which no
        # real upload does.
        if self.server.delay > 0:
            time.sleep(self.server.delay)

    def _send(self, code, body, ctype="application/json"):
        self._send_delayed()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _log(self, **kw):
        rec = {
            "time": time.time(),
            "server": "%s:%s" % self.server.server_address[:2],
            "client": "%s:%s" % self.client_address[:2],
            "method": self.command,
            "target": self.path,
            "host": self.headers.get("Host"),
            "transfer_encoding": self.headers.get("Transfer-Encoding"),
            "content_length": self.headers.get("Content-Length"),
            "expect": self.headers.get("Expect"),
        }
        rec.update(kw)
        if self.server.logfile:
            with LOG_LOCK, open(self.server.logfile, "a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")

    # ---- methods -------------------------------------------------------
    def _upload(self, code):
        body, nchunks = self._read_body()
        digest = hashlib.sha256(body).hexdigest()
        reply = json.dumps({"ok": True, "method": self.command, "target": self.path,
                            "bytes": len(body), "sha256": digest}).encode() + b"\n"
        self._send(code, reply)
        self._log(status=code, body_bytes=len(body), body_sha256=digest, chunks=nchunks)

    def do_POST(self):
        self._upload(200)

    def do_PUT(self):
        self._upload(201)

    def do_GET(self):
        body, _ = self._read_body()  # normally empty
        if self.path.startswith("/files/"):
            name = os.path.basename(self.path[len("/files/"):].split("?", 1)[0])
            path = os.path.join(self.server.files_dir or "", name)
            if self.server.files_dir and name and os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                self._send(200, data, "application/octet-stream")
                self._log(status=200, body_bytes=0, response_bytes=len(data),
                          response_sha256=hashlib.sha256(data).hexdigest())
                return
            self._send(404, b"not found\n", "text/plain")
            self._log(status=404, body_bytes=0)
            return
        data = b"exfw lab upload server\n"
        self._send(200, data, "text/plain")
        self._log(status=200, body_bytes=len(body), response_bytes=len(data))

    do_HEAD = do_GET

    def log_message(self, fmt, *args):  # keep stderr quiet but useful
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, family, files_dir, logfile, delay=0.0):
        self.address_family = family
        self.delay = delay
        self.files_dir = files_dir
        self.logfile = logfile
        super().__init__(addr, Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", required=True, help="IPv4 or IPv6 address to listen on")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--files", help="directory served under /files/")
    ap.add_argument("--log", help="append one JSON line per transaction here")
    ap.add_argument("--ready", help="create this file once listening")
    ap.add_argument("--delay-ms", type=float, default=0, help="wait this long before each response (a remote server's latency)")
    a = ap.parse_args()
    family = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    srv = Server((a.bind, a.port), family, a.files, a.log, a.delay_ms / 1000.0)
    if a.ready:
        open(a.ready, "w").close()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
