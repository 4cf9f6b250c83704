#!/usr/bin/env python3
"""Records the DNS responses the parser tests read (testdata/*.hex).

It starts a real dnsmasq on 127.0.0.1 (a port above 1024, no upstream, no
/etc/hosts), sends it hand-built queries over UDP and TCP, and writes each
response's bytes as hex. Run as: python3 testdata/record.py (needs the
Debian package dnsmasq-base). The .hex files are committed; the tests never
start dnsmasq themselves.
"""
import os, socket, struct, subprocess, sys, time

PORT = 15353
HERE = os.path.dirname(os.path.abspath(__file__))

ARGS = [
    "dnsmasq", "--keep-in-foreground", "--port=%d" % PORT,
    "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
    "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
    "--host-record=files.example.test,198.18.0.10,2001:2::10",
    "--cname=cdn.example.test,files.example.test",
    "--cname=www.Example.test,cdn.example.test",
    "--address=/nx.example.test/", "--local-ttl=300",
] + ["--host-record=rr.example.test,198.18.1.%d" % i for i in range(1, 21)]


def query(qid, name, qtype):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def udp(q):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(q, ("127.0.0.1", PORT))
    b, _ = s.recvfrom(65535)
    s.close()
    return b


def tcp(q):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
    s.sendall(struct.pack(">H", len(q)) + q)
    b = b""
    while len(b) < 2 or len(b) < 2 + struct.unpack(">H", b[:2])[0]:
        chunk = s.recv(65535)
        if not chunk:
            break
        b += chunk
    s.close()
    return b


CASES = [
    ("a_files", udp, 0x1001, "files.example.test", 1),
    ("aaaa_files", udp, 0x1002, "files.example.test", 28),
    ("cname_chain_a", udp, 0x1003, "WWW.Example.Test", 1),
    ("nxdomain", udp, 0x1004, "nope.nx.example.test", 1),
    ("round_robin", udp, 0x1005, "rr.example.test", 1),
    ("tcp_cname_chain_aaaa", tcp, 0x1006, "www.example.test", 28),
]


def main():
    p = subprocess.Popen(ARGS)
    try:
        for _ in range(50):  # wait until dnsmasq answers
            try:
                udp(query(1, "files.example.test", 1))
                break
            except OSError:
                time.sleep(0.1)
        for name, how, qid, qname, qtype in CASES:
            b = how(query(qid, qname, qtype))
            with open(os.path.join(HERE, name + ".hex"), "w") as f:
                f.write(b.hex() + "\n")
            print(name, len(b), "bytes", file=sys.stderr)
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
