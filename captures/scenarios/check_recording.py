#!/usr/bin/env python3
"""Check one scenario recording before record_scenarios.sh installs it.

This checks the *recording* (did the scenario happen as intended, and did the
sensor's journal see it), never the detector: the journal must hold the file
reads the scenario made, with the process that made them, and an attributed
flow for its connection; the servers' logs must show the transfers. Each
failure is printed on one line; the exit status is 1 if there is any.

  --read NAME:PATH          a read of PATH by a process named NAME
  --flow NAME:PORT          an attributed flow of NAME to the lab server's PORT
  --exe NAME:PATH           the flows of NAME come from executable PATH
  --http METHOD:TARGET      the HTTP server logged that request
  --body-sha PATH           an HTTP request body is exactly PATH's bytes
  --not-body-sha PATH       no HTTP request body is PATH's bytes
  --ftp-upload TARGET:[PATH] vsftpd logged an upload to TARGET (of PATH's size)
  --no-read-by NAME         NAME read nothing in a sensitive folder of alice
  --no-sensitive-read       nobody read anything in a sensitive folder of alice
  --no-upload               no HTTP POST/PUT and no FTP upload at all
  --read-before-flow NAME:S NAME's sensitive read came at least S seconds before its flow
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import sys

SENSITIVE = ("/home/alice/Documents/", "/home/alice/Desktop/", "/home/alice/.ssh/")


def ts(s):
    # RFC 3339 with up to nanoseconds; Python takes microseconds
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        raise ValueError("bad time %r" % s)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat("%s.%s%s" % (m.group(1), frac, tz)).timestamp()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--http-log", required=True)
    ap.add_argument("--ftp-log", required=True)
    ap.add_argument("--lab", required=True, help="HOST4,REMOTE4")
    for opt in ("read", "flow", "exe", "http", "body-sha", "not-body-sha", "ftp-upload",
                "no-read-by", "read-before-flow"):
        ap.add_argument("--" + opt, action="append", default=[])
    ap.add_argument("--no-sensitive-read", action="store_true")
    ap.add_argument("--no-upload", action="store_true")
    a = ap.parse_args()
    # Exit status, not exceptions, for a malformed --x NAME:VALUE
    for opt in ("read", "flow", "exe", "http", "ftp_upload", "read_before_flow"):
        for spec in getattr(a, opt):
            if ":" not in spec:
                ap.error("--%s %r: want NAME:VALUE" % (opt.replace("_", "-"), spec))
    host4, rem4 = a.lab.split(",")
    errs = []

    recs = []
    with open(os.path.join(a.dir, "journal.jsonl")) as f:
        for i, line in enumerate(f, 1):
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                errs.append("journal line %d: %s" % (i, e))
    if not recs or recs[0].get("type") != "header":
        errs.append("journal: first record is not the header")
    reads = [r["file"] for r in recs if r.get("type") == "file_access" and r.get("file")
             and r["file"].get("access") in ("read", "readwrite")]
    flows = [r for r in recs if r.get("type") == "attribution"]
    lab_flows = [r for r in flows if r["flow"]["server"].rsplit(":", 1)[0] == rem4]
    if not lab_flows:
        errs.append("journal: no flow to the lab server %s" % rem4)
    # An FTP data connection (passive ports) may close before its lookup
    # answers; its transfer belongs to the control session, which must be
    # attributed like every HTTP connection.
    for r in lab_flows:
        if r["flow"]["server"].rsplit(":", 1)[1] not in ("80", "8080", "21"):
            continue
        if not (r.get("result") or {}).get("process"):
            errs.append("journal: flow %s -> %s unattributed (%s)" % (
                r["flow"]["client"], r["flow"]["server"], (r.get("result") or {}).get("reason")))

    def pname(x):
        return ((x or {}).get("process") or {}).get("name")

    for spec in a.read:
        name, path = spec.split(":", 1)
        if not any(fa.get("path") == path and pname(fa) == name for fa in reads):
            errs.append("journal: no read of %s by %s" % (path, name))
    for spec in a.flow:
        name, port = spec.split(":", 1)
        if not any(pname(r.get("result")) == name and r["flow"]["server"].endswith(":" + port)
                   for r in lab_flows):
            errs.append("journal: no flow of %s to %s:%s" % (name, rem4, port))
    for spec in a.exe:
        name, exe = spec.split(":", 1)
        for r in lab_flows:
            p = (r.get("result") or {}).get("process") or {}
            if p.get("name") == name and p.get("executable") != exe:
                errs.append("journal: %s runs %s, want %s" % (name, p.get("executable"), exe))
    for name in a.no_read_by:
        for fa in reads:
            if pname(fa) == name and fa.get("path", "").startswith(SENSITIVE):
                errs.append("journal: %s read %s" % (name, fa["path"]))
    if a.no_sensitive_read:
        for fa in reads:
            if fa.get("path", "").startswith(SENSITIVE):
                errs.append("journal: %s read %s" % (pname(fa), fa["path"]))
    for spec in a.read_before_flow:
        name, secs = spec.split(":", 1)
        rt = [ts(r["time"]) for r in recs if r.get("type") == "file_access" and r["file"].get("access") == "read"
              and pname(r["file"]) == name and r["file"].get("path", "").startswith(SENSITIVE)]
        ft = [ts(r["flow"]["start"]) for r in lab_flows if pname(r.get("result")) == name]
        if not rt or not ft:
            errs.append("journal: no sensitive read or no flow of %s" % name)
        elif min(ft) - max(rt) < float(secs):
            errs.append("journal: %s's flow starts %.1fs after its read, want >= %ss" % (name, min(ft) - max(rt), secs))

    http = []
    if os.path.exists(a.http_log):
        with open(a.http_log) as f:
            http = [json.loads(line) for line in f if line.strip()]
    for spec in a.http:
        method, target = spec.split(":", 1)
        if not any(h["method"] == method and h["target"] == target for h in http):
            errs.append("http log: no %s %s" % (method, target))
    for path in a.body_sha:
        if not any(h.get("body_sha256") == sha(path) for h in http):
            errs.append("http log: no request body equal to %s" % path)
    for path in a.not_body_sha:
        if any(h.get("body_sha256") == sha(path) for h in http):
            errs.append("http log: a request body equals %s" % path)

    ftp = []
    if os.path.exists(a.ftp_log):
        with open(a.ftp_log, errors="replace") as f:
            for line in f:
                m = re.search(r'OK UPLOAD: Client "[^"]*", "([^"]*)", (\d+) bytes', line)
                if m:
                    ftp.append((m.group(1), int(m.group(2))))
    for spec in a.ftp_upload:
        target, path = spec.split(":", 1)
        size = os.path.getsize(path) if path else None
        if not any(t == target and (size is None or n == size) for t, n in ftp):
            errs.append("ftp log: no upload of %s%s (got %s)" % (target, "" if size is None else " (%d bytes)" % size, ftp))
    if a.no_upload:
        if any(h["method"] in ("POST", "PUT") for h in http) or ftp:
            errs.append("servers: an upload happened")

    for e in errs:
        print("check_recording: " + e, file=sys.stderr)
    print("check_recording: %d records, %d reads, %d lab flows, %d http, %d ftp uploads: %s" % (
        len(recs), len(reads), len(lab_flows), len(http), len(ftp), "FAIL" if errs else "ok"), file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
