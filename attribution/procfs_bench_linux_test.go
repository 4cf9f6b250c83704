package attribution

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// BenchmarkLookupHit: a connection of this process, already indexed (the
// cost of every lookup after the first for a socket: find the socket, then
// confirm the indexed owner with one readlink).
func BenchmarkLookupHit(b *testing.B) {
	for _, mode := range liveModes {
		b.Run(mode.name, func(b *testing.B) {
			tbl := newLiveTable(b, mode.opts)
			client, _ := tcpPair(b, "tcp4", "127.0.0.1:0", "127.0.0.1")
			local, remote := addrPort(client.LocalAddr()), addrPort(client.RemoteAddr())
			if _, err := tbl.Lookup(TCP, local, remote); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := tbl.Lookup(TCP, local, remote); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookupMiss: no socket has the 5-tuple.
func BenchmarkLookupMiss(b *testing.B) {
	for _, mode := range liveModes {
		b.Run(mode.name, func(b *testing.B) {
			tbl := newLiveTable(b, mode.opts)
			local, remote := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
			for b.Loop() {
				if _, err := tbl.Lookup(TCP, local, remote); err == nil {
					b.Fatal("found")
				}
			}
		})
	}
}

// BenchmarkLookupNewSocket: the first lookup of a new connection (the
// first-packet case): its inode is not indexed, so the table searches the
// fd tables, new and changed processes first. Connecting is not timed.
func BenchmarkLookupNewSocket(b *testing.B) {
	for _, mode := range liveModes {
		b.Run(mode.name, func(b *testing.B) {
			tbl := newLiveTable(b, mode.opts)
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			pid := int32(os.Getpid())
			for b.Loop() {
				b.StopTimer()
				c, err := net.Dial("tcp4", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				s, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				local, remote := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
				b.StartTimer()
				o, err := tbl.Lookup(TCP, local, remote)
				b.StopTimer()
				if err != nil || o.PID != pid {
					b.Fatalf("%+v %v", o, err)
				}
				c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up
				c.Close()
				s.Close()
				b.StartTimer()
			}
			s := tbl.Stats()
			b.ReportMetric(float64(s.ScannedPIDs)/float64(s.Lookups), "pids/lookup")
		})
	}
}

// BenchmarkScan: a Scan of every socket of the host with a warm index.
func BenchmarkScan(b *testing.B) {
	tbl := newLiveTable(b, ProcTableOptions{})
	if err := tbl.Scan(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := tbl.Scan(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessCached: Process of a live process whose record is fresh
// (one read of stat).
func BenchmarkProcessCached(b *testing.B) {
	c := NewProcessCache("/proc", ProcessCacheOptions{})
	pid := int32(os.Getpid())
	c.Process(pid)
	for b.Loop() {
		if _, err := c.Process(pid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessRead: a full read of a process (stat, status, cmdline,
// exe, cwd), as for a process not seen before.
func BenchmarkProcessRead(b *testing.B) {
	c := NewProcessCache("/proc", ProcessCacheOptions{RefreshAfter: time.Nanosecond})
	pid := int32(os.Getpid())
	for b.Loop() {
		if _, err := c.Process(pid); err != nil {
			b.Fatal(err)
		}
	}
	if s := c.Stats(); s.Reads < uint64(b.N) {
		b.Fatalf("%d reads for %d lookups", s.Reads, b.N)
	}
}

// BenchmarkProcessSnapshot: Snapshot of a live process whose record and
// ancestors are fresh (one stat read per process of the lineage).
func BenchmarkProcessSnapshot(b *testing.B) {
	c := NewProcessCache("/proc", ProcessCacheOptions{})
	pid := int32(os.Getpid())
	for b.Loop() {
		if _, err := c.Snapshot(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProcNet(b *testing.B) {
	data, err := os.ReadFile(procFixture + "/net/tcp")
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(data)
	br := newProcNetReader()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		br.Reset(r)
		scanProcNet(br, TCP, false, func(*Socket) bool { return true })
	}
}
