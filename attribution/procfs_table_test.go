package attribution

import (
	"testing"
	"time"
)

func TestProcRecentGraceAndEviction(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	r := newProcRecent(2)
	k1 := procFlowKey{TCP, ap("10.0.0.5:51000"), ap("93.184.216.34:443")}
	k2 := procFlowKey{TCP, ap("10.0.0.5:51001"), ap("93.184.216.34:443")}
	k3 := procFlowKey{TCP, ap("10.0.0.5:51002"), ap("93.184.216.34:443")}
	if !r.put(k1, Owner{PID: 1, Inode: 11, Seen: t0}) {
		t.Fatal("new key not reported as changed")
	}
	if r.put(k1, Owner{PID: 1, Inode: 11, Seen: t0.Add(time.Second)}) {
		t.Fatal("same owner reported as changed")
	}
	if !r.put(k1, Owner{PID: 2, Inode: 12, Seen: t0.Add(2 * time.Second)}) {
		t.Fatal("new owner (port reuse) not reported as changed")
	}
	r.put(k2, Owner{PID: 3, Inode: 13, Seen: t0.Add(3 * time.Second)})
	r.put(k3, Owner{PID: 4, Inode: 14, Seen: t0.Add(4 * time.Second)}) // evicts k1, the least recently seen
	if _, ok := r.get(k1, t0); ok || r.evictions != 1 {
		t.Fatalf("k1 not evicted (evictions %d)", r.evictions)
	}
	if o, ok := r.get(k2, t0.Add(3*time.Second)); !ok || o.PID != 3 {
		t.Fatalf("k2: %+v %v", o, ok)
	}
	if _, ok := r.get(k2, t0.Add(3*time.Second+1)); ok {
		t.Fatal("k2 returned although seen before since")
	}
	r.expire(t0.Add(3*time.Second + 1))
	if len(r.m) != 1 || r.order.Len() != 1 {
		t.Fatalf("expire left %d entries", len(r.m))
	}
}

func TestProcRecentUDPWildcards(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	r := newProcRecent(10)
	// An unconnected dual-stack socket on [::]:9999 and one on 10.0.0.5:5353.
	r.put(procFlowKey{UDP, ap("[::]:9999"), ap("")}, Owner{PID: 777, Inode: 4003, Seen: t0})
	r.put(procFlowKey{UDP, ap("10.0.0.5:5353"), ap("")}, Owner{PID: 778, Inode: 4004, Seen: t0})
	r.put(procFlowKey{UDP, ap("10.0.0.5:5353"), ap("192.0.2.9:53")}, Owner{PID: 779, Inode: 4005, Seen: t0})
	tests := []struct {
		local, remote string
		want          int32
	}{
		{"10.0.0.5:9999", "192.0.2.1:1234", 777},       // v4 flow, dual-stack wildcard
		{"[2001:db8::5]:9999", "[2001:db8::1]:1", 777}, // v6 flow, wildcard
		{"10.0.0.5:5353", "192.0.2.1:53", 778},         // unconnected on the local address
		{"10.0.0.5:5353", "192.0.2.9:53", 779},         // the exact connected one wins
		{"10.0.0.6:5353", "192.0.2.1:53", 0},           // another local address
	}
	for _, tt := range tests {
		o, ok := r.lookupUDP(ap(tt.local), ap(tt.remote), t0)
		if ok != (tt.want != 0) || o.PID != tt.want {
			t.Errorf("%s → %s: got %+v %v, want pid %d", tt.local, tt.remote, o, ok, tt.want)
		}
	}
}

func TestProcTableOptionsDefaults(t *testing.T) {
	var o ProcTableOptions
	if o.grace() != DefaultProcSocketGrace || o.maxRecent() != DefaultProcMaxRecent || o.minRescanInterval() != DefaultProcRescanInterval {
		t.Fatal("zero options are not the defaults")
	}
	o.Grace = -1
	if o.grace() != 0 {
		t.Fatal("negative grace does not disable")
	}
}
