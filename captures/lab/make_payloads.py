#!/usr/bin/env python3
"""Write the deterministic payload files used by captures/record.sh.

Every byte comes from a SHA-256 counter stream with a fixed seed (no
randomness, no timestamps), so re-running gives byte-identical files:

  report.pdf  20000 bytes   PDF-looking header + pseudo-random body + %%EOF
  notes.txt    3000 bytes   ASCII text lines
  keys.tar   143360 bytes   ustar archive (fixed mtime/uid/gid/names) holding
                            keys/id_ed25519 (text) and keys/secrets.bin (binary)

Usage: make_payloads.py OUTDIR
"""

import hashlib
import io
import os
import sys
import tarfile


def stream(seed: str, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(("%s:%d" % (seed, counter)).encode()).digest()
        counter += 1
    return bytes(out[:n])


def report_pdf() -> bytes:
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    tail = b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return head + stream("exfw-report.pdf", 20000 - len(head) - len(tail)) + tail


def notes_txt() -> bytes:
    words = ["quarterly", "numbers", "customer", "list", "draft", "merger", "salary",
             "roadmap", "password", "reset", "budget", "offsite", "launch", "vendor"]
    rnd = stream("exfw-notes.txt", 4096)
    lines, i, n = [], 0, 0
    while True:
        k = 4 + rnd[i % len(rnd)] % 6
        line = "%03d " % n + " ".join(words[rnd[(i + j + 1) % len(rnd)] % len(words)]
                                      for j in range(k)) + "\n"
        i += k + 1
        n += 1
        if sum(map(len, lines)) + len(line) > 3000:
            break
        lines.append(line)
    text = "".join(lines)
    text += "#" * (3000 - len(text) - 1) + "\n"
    return text.encode("ascii")


def keys_tar() -> bytes:
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    raw = stream("exfw-id_ed25519", 300)
    import base64
    b64 = base64.b64encode(raw)
    key += b"\n".join(b64[i:i + 70] for i in range(0, len(b64), 70))
    key += b"\n-----END OPENSSH PRIVATE KEY-----\n"
    members = [
        ("keys/id_ed25519", key),
        ("keys/secrets.bin", stream("exfw-secrets.bin", 131072)),
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        d = tarfile.TarInfo("keys")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o700, 1700000000
        d.uid = d.gid = 1000
        d.uname = d.gname = "user"
        tf.addfile(d)
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o600, 1700000000
            ti.uid = ti.gid = 1000
            ti.uname = ti.gname = "user"
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {"report.pdf": report_pdf(), "notes.txt": notes_txt(), "keys.tar": keys_tar()}
    for name, data in files.items():
        path = os.path.join(out, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        print("%-10s %7d %s" % (name, len(data), hashlib.sha256(data).hexdigest()))


if __name__ == "__main__":
    main()
