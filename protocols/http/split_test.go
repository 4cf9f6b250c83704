// Stream-shape independence: the same bytes must give the same transactions
// however they are cut into Feed calls, and any prefix must parse sanely.

package http

import (
	"testing"
)

// TestSplitEverywhere feeds every exchange whole, with each event split in
// two at every offset, and byte by byte: all runs must emit identical
// transactions.
func TestSplitEverywhere(t *testing.T) {
	for _, x := range exchanges() {
		t.Run(x.name, func(t *testing.T) {
			want := run(t, x.lim, x.evs, whole)
			if got := run(t, x.lim, x.evs, byteByByte); !same(got, want) {
				t.Fatalf("byte by byte differs:\n%s", diff(got, want))
			}
			for e, ev := range x.evs {
				for k := 1; k < len(ev.data); k++ {
					if got := run(t, x.lim, x.evs, splitOne(e, k)); !same(got, want) {
						t.Fatalf("event %d split at %d differs:\n%s", e, k, diff(got, want))
					}
				}
			}
		})
	}
}

// TestTruncationSweep feeds every prefix of every exchange, then ends both
// sides: no panic, bounded state (run checks), sane transactions, and no
// transaction that the full exchange would not also start.
func TestTruncationSweep(t *testing.T) {
	for _, x := range exchanges() {
		t.Run(x.name, func(t *testing.T) {
			full := run(t, x.lim, x.evs, whole)
			for e, ev := range x.evs {
				if ev.end || ev.gap != 0 {
					continue
				}
				for k := 0; k < len(ev.data); k++ {
					evs := append([]event(nil), x.evs[:e]...)
					evs = append(evs, event{dir: ev.dir, data: ev.data[:k]})
					evs = append(evs, closeBoth()...)
					got := run(t, x.lim, evs, whole)
					if len(got) > len(full) {
						t.Fatalf("prefix (event %d, %d bytes) emitted %d transactions, the full exchange %d", e, k, len(got), len(full))
					}
					for i, tx := range got {
						if tx.Request.Method != full[i].Request.Method || tx.Request.Target != full[i].Request.Target {
							t.Fatalf("prefix (event %d, %d bytes) tx %d is %s %s, want %s %s", e, k, i,
								tx.Request.Method, tx.Request.Target, full[i].Request.Method, full[i].Request.Target)
						}
					}
				}
			}
		})
	}
}

// TestResetReusesParser runs every exchange on a parser that first parsed
// another exchange (cut byte by byte, so its buffers hold state) and was
// Reset: the result must equal a fresh parser's.
func TestResetReusesParser(t *testing.T) {
	xs := exchanges()
	for i, x := range xs {
		t.Run(x.name, func(t *testing.T) {
			want := run(t, x.lim, x.evs, whole)
			prev := xs[(i+len(xs)-1)%len(xs)]
			p := New(x.lim, func(*Transaction) {})
			for k, e := range prev.evs[:len(prev.evs)-1] { // leave it mid-way
				switch {
				case e.end:
					p.End(e.dir, at(k))
				case e.gap != 0:
					p.Gap(e.dir, e.gap, at(k))
				default:
					for _, c := range byteByByte(k, e.data) {
						p.Feed(e.dir, []byte(c), at(k))
					}
				}
			}
			var got []*Transaction
			p.Reset(func(tx *Transaction) { got = append(got, tx) })
			for k, e := range x.evs {
				switch {
				case e.end:
					p.End(e.dir, at(k))
				case e.gap != 0:
					p.Gap(e.dir, e.gap, at(k))
				default:
					p.Feed(e.dir, []byte(e.data), at(k))
				}
				checkInvariants(t, p)
			}
			if !same(got, want) {
				t.Fatalf("reused parser differs:\n%s", diff(got, want))
			}
		})
	}
}
