//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"time"
)

// journalRec is one attribution record of the sensor's host journal
// (docs/journal.md): the lookup's answer for one flow, written when the
// answer came, whether or not the flow's event was still waiting for it.
type journalRec struct {
	Client   netip.AddrPort `json:"client"`
	Start    time.Time      `json:"start"`
	Written  time.Time      `json:"written"`
	Method   string         `json:"method,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	PID      int            `json:"pid,omitempty"`
	DelayUS  int64          `json:"delay_us"`
	Attempts int            `json:"attempts,omitempty"`
}

func readJournal(path string) ([]journalRec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []journalRec
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var r struct {
			Type string    `json:"type"`
			Time time.Time `json:"time"`
			Flow struct {
				Client string    `json:"client"`
				Start  time.Time `json:"start"`
			} `json:"flow"`
			Result struct {
				Method   string `json:"method"`
				Reason   string `json:"reason"`
				PID      int    `json:"pid"`
				DelayUS  int64  `json:"delay_us"`
				Attempts int    `json:"attempts"`
			} `json:"result"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Type != "attribution" {
			continue
		}
		ap, err := netip.ParseAddrPort(r.Flow.Client)
		if err != nil {
			continue
		}
		out = append(out, journalRec{Client: ap, Start: r.Flow.Start, Written: r.Time, Method: r.Result.Method,
			Reason: r.Result.Reason, PID: r.Result.PID, DelayUS: r.Result.DelayUS, Attempts: r.Result.Attempts})
	}
	return out, sc.Err()
}

// matchJournal gives each client the journal record of its connection: same
// local end, first packet between its connect call and its exit.
func matchJournal(runs []*clientRun, recs []journalRec) {
	by := map[netip.AddrPort][]int{}
	for i, r := range recs {
		by[r.Client] = append(by[r.Client], i)
	}
	for _, c := range runs {
		if !c.Local.IsValid() || c.Rep.Connect == 0 {
			continue
		}
		lo := time.Unix(0, c.Rep.Connect).Add(-5 * time.Millisecond)
		hi := time.Unix(0, c.Rep.Exit).Add(5 * time.Millisecond)
		for _, i := range by[c.Local] {
			if r := &recs[i]; !r.Start.Before(lo) && !r.Start.After(hi) {
				c.Journal = r
				break
			}
		}
	}
}
