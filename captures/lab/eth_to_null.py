#!/usr/bin/env python3
"""Rewrite a classic pcap from Ethernet (LINKTYPE 1) to BSD loopback / DLT_NULL
(LINKTYPE 0), the link type of macOS lo0 captures.

Only the link-layer header changes: the 14-byte Ethernet header of every
record is replaced by the 4-byte DLT_NULL header, the protocol family written
in LITTLE-endian byte order (as a little-endian Mac writes it):
    EtherType 0x0800 (IPv4) -> AF_INET  = 2
    EtherType 0x86DD (IPv6) -> AF_INET6 = 30 (macOS/Darwin value)
incl_len/orig_len shrink by 10 bytes; timestamps, IP headers and payloads are
copied byte for byte. Records that are neither IPv4 nor IPv6 are dropped
(and counted on stderr). The file header keeps its byte order, version,
timestamp precision and snaplen; only its link type becomes 0.

Usage: eth_to_null.py IN.pcap OUT.pcap
"""

import struct
import sys

AF = {0x0800: 2, 0x86DD: 30}


def main(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("%s: not a classic pcap file" % src)
    vmaj, vmin, thiszone, sigfigs, snaplen, linktype = struct.unpack(e + "HHiIII", data[4:24])
    if linktype & 0x0FFFFFFF != 1:
        raise SystemExit("%s: link type %d, want 1 (Ethernet)" % (src, linktype))
    out = [data[:4], struct.pack(e + "HHiIII", vmaj, vmin, thiszone, sigfigs, snaplen, 0)]
    off, kept, dropped = 24, 0, 0
    while off < len(data):
        ts_sec, ts_frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 14:
            dropped += 1
            continue
        etype = struct.unpack(">H", pkt[12:14])[0]
        if etype not in AF:
            dropped += 1
            continue
        body = struct.pack("<I", AF[etype]) + pkt[14:]
        out.append(struct.pack(e + "IIII", ts_sec, ts_frac, len(body), orig - 10))
        out.append(body)
        kept += 1
    with open(dst, "wb") as f:
        f.write(b"".join(out))
    sys.stderr.write("eth_to_null: %d records written, %d dropped\n" % (kept, dropped))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
