package attribution

import (
	"net/netip"
	"testing"
	"time"
)

func TestSockinfoIndexLookup(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	x := newSockinfoIndex(0, 0)
	for _, s := range []Socket{
		{Proto: TCP, Local: sockinfoAP("10.0.0.5:49822"), Remote: sockinfoAP("203.0.113.9:21"), State: "ESTABLISHED", PID: 100, UID: 501},
		{Proto: TCP, Local: sockinfoAP("[fe80::aede:48ff:fe00:1122%4]:1111"), Remote: sockinfoAP("[fe80::aede:48ff:fe33:4455%4]:2222"), State: "ESTABLISHED", PID: 101},
		{Proto: UDP, Local: sockinfoAP("0.0.0.0:5353"), PID: 102},
		{Proto: UDP, Local: sockinfoAP("10.0.0.5:123"), PID: 103},
		{Proto: UDP, Local: sockinfoAP("10.0.0.5:61000"), Remote: sockinfoAP("10.0.0.1:53"), PID: 104},
		{Proto: TCP, Local: sockinfoAP("0.0.0.0:8080"), State: "LISTEN", PID: 105},
		{Proto: TCP, Local: sockinfoAP("127.0.0.1:5432"), State: "LISTEN", PID: 106},
		{Proto: TCP, Local: sockinfoAP("10.0.0.5:7000"), State: "CLOSED", PID: 107}, // bound, not listening
	} {
		x.put(s, t0)
	}
	tests := []struct {
		name          string
		proto         uint8
		local, remote string
		wantPID       int32 // 0: not found
	}{
		{"exact tcp", TCP, "10.0.0.5:49822", "203.0.113.9:21", 100},
		{"v4-mapped query matches the IPv4 socket", TCP, "[::ffff:10.0.0.5]:49822", "[::ffff:203.0.113.9]:21", 100},
		{"link-local without zone", TCP, "[fe80::aede:48ff:fe00:1122]:1111", "[fe80::aede:48ff:fe33:4455]:2222", 101},
		{"link-local with another zone spelling", TCP, "[fe80::aede:48ff:fe00:1122%en0]:1111", "[fe80::aede:48ff:fe33:4455%en0]:2222", 101},
		{"udp to a wildcard socket, IPv4", UDP, "192.168.1.5:5353", "224.0.0.251:5353", 102},
		{"udp to a wildcard socket, IPv6", UDP, "[fe80::1]:5353", "[ff02::fb]:5353", 102},
		{"udp to a bound socket", UDP, "10.0.0.5:123", "17.253.4.125:123", 103},
		{"udp connected exact", UDP, "10.0.0.5:61000", "10.0.0.1:53", 104},
		{"udp connected socket does not take other peers", UDP, "10.0.0.5:61000", "10.0.0.2:53", 0},
		{"tcp inbound to a wildcard listener", TCP, "192.168.1.5:8080", "192.168.1.9:50000", 105},
		{"tcp inbound to a bound listener", TCP, "127.0.0.1:5432", "127.0.0.1:50001", 106},
		{"tcp bound non-listener is no owner", TCP, "10.0.0.5:7000", "10.0.0.9:80", 0},
		{"wrong proto", UDP, "10.0.0.5:49822", "203.0.113.9:21", 0},
		{"unknown", TCP, "10.0.0.5:1", "10.0.0.9:2", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := x.lookup(tt.proto, sockinfoAP(tt.local), sockinfoAP(tt.remote), t0.Add(time.Second))
			if tt.wantPID == 0 {
				if ok {
					t.Fatalf("found %+v", e.sock)
				}
				return
			}
			if !ok || e.sock.PID != tt.wantPID {
				t.Fatalf("found %v %+v, want pid %d", ok, e.sock, tt.wantPID)
			}
			if o := e.owner(); o.PID != tt.wantPID || !o.Seen.Equal(t0) {
				t.Errorf("owner %+v", o)
			}
		})
	}
}

func TestSockinfoIndexGraceAndBound(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	x := newSockinfoIndex(30*time.Second, 2)
	a := Socket{Proto: TCP, Local: sockinfoAP("10.0.0.5:1"), Remote: sockinfoAP("10.0.0.9:80"), PID: 1}
	b := Socket{Proto: TCP, Local: sockinfoAP("10.0.0.5:2"), Remote: sockinfoAP("10.0.0.9:80"), PID: 2}
	c := Socket{Proto: TCP, Local: sockinfoAP("10.0.0.5:3"), Remote: sockinfoAP("10.0.0.9:80"), PID: 3}
	x.put(a, t0)
	x.put(b, t0.Add(20*time.Second))
	if _, ok := x.lookup(TCP, a.Local, a.Remote, t0.Add(30*time.Second)); !ok {
		t.Error("a gone within its grace period")
	}
	if _, ok := x.lookup(TCP, a.Local, a.Remote, t0.Add(31*time.Second)); ok {
		t.Error("a found after its grace period")
	}
	// Full: c is dropped unless something has expired.
	x.put(c, t0.Add(10*time.Second))
	if _, ok := x.lookup(TCP, c.Local, c.Remote, t0.Add(10*time.Second)); ok || x.dropped != 1 {
		t.Errorf("c stored in a full index (dropped %d)", x.dropped)
	}
	x.put(c, t0.Add(31*time.Second)) // a has expired: room for c
	if _, ok := x.lookup(TCP, c.Local, c.Remote, t0.Add(31*time.Second)); !ok {
		t.Error("c not stored after a expired")
	}
	// A socket seen again is refreshed, not duplicated.
	x.put(b, t0.Add(60*time.Second))
	if e, ok := x.lookup(TCP, b.Local, b.Remote, t0.Add(80*time.Second)); !ok || !e.seen.Equal(t0.Add(60*time.Second)) {
		t.Errorf("b not refreshed: %v %v", ok, e.seen)
	}
	if len(x.entries) != 2 {
		t.Errorf("%d entries", len(x.entries))
	}
}

func TestSockinfoKeyNormalisation(t *testing.T) {
	k1 := sockinfoKeyOf(UDP, sockinfoAP("[::]:53"), netip.AddrPort{})
	k2 := sockinfoKeyOf(UDP, sockinfoAP("0.0.0.0:53"), sockinfoAP("0.0.0.0:0"))
	k3 := sockinfoKeyOf(UDP, sockinfoAP("[::]:53"), sockinfoAP("[::]:0"))
	if k1 != k2 || k2 != k3 {
		t.Errorf("wildcards differ: %+v %+v %+v", k1, k2, k3)
	}
	if sockinfoKeyOf(TCP, sockinfoAP("[::ffff:1.2.3.4]:5"), sockinfoAP("[::ffff:5.6.7.8]:9")) !=
		sockinfoKeyOf(TCP, sockinfoAP("1.2.3.4:5"), sockinfoAP("5.6.7.8:9")) {
		t.Error("mapped and unmapped differ")
	}
}
