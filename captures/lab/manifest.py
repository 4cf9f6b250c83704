#!/usr/bin/env python3
"""Check the freshly recorded captures and write captures/MANIFEST.md.

Called by captures/record.sh; can be re-run on the committed captures too:

    python3 captures/lab/manifest.py --captures captures --payloads captures/payloads \
        [--cmds DIR] [--server-log http.log] [--ftp-log vsftpd.log] --manifest /tmp/M.md \
        [--facts DIR]

Besides MANIFEST.md it writes one machine-readable facts file per capture,
DIR/<capture file name>.facts.json (DIR defaults to <captures>/expected), for
the decoder tests (captures/captures_test.go); see write_facts() below. The
facts files are written only when every check passed.

Facts come from three independent sources and must agree, or this exits 1:
  * tshark: every TCP segment (tcp.stream, tcp.seq_raw, tcp.payload) is read
    with tshark, the byte streams are put together here (any gap or
    inconsistent overlap is an error) and HTTP / FTP are parsed from them;
    tshark's own HTTP and FTP dissectors are compared with that parse
    (method, target, Host, Content-Length, chunk sizes, multipart
    dispositions, response codes, FTP command sequence);
  * the payload files (sizes, SHA-256): every body / part / FTP data
    transfer named in EXPECT below must be byte-identical to its file;
  * the servers' own logs (upload_server.py JSON lines, vsftpd.log),
    when given: every HTTP transaction and FTP transfer must be there with
    the same byte count and SHA-256.
"""

import argparse
import bisect
import collections
import gzip
import hashlib
import json
import os
import re
import struct
import subprocess
import sys

# ---------------------------------------------------------------------------
# expectations: what record.sh did, capture by capture
# ---------------------------------------------------------------------------


def F(name):
    return ("file", name)


def L(data):
    return ("literal", data)


def P(name, filename, content, ctype=None):
    return {"name": name, "filename": filename, "content": content, "ctype": ctype}


def MP(*parts, boundary=None):
    """multipart body; boundary=None: the client picks a random boundary on every
    run (curl -F), so the body's SHA-256 changes on re-record; else the fixed
    boundary the client uses (checked)."""
    return ("multipart", list(parts), boundary)


def H(method, target, body, status, conn, resp=None, chunked=False, expect=None):
    return {"method": method, "target": target, "body": body, "status": status,
            "conn": conn, "resp": resp, "chunked": chunked, "expect": expect}


def X(cmd, arg, setup, content):
    return {"cmd": cmd, "arg": arg, "setup": setup, "content": content}


CURL_MP_REPORT = MP(P("file", "report.pdf", F("report.pdf"), "application/pdf"))

EXPECT = collections.OrderedDict([
    ("http_curl_multipart.pcap", {
        "what": "curl multipart/form-data POST: one request, two parts (a file and a text field).",
        "link": [1],
        "http": [H("POST", "/upload", MP(P("file", "report.pdf", F("report.pdf"), "application/pdf"),
                                         P("note", None, L(b"hello"))), 200, 0)],
    }),
    ("http_curl_put_raw.pcap", {
        "what": "curl -T (PUT, raw body; curl adds Expect: 100-continue) and curl --data-binary "
                "(POST, raw body, curl's default Content-Type application/x-www-form-urlencoded); "
                "two TCP connections.",
        "link": [1],
        "http": [H("PUT", "/put/notes.txt", F("notes.txt"), 201, 0, expect=True),
                 H("POST", "/upload/raw", F("keys.tar"), 200, 1, expect=False)],
    }),
    ("http_curl_chunked.pcap", {
        "what": "Chunked request bodies (curl -H 'Transfer-Encoding: chunked': POST from memory in one chunk, "
                "PUT -T from a file in several chunks, with Expect: 100-continue) and a forced "
                "Expect: 100-continue POST with Content-Length; three TCP connections.",
        "link": [1],
        "http": [H("POST", "/upload/chunked", F("report.pdf"), 200, 0, chunked=True),
                 H("PUT", "/put/chunked-keys.tar", F("keys.tar"), 201, 1, chunked=True, expect=True),
                 H("POST", "/upload/expect", F("keys.tar"), 200, 2, expect=True)],
    }),
    ("http_wget_post.pcap", {
        "what": "wget --post-file upload and a wget download (GET); two TCP connections.",
        "link": [1],
        "http": [H("POST", "/upload/wget", F("notes.txt"), 200, 0),
                 H("GET", "/files/report.pdf", None, 200, 1, resp=F("report.pdf"))],
    }),
    ("http_python_keepalive.pcap", {
        "what": "python3 http.client: four transactions on ONE keep-alive TCP connection "
                "(GET download, POST raw body, PUT raw body, GET), then a python3 urllib "
                "multipart/form-data POST with a fixed boundary on a second connection.",
        "link": [1],
        "http": [H("GET", "/files/notes.txt", None, 200, 0, resp=F("notes.txt")),
                 H("POST", "/upload/keepalive", F("report.pdf"), 200, 0),
                 H("PUT", "/put/keys.tar", F("keys.tar"), 201, 0),
                 H("GET", "/status", None, 200, 0, resp=L(b"exfw lab upload server\n")),
                 H("POST", "/upload/urllib",
                   MP(P("user", None, L(b"alice")),
                      P("document", "report.pdf", F("report.pdf"), "application/pdf"),
                      P("attachment", "notes.txt", F("notes.txt"), "text/plain"),
                      boundary="exfwLabBoundary7d1f0c2b"), 200, 1)],
    }),
    ("http_ipv6_port8443.pcap", {
        "what": "HTTP over IPv6 to the non-standard port 8443 (plain HTTP, not TLS): a raw POST and "
                "a multipart POST; two TCP connections.",
        "link": [1],
        "http": [H("POST", "/upload/v6", F("notes.txt"), 200, 0),
                 H("POST", "/upload/v6-form", CURL_MP_REPORT, 200, 1)],
    }),
    ("ftp_passive_stor_retr.pcap", {
        "what": "FTP passive mode (curl's default EPSV): STOR upload, RETR download, LIST; "
                "three control connections.",
        "link": [1],
        "ftp": [X("STOR", "report.pdf", "EPSV", F("report.pdf")),
                X("RETR", "report.pdf", "EPSV", F("report.pdf")),
                X("LIST", None, "EPSV", None)],
    }),
    ("ftp_active_port.pcap", {
        "what": "FTP active mode (curl -P -): EPRT upload + download, then --disable-eprt "
                "(PORT) upload + download; the server connects from port 20 to the client.",
        "link": [1],
        "ftp": [X("STOR", "notes.txt", "EPRT", F("notes.txt")),
                X("RETR", "notes.txt", "EPRT", F("notes.txt")),
                X("STOR", "active-report.pdf", "PORT", F("report.pdf")),
                X("RETR", "active-report.pdf", "PORT", F("report.pdf"))],
    }),
    ("ftp_pasv_noepsv.pcap", {
        "what": "FTP passive mode with PASV (curl --disable-epsv): one upload of a multi-segment file.",
        "link": [1],
        "ftp": [X("STOR", "keys.tar", "PASV", F("keys.tar"))],
    }),
    ("ftp_ipv6_epsv.pcap", {
        "what": "FTP over IPv6: EPSV (passive) upload and EPRT |2| (active) upload.",
        "link": [1],
        "ftp": [X("STOR", "v6-notes.txt", "EPSV", F("notes.txt")),
                X("STOR", "v6-active-report.pdf", "EPRT", F("report.pdf"))],
    }),
    ("ftp_port2121.pcap", {
        "what": "FTP control connection on the non-standard port 2121 (tshark needs "
                "-d tcp.port==2121,ftp): EPSV upload and download.",
        "link": [1],
        "ftp": [X("STOR", "port2121-notes.txt", "EPSV", F("notes.txt")),
                X("RETR", "port2121-notes.txt", "EPSV", F("notes.txt"))],
    }),
    ("lo0_null_http.pcap", {
        "what": "HTTP uploads on the loopback of the host namespace (MTU 16384 like macOS lo0), "
                "IPv4 127.0.0.1:8081 and IPv6 [::1]:8081, recorded as Ethernet and rewritten to "
                "DLT_NULL (LINKTYPE 0, 4-byte little-endian family 2 = IPv4, 30 = IPv6) by "
                "captures/lab/eth_to_null.py (only the link header changes).",
        "link": [0],
        "http": [H("POST", "/upload/lo", MP(P("file", "notes.txt", F("notes.txt"), "text/plain")), 200, 0),
                 H("PUT", "/put/report.pdf", F("report.pdf"), 201, 1, expect=True)],
    }),
    ("mixed.pcapng", {
        "what": "pcapng with two interfaces of different link types: interface 0 = Ethernet "
                "(host veth, an HTTP multipart upload), interface 1 = Linux cooked v2 / SLL2 "
                "(LINKTYPE 276, 'any' in the remote namespace, an FTP upload); merged with mergecap.",
        "link": [1, 276],
        "http": [H("POST", "/upload/mixed", CURL_MP_REPORT, 200, 0)],
        "ftp": [X("STOR", "mixed-notes.txt", "EPSV", F("notes.txt"))],
    }),
    ("demo/demo.pcapng", {
        "what": "Demo scenario (pcapng, Ethernet): curl multipart upload of a document, python3 "
                "urllib PUT of a tar file, wget download, curl FTP STOR.",
        "link": [1],
        "http": [H("POST", "/upload", MP(P("document", "report.pdf", F("report.pdf"), "application/pdf"),
                                         P("comment", None, L(b"Q3 board deck"))), 200, 0),
                 H("PUT", "/backup/keys.tar", F("keys.tar"), 201, 1),
                 H("GET", "/files/notes.txt", None, 200, 2, resp=F("notes.txt"))],
        "ftp": [X("STOR", "demo-notes.txt", "EPSV", F("notes.txt"))],
    }),
    ("http_curl_multipart.pcap.gz", {
        "what": "gzip -9 -n copy of http_curl_multipart.pcap (identical once decompressed).",
        "gzip_of": "http_curl_multipart.pcap",
    }),
])

HTTP_PORTS = {8080, 8443, 8081}
FTP_PORTS = {21, 2121}
LINKNAMES = {0: "NULL (BSD loopback)", 1: "EN10MB (Ethernet)", 113: "LINUX_SLL", 276: "LINUX_SLL2"}

errors = []


def err(capture, msg):
    errors.append("%s: %s" % (capture, msg))


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------
# file-level facts (parsed directly from the file format)
# ---------------------------------------------------------------------------


def file_facts(path):
    raw = open(path, "rb").read()
    facts = {"size": len(raw), "sha256": sha(raw)}
    data = gzip.decompress(raw) if path.endswith(".gz") else raw
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xd4, 0x4d) else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
        off, n, families = 24, 0, collections.Counter()
        while off < len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            if linktype == 0:
                families[struct.unpack("<I", data[off + 16:off + 20])[0]] += 1
            off += 16 + incl
            n += 1
        facts.update(format="pcap (%s-endian, %s timestamps)" % ("little" if e == "<" else "big",
                                                                  "ns" if nano else "µs"),
                     links=[linktype], packets=n)
        if linktype == 0:
            facts["null_families"] = dict(families)
    elif magic == b"\x0a\x0d\x0d\x0a":
        links, off, n = [], 0, 0
        e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        while off < len(data):
            btype, blen = struct.unpack(e + "II", data[off:off + 8])
            if btype == 1:
                links.append(struct.unpack(e + "H", data[off + 8:off + 10])[0])
            elif btype in (3, 6):
                n += 1
            off += blen
        facts.update(format="pcapng", links=links, packets=n)
    else:
        facts.update(format="unknown", links=[], packets=0)
    return facts, data


# ---------------------------------------------------------------------------
# TCP streams from tshark
# ---------------------------------------------------------------------------

TSHARK = ["tshark", "-n", "-d", "tcp.port==2121,ftp", "-d", "tcp.port==8443,http",
          "-d", "tcp.port==8081,http"]


def tshark_fields(path, dfilter, fields):
    cmd = TSHARK + ["-r", path, "-Y", dfilter, "-T", "fields", "-E", "separator=\t",
                    "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    rows = []
    for line in out.decode("utf-8", "replace").split("\n"):
        if line:
            rows.append(line.split("\t"))
    return rows


class Stream:
    def __init__(self, idx):
        self.idx = idx
        self.first = None
        self.iface = None
        self.client = self.server = None   # (ip, port) of SYN sender / receiver
        self.segs = {}                      # (ip, port) -> list of (seq, payload, frame)
        self.isn = {}
        self.data = {}
        self.frames = {}                    # (ip, port) -> [(byte offset, frame number)]

    def add(self, frame, iface, src, sport, dst, dport, syn, ack, seq, payload):
        if self.first is None:
            self.first, self.iface = frame, iface
        a, b = (src, sport), (dst, dport)
        if syn and not ack:
            self.client, self.server = a, b
        if syn:
            self.isn[a] = seq
        self.segs.setdefault(a, []).append((seq, payload, frame))
        self.segs.setdefault(b, [])

    def assemble(self, capture):
        for ep, segs in self.segs.items():
            if ep not in self.isn:
                err(capture, "stream %d: no SYN from %s:%s" % (self.idx, ep[0], ep[1]))
                start = min(s for s, _, _ in segs)
            else:
                start = (self.isn[ep] + 1) & 0xFFFFFFFF
            buf = bytearray()
            frames = []  # (offset of the first new byte, frame that brought it)
            for seq, pl, fr in sorted(((s - start) & 0xFFFFFFFF, p, f) for s, p, f in segs if p):
                if seq == len(buf):
                    frames.append((len(buf), fr))
                    buf += pl
                elif seq < len(buf):
                    overlap = buf[seq:seq + len(pl)]
                    if overlap != pl[:len(overlap)]:
                        err(capture, "stream %d: inconsistent retransmission" % self.idx)
                    if len(pl) > len(overlap):
                        frames.append((len(buf), fr))
                    buf += pl[len(overlap):]
                else:
                    err(capture, "stream %d: gap of %d bytes" % (self.idx, seq - len(buf)))
                    frames.append((len(buf), fr))
                    buf += pl
            self.data[ep] = bytes(buf)
            self.frames[ep] = frames

    def frame_at(self, ep, offset):
        """number of the frame that carried byte `offset` of ep's byte stream"""
        frames = self.frames.get(ep) or [(0, self.first)]
        i = bisect.bisect_right([o for o, _ in frames], offset) - 1
        return frames[max(i, 0)][1]

    def c2s(self):
        return self.data.get(self.client, b"")

    def s2c(self):
        return self.data.get(self.server, b"")

    def name(self):
        def ep(x):
            return ("[%s]:%d" if ":" in x[0] else "%s:%d") % x
        return "%s → %s" % (ep(self.client), ep(self.server))


def read_streams(capture, path):
    rows = tshark_fields(path, "tcp", ["frame.number", "frame.interface_id", "ip.src", "ipv6.src",
                                        "ip.dst", "ipv6.dst", "tcp.stream", "tcp.srcport",
                                        "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack",
                                        "tcp.seq_raw", "tcp.payload"])
    streams = collections.OrderedDict()
    for r in rows:
        frame, iface, s4, s6, d4, d6, st, sp, dp, syn, ack, seq, pl = r
        st = int(st)
        s = streams.setdefault(st, Stream(st))
        s.add(int(frame), iface, s4 or s6, int(sp), d4 or d6, int(dp),
              syn in ("1", "True"), ack in ("1", "True"), int(seq),
              bytes.fromhex(pl.replace(":", "")))
    for s in streams.values():
        s.assemble(capture)
        if s.client is None:
            err(capture, "stream %d: no SYN seen" % s.idx)
    return [s for s in streams.values() if s.client]


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def parse_head(buf, pos):
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0:
        raise ValueError("incomplete header block at %d" % pos)
    lines = buf[pos:end].decode("latin-1").split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs.append((k.strip(), v.strip()))
    return lines[0], hdrs, end + 4


def hget(hdrs, name):
    for k, v in hdrs:
        if k.lower() == name.lower():
            return v
    return None


def read_body(buf, pos, hdrs, until_close):
    te = (hget(hdrs, "Transfer-Encoding") or "").lower()
    if "chunked" in te:
        chunks, out = [], bytearray()
        while True:
            eol = buf.index(b"\r\n", pos)
            size = int(buf[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                while True:  # trailers
                    eol = buf.index(b"\r\n", pos)
                    line, pos = buf[pos:eol], eol + 2
                    if not line:
                        break
                return bytes(out), pos, "chunked", chunks
            out += buf[pos:pos + size]
            chunks.append(size)
            pos += size
            if buf[pos:pos + 2] != b"\r\n":
                raise ValueError("bad chunk end")
            pos += 2
    cl = hget(hdrs, "Content-Length")
    if cl is not None:
        n = int(cl)
        if pos + n > len(buf):
            raise ValueError("truncated body")
        return buf[pos:pos + n], pos + n, "content-length", None
    if until_close:
        return buf[pos:], len(buf), "until-close", None
    return b"", pos, "none", None


def parse_http(stream):
    c2s, s2c = stream.c2s(), stream.s2c()
    reqs, pos = [], 0
    while pos < len(c2s):
        frame = stream.frame_at(stream.client, pos)
        line, hdrs, pos = parse_head(c2s, pos)
        method, target, version = line.split(" ", 2)
        body, pos, framing, chunks = read_body(c2s, pos, hdrs, False)
        reqs.append({"method": method, "target": target, "version": version, "headers": hdrs,
                     "body": body, "framing": framing, "chunks": chunks, "interim": [],
                     "stream": stream, "frame": frame})
    finals, interim, pos = [], [], 0
    while pos < len(s2c):
        line, hdrs, pos = parse_head(s2c, pos)
        code = int(line.split(" ", 2)[1])
        if 100 <= code < 200:
            interim.append(code)
            continue
        req = reqs[len(finals)] if len(finals) < len(reqs) else None
        if (req and req["method"] == "HEAD") or code in (204, 304):
            body, framing = b"", "none"
        else:
            body, pos, framing, _ = read_body(s2c, pos, hdrs, True)
        finals.append({"code": code, "line": line, "headers": hdrs, "body": body, "interim": interim})
        interim = []
    for q, r in zip(reqs, finals):
        q["response"] = r
    return reqs


def parse_multipart(body, ctype):
    m = re.search(r'boundary="?([^";]+)"?', ctype or "")
    if not m:
        raise ValueError("no boundary")
    delim = b"--" + m.group(1).encode()
    parts = []
    pos = body.index(delim) + len(delim)
    while True:
        if body[pos:pos + 2] == b"--":
            break
        pos += 2  # CRLF after the delimiter
        end = body.index(b"\r\n" + delim, pos)
        hend = body.index(b"\r\n\r\n", pos)
        hdrs = {}
        for ln in body[pos:hend].decode("latin-1").split("\r\n"):
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        content = body[hend + 4:end]
        disp = hdrs.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disp)
        fname = re.search(r'\bfilename="([^"]*)"', disp)
        parts.append({"name": name.group(1) if name else None,
                      "filename": fname.group(1) if fname else None,
                      "ctype": hdrs.get("content-type"), "disposition": disp,
                      "content": content})
        pos = end + 2 + len(delim)
    return parts, m.group(1)


# ---------------------------------------------------------------------------
# FTP
# ---------------------------------------------------------------------------


def ftp_replies(data):
    replies, cur = [], None
    for ln in data.decode("latin-1").split("\r\n"):
        if not ln:
            continue
        if cur is None:
            if len(ln) >= 4 and ln[:3].isdigit() and ln[3] == "-":
                cur = [ln[:3], [ln[4:]]]
                continue
            replies.append((int(ln[:3]), ln[4:]))
        else:
            if ln[:3] == cur[0] and ln[3:4] == " ":
                cur[1].append(ln[4:])
                replies.append((int(cur[0]), " / ".join(cur[1])))
                cur = None
            else:
                cur[1].append(ln)
    return replies


def parse_ftp_control(stream):
    cmds, off = [], 0
    for ln in stream.c2s().decode("latin-1").split("\r\n"):
        if ln:
            c, _, a = ln.partition(" ")
            cmds.append({"cmd": c.upper(), "arg": a, "replies": [],
                         "frame": stream.frame_at(stream.client, off)})
        off += len(ln) + 2
    replies = ftp_replies(stream.s2c())
    if not replies or replies[0][0] != 220:
        raise ValueError("no 220 greeting")
    greeting, ri = replies[0], 1
    for c in cmds:
        while ri < len(replies):
            code, text = replies[ri]
            ri += 1
            c["replies"].append((code, text))
            if code >= 200:
                break
    return greeting, cmds


def parse_ftp(streams, capture):
    ctrl = [s for s in streams if s.server[1] in FTP_PORTS]
    others = [s for s in streams if s.server[1] not in FTP_PORTS | HTTP_PORTS]
    used, sessions, transfers = set(), [], []
    for cs in ctrl:
        greeting, cmds = parse_ftp_control(cs)
        sessions.append({"stream": cs, "greeting": greeting, "cmds": cmds})
        setup = None
        cwd = None
        for c in cmds:
            cmd, arg = c["cmd"], c["arg"]
            final = c["replies"][-1] if c["replies"] else (None, "")
            if cmd == "PWD" and final[0] == 257:
                cwd = final[1].split('"')[1]
            if cmd in ("PASV", "EPSV", "PORT", "EPRT"):
                if cmd == "PASV":
                    nums = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", final[1]).groups()
                    port = int(nums[4]) * 256 + int(nums[5])
                elif cmd == "EPSV":
                    port = int(re.search(r"\|\|\|(\d+)\|", final[1]).group(1))
                elif cmd == "PORT":
                    nums = arg.split(",")
                    port = int(nums[4]) * 256 + int(nums[5])
                else:
                    port = int(arg.strip("|").split("|")[2])
                setup = (cmd, port, "%s %s" % (cmd, arg) if arg else cmd, final)
            if cmd in ("STOR", "RETR", "LIST", "NLST", "APPE", "STOU", "MLSD"):
                if setup is None:
                    err(capture, "transfer %s without PASV/EPSV/PORT/EPRT" % cmd)
                    continue
                mode = "passive" if setup[0] in ("PASV", "EPSV") else "active"
                cand = None
                for ds in others:
                    if ds.idx in used or ds.first < cs.first:
                        continue
                    if mode == "passive":
                        ok = ds.client[0] == cs.client[0] and ds.server == (cs.server[0], setup[1])
                    else:
                        ok = ds.server == (cs.client[0], setup[1]) and ds.client[0] == cs.server[0]
                    if ok:
                        cand = ds
                        break
                if cand is None:
                    err(capture, "no data connection for %s %s" % (cmd, arg))
                    continue
                used.add(cand.idx)
                upload = cmd in ("STOR", "APPE", "STOU")
                # bytes sent from the FTP client host / from the FTP server host
                from_client = cand.c2s() if mode == "passive" else cand.s2c()
                from_server = cand.s2c() if mode == "passive" else cand.c2s()
                data = from_client if upload else from_server
                other = from_server if upload else from_client
                if other:
                    err(capture, "%s %s: %d bytes in the wrong direction" % (cmd, arg, len(other)))
                transfers.append({"ctrl": cs, "data": cand, "cmd": cmd, "arg": arg or None,
                                  "cwd": cwd, "setup": setup, "mode": mode,
                                  "direction": "upload" if upload else "download",
                                  "bytes": data, "final": final, "replies": c["replies"]})
                setup = None
    for ds in others:
        if ds.idx not in used:
            err(capture, "unexplained TCP connection %s" % ds.name())
    return sessions, transfers


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------


def content_bytes(spec, payloads):
    kind, v = spec
    if kind == "file":
        return open(os.path.join(payloads, v), "rb").read()
    return v


def describe(spec):
    kind, v = spec
    return "= %s" % v if kind == "file" else "= literal %r" % v.decode()


def check_http(capture, reqs, exp, payloads):
    if [(r["method"], r["target"]) for r in reqs] != [(e["method"], e["target"]) for e in exp]:
        err(capture, "HTTP requests %s, expected %s" % (
            [(r["method"], r["target"]) for r in reqs], [(e["method"], e["target"]) for e in exp]))
        return
    conns = {}
    for r, e in zip(reqs, exp):
        tag = "%s %s" % (r["method"], r["target"])
        conns.setdefault(e["conn"], r["stream"].idx)
        if conns[e["conn"]] != r["stream"].idx:
            err(capture, "%s: on TCP stream %d, expected the connection of another request"
                % (tag, r["stream"].idx))
        r["conn"] = e["conn"]
        resp = r.get("response")
        if resp is None or resp["code"] != e["status"]:
            err(capture, "%s: status %s, expected %d" % (tag, resp and resp["code"], e["status"]))
        if e["chunked"] != (r["framing"] == "chunked"):
            err(capture, "%s: framing %s" % (tag, r["framing"]))
        has_expect = (hget(r["headers"], "Expect") or "").lower() == "100-continue"
        if e["expect"] is not None and e["expect"] != has_expect:
            err(capture, "%s: Expect: 100-continue present=%s" % (tag, has_expect))
        if has_expect and resp is not None and 100 not in resp["interim"]:
            err(capture, "%s: Expect without 100 Continue" % tag)
        body = e["body"]
        r["parts"] = None
        if body is None:
            if r["body"]:
                err(capture, "%s: unexpected body of %d bytes" % (tag, len(r["body"])))
        elif body[0] == "multipart":
            parts, boundary = parse_multipart(r["body"], hget(r["headers"], "Content-Type"))
            r["parts"], r["boundary"] = parts, boundary
            r["random_boundary"] = body[2] is None
            if body[2] is not None and boundary != body[2]:
                err(capture, "%s: boundary %r, expected the fixed %r" % (tag, boundary, body[2]))
            if len(parts) != len(body[1]):
                err(capture, "%s: %d parts, expected %d" % (tag, len(parts), len(body[1])))
            for p, ep in zip(parts, body[1]):
                want = content_bytes(ep["content"], payloads)
                if (p["name"], p["filename"]) != (ep["name"], ep["filename"]) or p["content"] != want:
                    err(capture, "%s: part %r/%r (%d bytes) differs from expected %r/%r %s"
                        % (tag, p["name"], p["filename"], len(p["content"]), ep["name"],
                           ep["filename"], describe(ep["content"])))
                if ep["ctype"] and p["ctype"] != ep["ctype"]:
                    err(capture, "%s: part %r Content-Type %r" % (tag, p["name"], p["ctype"]))
                p["expect"] = ep
        else:
            if r["body"] != content_bytes(body, payloads):
                err(capture, "%s: body (%d bytes, %s) differs from %s"
                    % (tag, len(r["body"]), sha(r["body"]), describe(body)))
        if e["resp"] is not None and resp is not None:
            if resp["body"] != content_bytes(e["resp"], payloads):
                err(capture, "%s: response body differs from %s" % (tag, describe(e["resp"])))


def check_http_tshark(capture, path, reqs):
    rows = tshark_fields(path, "http.request or http.response",
                         ["tcp.stream", "http.request.method", "http.request.uri", "http.host",
                          "http.content_length_header", "http.transfer_encoding",
                          "http.response.code", "http.chunk_size",
                          "mime_multipart.header.content-disposition"])
    treqs = [r for r in rows if r[1]]
    tresp = [r for r in rows if r[6]]
    if len(treqs) != len(reqs):
        err(capture, "tshark sees %d HTTP requests, parse %d" % (len(treqs), len(reqs)))
        return
    for t, r in zip(treqs, reqs):
        tag = "%s %s" % (r["method"], r["target"])
        mine = [str(r["stream"].idx), r["method"], r["target"], hget(r["headers"], "Host") or "",
                hget(r["headers"], "Content-Length") or "", hget(r["headers"], "Transfer-Encoding") or ""]
        if t[:6] != mine:
            err(capture, "%s: tshark %s vs parse %s" % (tag, t[:6], mine))
        if r["chunks"] is not None:
            tchunks = [int(x) for x in t[7].split("|") if x and x != "0"]
            if tchunks != r["chunks"]:
                err(capture, "%s: tshark chunk sizes %s vs parse %s" % (tag, tchunks, r["chunks"]))
        if r["parts"] is not None:
            tdisp = [x for x in t[8].split("|") if x]
            if tdisp != [re.sub(r"\s+", "", p["disposition"]) for p in r["parts"]]:
                err(capture, "%s: tshark multipart dispositions %s" % (tag, tdisp))
    codes = [int(x[6]) for x in tresp]
    mine = []
    for r in reqs:
        mine += r["response"]["interim"] + [r["response"]["code"]]
    if codes != mine:
        err(capture, "tshark response codes %s vs parse %s" % (codes, mine))


def check_ftp(capture, transfers, sessions, exp, payloads, path):
    got = [(t["cmd"], t["arg"], t["setup"][0]) for t in transfers]
    want = [(e["cmd"], e["arg"], e["setup"]) for e in exp]
    if got != want:
        err(capture, "FTP transfers %s, expected %s" % (got, want))
        return
    for t, e in zip(transfers, exp):
        if t["final"][0] != 226:
            err(capture, "%s %s: final reply %s" % (t["cmd"], t["arg"], t["final"]))
        if e["content"] is not None and t["bytes"] != content_bytes(e["content"], payloads):
            err(capture, "%s %s: %d data bytes differ from %s"
                % (t["cmd"], t["arg"], len(t["bytes"]), describe(e["content"])))
        if e["content"] is None and not t["bytes"]:
            err(capture, "%s: no data" % t["cmd"])
    for s in sessions:
        codes = [c["replies"][-1][0] if c["replies"] else None for c in s["cmds"]]
        if 230 not in codes:
            err(capture, "FTP session %s did not log in" % s["stream"].name())
    # tshark's FTP dissector must see the same command sequence
    rows = tshark_fields(path, "ftp.request.command", ["tcp.stream", "ftp.request.command",
                                                       "ftp.request.arg"])
    tcmds = [(int(r[0]), r[1].upper(), r[2]) for r in rows]
    mine = [(s["stream"].idx, c["cmd"], c["arg"]) for s in sessions for c in s["cmds"]]
    if sorted(tcmds) != sorted(mine):
        err(capture, "tshark FTP commands differ from parse")


def check_server_logs(capture, reqs, transfers, http_log, ftp_log):
    for r in reqs:
        resp = r.get("response") or {}
        key = (r["method"], r["target"], hget(r["headers"], "Host"), resp.get("code"))
        for i, ent in enumerate(http_log):
            if ent is None:
                continue
            if (ent["method"], ent["target"], ent["host"], ent["status"]) != key:
                continue
            if r["method"] in ("POST", "PUT") and (ent["body_bytes"], ent["body_sha256"]) != (
                    len(r["body"]), sha(r["body"])):
                continue
            if "response_sha256" in ent and ent["response_sha256"] != sha(resp.get("body", b"")):
                continue
            http_log[i] = None
            r["server_log"] = True
            break
        else:
            err(capture, "%s %s not in the HTTP server log" % (r["method"], r["target"]))
    for t in transfers:
        if t["cmd"] not in ("STOR", "RETR"):
            continue
        kind = "UPLOAD" if t["cmd"] == "STOR" else "DOWNLOAD"
        fpath = os.path.join(t["cwd"] or "/", t["arg"])
        for i, ent in enumerate(ftp_log):
            if ent is not None and ent == (kind, t["ctrl"].client[0], fpath, len(t["bytes"])):
                ftp_log[i] = None
                t["server_log"] = True
                break
        else:
            err(capture, "%s %s (%d bytes) not in vsftpd.log" % (t["cmd"], t["arg"], len(t["bytes"])))


# ---------------------------------------------------------------------------
# MANIFEST.md
# ---------------------------------------------------------------------------


def md_capture(name, ff, exp, cmds, streams, reqs, sessions, transfers, payload_names):
    out = ["", "## `%s`" % name, "", exp["what"], ""]
    links = ", ".join("%d = %s" % (l, LINKNAMES.get(l, "?")) for l in ff["links"])
    out.append("- file: %d bytes, %s, %d packets, link type%s %s" % (
        ff["size"], ff["format"], ff["packets"], "s" if len(ff["links"]) > 1 else "", links))
    if "null_families" in ff:
        out.append("- DLT_NULL family values (little-endian uint32): " + ", ".join(
            "%d × %d (%s)" % (n, fam, {2: "AF_INET", 30: "AF_INET6 (Darwin)"}.get(fam, "?"))
            for fam, n in sorted(ff["null_families"].items())))
    out.append("- sha256 of this recording: `%s`" % ff["sha256"])
    if cmds:
        cap, cli = cmds
        out += ["", "Recorded with (in the host namespace unless noted):", "", "```"] + cap + ["```", "",
                "Client commands (host namespace, working directory = the payload files):", "",
                "```"] + cli + ["```"]
    if streams:
        out += ["", "TCP connections (tcp.stream = index in tshark):", "",
                "| tcp.stream | initiator (SYN) → acceptor | initiator bytes | acceptor bytes | role |",
                "|---|---|---|---|---|"]
        roles = {}
        for s in sessions:
            roles[s["stream"].idx] = "FTP control"
        for t in transfers:
            roles[t["data"].idx] = "FTP data (%s %s, %s)" % (t["cmd"], t["arg"] or "", t["setup"][0])
        for r in reqs:
            roles[r["stream"].idx] = "HTTP (conn %d)" % r["conn"]
        for s in streams:
            iface = " (interface %s)" % s.iface if len(ff["links"]) > 1 else ""
            out.append("| %d | %s%s | %d | %d | %s |" % (s.idx, s.name(), iface, len(s.c2s()),
                                                         len(s.s2c()), roles.get(s.idx, "?")))
    if reqs:
        out += ["", "HTTP transactions (bodies de-chunked):", "",
                "| # | tcp.stream | method | target | Host | Content-Type | framing | Expect | body bytes | body SHA-256 | body is | status | response body bytes |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(reqs):
            resp = r["response"]
            if r["framing"] == "chunked":
                framing = "chunked (%d chunk%s: %s)" % (len(r["chunks"]), "" if len(r["chunks"]) == 1 else "s",
                                                       ", ".join(map(str, r["chunks"])))
            elif r["framing"] == "content-length":
                framing = "Content-Length: %s" % hget(r["headers"], "Content-Length")
            else:
                framing = "no body"
            expect = hget(r["headers"], "Expect") or "-"
            status = "%d" % resp["code"]
            if resp["interim"]:
                status = " + ".join(map(str, resp["interim"])) + " then " + status
            if r["parts"] is not None:
                what = "multipart/form-data, %d part%s (below)" % (len(r["parts"]), "" if len(r["parts"]) == 1 else "s")
            elif r["body"]:
                what = "raw: %s" % file_name_of(r["body"], payload_names)
            else:
                what = "-"
            ctype = hget(r["headers"], "Content-Type")
            if r["parts"] is not None:
                ctype = ctype.split(";")[0]
            out.append("| %d | %d | %s | `%s` | `%s` | %s | %s | %s | %d | `%s` | %s | %s | %d%s |" % (
                i + 1, r["stream"].idx, r["method"], r["target"], hget(r["headers"], "Host"),
                "`%s`" % ctype if ctype else "-", framing, expect, len(r["body"]), sha(r["body"]) if r["body"] else "-", what, status,
                len(resp["body"]), (" (" + file_name_of(resp["body"], payload_names) + ")")
                if file_name_of(resp["body"], payload_names, None) else ""))
        for i, r in enumerate(reqs):
            if r["parts"] is None:
                continue
            out += ["", "Request %d multipart parts (boundary `%s`, Content-Type `%s`):" % (
                i + 1, r["boundary"], hget(r["headers"], "Content-Type")), "",
                "| part | name | filename | Content-Type | bytes | SHA-256 | is |",
                "|---|---|---|---|---|---|---|"]
            for j, p in enumerate(r["parts"]):
                out.append("| %d | `%s` | %s | %s | %d | `%s` | %s |" % (
                    j + 1, p["name"], "`%s`" % p["filename"] if p["filename"] else "-",
                    p["ctype"] or "-", len(p["content"]), sha(p["content"]),
                    file_name_of(p["content"], payload_names, "literal %r" % p["content"].decode("latin-1")
                                 if len(p["content"]) < 64 else "?")))
    if sessions:
        for s in sessions:
            out += ["", "FTP control connection tcp.stream %d, %s (greeting %d):" % (
                s["stream"].idx, s["stream"].name(), s["greeting"][0]), "",
                "| command | arg | replies (last = final) |", "|---|---|---|"]
            for c in s["cmds"]:
                arg = c["arg"]
                out.append("| %s | %s | %s |" % (c["cmd"], "`%s`" % cell(arg) if arg else "-",
                                                  ", ".join("%d" % code for code, _ in c["replies"])))
    if transfers:
        out += ["", "FTP data transfers:", "",
                "| control stream | command | file | mode (setup) | data connection (initiator → acceptor) | direction | bytes | SHA-256 | is | final reply |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for t in transfers:
            out.append("| %d | %s | %s | %s (%s) | tcp.stream %d %s | %s | %d | `%s` | %s | %d |" % (
                t["ctrl"].idx, t["cmd"], "`%s`" % t["arg"] if t["arg"] else "(listing)",
                t["mode"], cell(t["setup"][2]), t["data"].idx, t["data"].name(), t["direction"],
                len(t["bytes"]), sha(t["bytes"]),
                file_name_of(t["bytes"], payload_names, "directory listing"), t["final"][0]))
    return out


# ---------------------------------------------------------------------------
# facts files (expected/<capture file name>.facts.json)
# ---------------------------------------------------------------------------

STABLE_FIELDS = (
    "Every value here was extracted from this capture by captures/lab/manifest.py "
    "(TCP streams reassembled from tshark's segments, HTTP/FTP parsed, checked against "
    "tshark's dissectors, the payload files and, at recording time, the servers' logs). "
    "Lists are in capture order (http, ftp: frame of the first byte of the request / command; "
    "ftp_data: first frame of the data connection; connections: first frame). "
    "Left out because they change on every re-record: client ports, TCP sequence numbers, "
    "timestamps, capture-file hashes. A fact object with \"stable\": false holds, in the fields "
    "named by its \"unstable\" list, values that are true for this recording but change when "
    "captures/record.sh records again: curl's random multipart boundary (so request_body_sha256 "
    "of those requests; sizes stay the same), the data port in PORT/EPRT arguments, the "
    "directory listing's content (file times; its size stays the same), the server port of FTP "
    "data connections, and byte counts of connections whose framing depends on ports or chunking. "
    "Every other value stays the same on re-record. null = absent (no body, no argument, no filename). "
    "Byte counts: request_body_bytes de-chunked; ftp_data bytes = data in the transfer "
    "direction; connections bytes_to_server / bytes_to_client = reassembled TCP payload of the "
    "initiator / acceptor.")


def ftp_arg_fact(cmd, arg):
    if not arg:
        return None
    if cmd in ("PASS", "ACCT"):
        return "<redacted>"
    return arg


def stability(obj, unstable):
    obj["stable"] = not unstable
    if unstable:
        obj["unstable"] = unstable
    return obj


def capture_facts(name, streams, reqs, sessions, transfers):
    """the facts of one capture, as written to expected/<basename>.facts.json"""
    http = []
    for r in sorted(reqs, key=lambda r: r["frame"]):
        resp = r.get("response") or {}
        parts = None
        if r.get("parts") is not None:
            parts = [{"name": p["name"], "filename": p["filename"], "content_type": p["ctype"],
                      "bytes": len(p["content"]), "sha256": sha(p["content"])} for p in r["parts"]]
        s = r["stream"]
        http.append(stability({
            "method": r["method"],
            "target": r["target"],
            "host": hget(r["headers"], "Host"),
            "client_ip": s.client[0],
            "server_ip": s.server[0],
            "server_port": s.server[1],
            "request_body_bytes": len(r["body"]),
            "request_body_sha256": sha(r["body"]) if r["body"] else None,
            "multipart": parts,
            "status_code": resp.get("code"),
            "interim": list(resp.get("interim", [])),
            "response_body_bytes": len(resp.get("body", b"")),
        }, ["request_body_sha256"] if r.get("random_boundary") else []))
    ftp = []
    for sess in sessions:
        s = sess["stream"]
        for c in sess["cmds"]:
            replies = c["replies"]
            final = replies[-1][0] if replies and replies[-1][0] >= 200 else None
            ftp.append((c["frame"], stability({
                "command": c["cmd"],
                "arg": ftp_arg_fact(c["cmd"], c["arg"]),
                "client_ip": s.client[0],
                "server_ip": s.server[0],
                "server_port": s.server[1],
                "reply_code": final,
                "interim": [code for code, _ in replies if code < 200],
            }, ["arg"] if c["cmd"] in ("PORT", "EPRT") else [])))
    ftp = [f for _, f in sorted(ftp, key=lambda x: x[0])]
    ftp_data = []
    for t in sorted(transfers, key=lambda t: t["data"].first):
        ftp_data.append(stability({
            "command": t["cmd"],
            "filename": t["arg"],
            "mode": t["mode"],
            "direction": t["direction"],
            "bytes": len(t["bytes"]),
            "sha256": sha(t["bytes"]) if t["bytes"] else None,
            "reply_code": t["final"][0],
        }, ["sha256"] if t["cmd"] in ("LIST", "NLST", "MLSD") else []))
    # which connection is what, and which of its byte counts depend on ports / chunking
    role, unstable = {}, {}
    for r in reqs:
        role[r["stream"].idx] = "http"
        if r["framing"] == "chunked":
            unstable.setdefault(r["stream"].idx, set()).add("bytes_to_server")
    for sess in sessions:
        idx = sess["stream"].idx
        role[idx] = "ftp"
        for c in sess["cmds"]:
            if c["cmd"] in ("PORT", "EPRT"):
                unstable.setdefault(idx, set()).add("bytes_to_server")
            if c["cmd"] in ("PASV", "EPSV"):
                unstable.setdefault(idx, set()).add("bytes_to_client")
    for t in transfers:
        role[t["data"].idx] = "ftp-data"
        unstable.setdefault(t["data"].idx, set()).add("server_port")
    conns = []
    for s in sorted(streams, key=lambda s: s.first):
        conns.append(stability({
            "role": role.get(s.idx),
            "client_ip": s.client[0],
            "server_ip": s.server[0],
            "server_port": s.server[1],
            "bytes_to_server": len(s.c2s()),
            "bytes_to_client": len(s.s2c()),
        }, sorted(unstable.get(s.idx, ()))))
    return collections.OrderedDict([
        ("capture", name),
        ("generated_by", "captures/lab/manifest.py"),
        ("stable_fields", STABLE_FIELDS),
        ("http", http),
        ("ftp", ftp),
        ("ftp_data", ftp_data),
        ("connections", conns),
    ])


def facts_json(facts):
    """JSON with one fact object per line (a re-record diffs line by line)"""
    def one(v):
        return json.dumps(v, ensure_ascii=False)
    lines = []
    items = list(facts.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(v, list) and v:
            lines.append(" %s: [" % one(k))
            lines += ["  %s%s" % (one(x), "," if j < len(v) - 1 else "") for j, x in enumerate(v)]
            lines.append(" ]" + comma)
        else:
            lines.append(" %s: %s%s" % (one(k), one(v), comma))
    return "{\n" + "\n".join(lines) + "\n}\n"


def write_facts(facts_dir, all_facts):
    os.makedirs(facts_dir, exist_ok=True)
    for name, facts in all_facts:
        path = os.path.join(facts_dir, os.path.basename(name) + ".facts.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(facts_json(facts))
        os.replace(tmp, path)
        print("wrote %s" % path)


PAYLOADS = {}


def cell(text):
    """escape a table cell (GitHub markdown splits cells on | even inside code spans)"""
    return text.replace("|", "\\|")


def file_name_of(data, payload_names, default="?"):
    for name, content in PAYLOADS.items():
        if data == content:
            return "`%s`" % name
    return default


def load_logs(args):
    http_log, ftp_log = None, None
    if args.server_log and os.path.exists(args.server_log):
        http_log = [json.loads(l) for l in open(args.server_log) if l.strip()]
    if args.ftp_log and os.path.exists(args.ftp_log):
        ftp_log = []
        pat = re.compile(r'OK (UPLOAD|DOWNLOAD): Client "([^"]+)", "([^"]+)", (\d+) bytes')
        for l in open(args.ftp_log):
            m = pat.search(l)
            if m:
                ftp_log.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
    return http_log, ftp_log


def read_cmds(cmddir, name):
    if not cmddir:
        return None
    cap = os.path.join(cmddir, name + ".capture")
    cli = os.path.join(cmddir, name)
    if not os.path.exists(cap):
        return None
    return ([l.rstrip("\n") for l in open(cap)], [l.rstrip("\n") for l in open(cli)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--captures", required=True)
    ap.add_argument("--payloads", required=True)
    ap.add_argument("--cmds")
    ap.add_argument("--server-log")
    ap.add_argument("--ftp-log")
    ap.add_argument("--lab", default="198.18.0.1,198.18.0.2,2001:2::1,2001:2::2")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--facts", help="directory for the <capture>.facts.json files "
                    "(default: <captures>/expected)")
    args = ap.parse_args()
    facts_dir = args.facts or os.path.join(args.captures, "expected")

    for n in sorted(os.listdir(args.payloads)):
        PAYLOADS[n] = open(os.path.join(args.payloads, n), "rb").read()
    http_log, ftp_log = load_logs(args)
    h4, r4, h6, r6 = args.lab.split(",")

    md = [
        "# Capture manifest",
        "",
        "Generated by `captures/lab/manifest.py` (run by `captures/record.sh`) from the captures",
        "themselves: every fact below was extracted with tshark %s (TCP segments put" % tshark_version(),
        "together by the script and parsed as HTTP/FTP, compared with tshark's own HTTP and FTP",
        "dissectors), compared byte for byte with the payload files and, at recording time, with",
        "the HTTP server's and vsftpd's own logs. record.sh refuses to install captures when any",
        "of these disagree. Re-recording changes ports, TCP sequence numbers, timestamps,",
        "curl's random multipart boundaries (so those multipart body SHA-256s) and the",
        "capture-file hashes; every other fact below stays the same.",
        "",
        "Lab: \"host\" namespace (clients, stands for the user's Mac) %s / %s;" % (h4, h6),
        "\"remote\" namespace (servers) %s / %s; one veth pair, MTU 1500," % (r4, r6),
        "TSO/GSO/GRO and TX checksum offload off (MSS-sized segments, valid checksums).",
        "Servers: `captures/lab/upload_server.py` (HTTP/1.1, keep-alive) on %s:8080," % r4,
        "[%s]:8443 and, inside the host namespace, 127.0.0.1:8081 and [::1]:8081;" % r6,
        "vsftpd (`captures/lab/vsftpd.conf`) on %s:21, [%s]:21 and %s:2121," % (r4, r6, r4),
        "user `exfwuser`, password `exfwpass` (sent in clear in every FTP capture: `PASS exfwpass`),",
        "chrooted to its home directory (PWD answers `/`), passive ports 40000-40099,",
        "active-mode data connections from port 20.",
        "Besides TCP, some captures hold a few ARP / ICMPv6 neighbour discovery packets",
        "(a decoder must skip them).",
        "",
        "## Payload files (`captures/payloads/`, made by `captures/lab/make_payloads.py`)",
        "",
        "| file | bytes | SHA-256 |",
        "|---|---|---|",
    ]
    for n, d in PAYLOADS.items():
        md.append("| `%s` | %d | `%s` |" % (n, len(d), sha(d)))
    md += ["", "Literal form fields: `note=hello` (5 bytes, SHA-256 `%s`), `user=alice`, "
           "`comment=Q3 board deck`." % sha(b"hello"), ""]
    md += ["## Index", "", "| capture | HTTP transactions | FTP data transfers |", "|---|---|---|"]
    body = []
    summary = []
    all_facts = []
    for name, exp in EXPECT.items():
        path = os.path.join(args.captures, name)
        if not os.path.exists(path):
            err(name, "missing")
            continue
        ff, data = file_facts(path)
        if "gzip_of" in exp:
            orig = open(os.path.join(args.captures, exp["gzip_of"]), "rb").read()
            if data != orig:
                err(name, "does not decompress to %s" % exp["gzip_of"])
            body += ["", "## `%s`" % name, "", exp["what"], "",
                     "- file: %d bytes (gzip), decompresses to %d bytes = `%s` byte for byte; "
                     "same facts as that capture." % (ff["size"], len(data), exp["gzip_of"]),
                     "- sha256 of this file: `%s`" % ff["sha256"]]
            md.append("| `%s` | (gzip of `%s`) | |" % (name, exp["gzip_of"]))
            summary.append((name, ff["size"]))
            continue
        if ff["links"] != exp["link"]:
            err(name, "link types %s, expected %s" % (ff["links"], exp["link"]))
        if "null_families" in ff and set(ff["null_families"]) - {2, 30}:
            err(name, "DLT_NULL families %s" % ff["null_families"])
        streams = read_streams(name, path)
        http_streams = [s for s in streams if s.server[1] in HTTP_PORTS]
        reqs = []
        for s in http_streams:
            try:
                reqs += parse_http(s)
            except Exception as e:  # noqa
                err(name, "stream %d: HTTP parse: %s" % (s.idx, e))
        reqs.sort(key=lambda r: r["stream"].first)
        try:
            sessions, transfers = parse_ftp(streams, name)
        except Exception as e:  # noqa
            err(name, "FTP parse: %s" % e)
            sessions, transfers = [], []
        try:
            check_http(name, reqs, exp.get("http", []), args.payloads)
            if reqs:
                check_http_tshark(name, path, reqs)
            check_ftp(name, transfers, sessions, exp.get("ftp", []), args.payloads, path)
            if http_log is not None and ftp_log is not None:
                check_server_logs(name, reqs, transfers, http_log, ftp_log)
        except Exception as e:  # noqa
            err(name, "check failed: %r" % e)
            continue
        body += md_capture(name, ff, exp, read_cmds(args.cmds, name), streams, reqs, sessions,
                           transfers, PAYLOADS)
        all_facts.append((name, capture_facts(name, streams, reqs, sessions, transfers)))
        md.append("| [`%s`](#%s) | %s | %s |" % (
            name, re.sub(r"[^a-z0-9_-]", "", name.lower()),
            ", ".join("%s %s" % (r["method"], r["target"]) for r in reqs) or "-",
            ", ".join("%s %s (%s, %s)" % (t["cmd"], t["arg"] or "", t["mode"], t["direction"])
                      for t in transfers) or "-"))
        summary.append((name, ff["size"]))
    if http_log is not None:
        left = [e for e in http_log if e is not None]
        if left:
            errors.append("HTTP server log entries not seen in any capture: %s" % left)
    if ftp_log is not None:
        left = [e for e in ftp_log if e is not None]
        if left:
            errors.append("vsftpd transfers not seen in any capture: %s" % left)
    md += body
    md.append("")
    with open(args.manifest, "w") as f:
        f.write("\n".join(md))
    for name, size in summary:
        print("%-32s %8d bytes" % (name, size))
    if not errors:
        write_facts(facts_dir, all_facts)
    if errors:
        print("\nCHECK FAILED:", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    print("all %d captures checked OK" % len(summary))


def tshark_version():
    out = subprocess.run(["tshark", "-v"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    m = re.search(rb"TShark \(Wireshark\) (\S+)", out)
    return m.group(1).decode() if m else "?"


if __name__ == "__main__":
    main()
