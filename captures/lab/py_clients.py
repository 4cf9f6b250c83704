#!/usr/bin/env python3
"""Python HTTP clients used by captures/record.sh (standard library only).

  py_clients.py keepalive HOST PORT
      One http.client.HTTPConnection (one TCP connection, HTTP/1.1 keep-alive):
        GET  /files/notes.txt
        POST /upload/keepalive   body = report.pdf   (Content-Length)
        PUT  /put/keys.tar       body = keys.tar     (Content-Length)
        GET  /status
  py_clients.py multipart URL
      urllib.request POST of a multipart/form-data body built here with a
      FIXED boundary (so its size and SHA-256 are reproducible):
        part "user"       = "alice"
        part "document"   filename="report.pdf"  (application/pdf)
        part "attachment" filename="notes.txt"   (text/plain)
  py_clients.py put URL FILE
      urllib.request PUT of FILE's raw bytes (Content-Type application/x-tar).

Files are read from the current directory. Exits non-zero on any non-2xx answer.
"""

import http.client
import sys
import urllib.request

BOUNDARY = "exfwLabBoundary7d1f0c2b"


def read(name):
    with open(name, "rb") as f:
        return f.read()


def keepalive(host, port):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    steps = [
        ("GET", "/files/notes.txt", None, {}),
        ("POST", "/upload/keepalive", read("report.pdf"), {"Content-Type": "application/pdf"}),
        ("PUT", "/put/keys.tar", read("keys.tar"), {"Content-Type": "application/x-tar"}),
        ("GET", "/status", None, {}),
    ]
    sock_id = None
    for method, target, body, headers in steps:
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if sock_id is None:
            sock_id = id(conn.sock)
        elif id(conn.sock) != sock_id:
            raise SystemExit("connection was not kept alive")
        print(method, target, resp.status, len(data))
        if not 200 <= resp.status < 300:
            raise SystemExit("unexpected status %d" % resp.status)
    conn.close()


def multipart_body():
    parts = [
        ('form-data; name="user"', None, b"alice"),
        ('form-data; name="document"; filename="report.pdf"', "application/pdf", read("report.pdf")),
        ('form-data; name="attachment"; filename="notes.txt"', "text/plain", read("notes.txt")),
    ]
    out = b""
    for disp, ctype, data in parts:
        out += b"--" + BOUNDARY.encode() + b"\r\n"
        out += b"Content-Disposition: " + disp.encode() + b"\r\n"
        if ctype:
            out += b"Content-Type: " + ctype.encode() + b"\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + BOUNDARY.encode() + b"--\r\n"
    return out


def multipart(url):
    body = multipart_body()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "multipart/form-data; boundary=" + BOUNDARY})
    with urllib.request.urlopen(req, timeout=10) as resp:
        print("POST", url, resp.status, len(resp.read()), "body", len(body))


def put(url, name):
    req = urllib.request.Request(url, data=read(name), method="PUT", headers={
        "Content-Type": "application/x-tar"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        print("PUT", url, resp.status, len(resp.read()))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"keepalive": keepalive, "multipart": multipart, "put": put}[cmd](*args)
