// Command report turns the JSON lines written by runner, floor and run.sh
// into the benchmark table: per capture file, the MB/s, packets/s and peak
// RSS of each tool, exfilwatch's throughput as a share of the decode-only
// floor and as a multiple of tshark, and PASS/FAIL against the targets.
//
//	report [-o results.txt] [-min-floor-share 0.30] [-max-rss-mb 300] results.jsonl
//
// Exit status: 0 when every exfilwatch row passes or was skipped, 1 when one
// fails, 2 on bad input.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

type line struct {
	Type      string  `json:"type"` // run, floor, skip
	Name      string  `json:"name"`
	File      string  `json:"file"`
	FileBytes int64   `json:"file_bytes"`
	Seconds   float64 `json:"seconds"`
	MaxRSSKiB int64   `json:"maxrss_kib"`
	Exit      int     `json:"exit"`
	Error     string  `json:"error"`
	Packets   int64   `json:"packets"`
	Reason    string  `json:"reason"`
	UserSec   float64 `json:"user_s"`
	SysSec    float64 `json:"sys_s"`
	OtherCPU  float64 `json:"other_cpu_s"`
}

// row is the best of the runs of one tool on one file.
type row struct {
	tool, file string
	runs       int
	seconds    float64 // fastest run
	rssKiB     int64   // highest peak over the runs
	cpu        float64 // user+sys of the fastest run
	busy       float64 // other CPU use during the fastest run, in CPUs
	exit       int
	err        string
	skip       string
}

type fileInfo struct {
	path    string
	bytes   int64
	packets int64
	summary map[string]any
}

var toolOrder = []string{"floor", "exfilwatch", "tshark"}

// busyLimit is the CPU use by other processes, in CPUs, above which a
// measurement is marked as possibly disturbed.
const busyLimit = 0.25

func main() {
	out := flag.String("o", "", "also write the report to this file")
	minShare := flag.Float64("min-floor-share", 0.30, "target: exfilwatch throughput as a share of the floor's")
	maxRSS := flag.Float64("max-rss-mb", 300, "target: exfilwatch peak RSS below this many MB (10^6 bytes)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: report [-o results.txt] results.jsonl")
		os.Exit(2)
	}
	files, rows, err := load(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	var sb strings.Builder
	failed := write(&sb, files, rows, *minShare, *maxRSS)
	fmt.Print(sb.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(sb.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func load(path string) ([]*fileInfo, map[string]*row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var files []*fileInfo
	byPath := map[string]*fileInfo{}
	rows := map[string]*row{}
	getFile := func(p string) *fileInfo {
		fi := byPath[p]
		if fi == nil {
			fi = &fileInfo{path: p}
			if b, err := os.ReadFile(p + ".summary.json"); err == nil {
				json.Unmarshal(b, &fi.summary)
			}
			byPath[p] = fi
			files = append(files, fi)
		}
		return fi
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		fi := getFile(l.File)
		if l.FileBytes > 0 {
			fi.bytes = l.FileBytes
		}
		key := l.Name + "\x00" + l.File
		switch l.Type {
		case "floor":
			fi.packets = l.Packets
			continue
		case "skip":
			rows[key] = &row{tool: l.Name, file: l.File, skip: l.Reason}
			continue
		case "run":
		default:
			continue
		}
		r := rows[key]
		if r == nil || r.skip != "" {
			r = &row{tool: l.Name, file: l.File}
			rows[key] = r
		}
		r.runs++
		if l.Exit != 0 || l.Error != "" {
			r.exit, r.err = l.Exit, l.Error
		}
		if r.runs == 1 || l.Seconds < r.seconds {
			r.seconds = l.Seconds
			r.cpu = l.UserSec + l.SysSec
			if l.Seconds > 0 {
				r.busy = l.OtherCPU / l.Seconds
			}
		}
		r.rssKiB = max(r.rssKiB, l.MaxRSSKiB)
	}
	return files, rows, sc.Err()
}

func mbps(fi *fileInfo, r *row) float64 {
	if r == nil || r.seconds <= 0 || r.skip != "" || r.err != "" {
		return 0
	}
	return float64(fi.bytes) / 1e6 / r.seconds
}

func num(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.0f", f)
	}
	return "?"
}

func write(w io.Writer, files []*fileInfo, rows map[string]*row, minShare, maxRSS float64) (failed bool) {
	fmt.Fprintf(w, "exfilwatch benchmark, %s, %d CPUs, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpuModel())
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "file\tMB\tpackets\tTCP conns\tHTTP requests\tFTP transfers\t")
	for _, fi := range files {
		conns, reqs, ftp := "?", "?", "?"
		if fi.summary != nil {
			conns, reqs, ftp = num(fi.summary["tcp_connections"]), num(fi.summary["http_requests"]), num(fi.summary["ftp_transfers"])
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%s\t%s\t%s\t\n", filepath.Base(fi.path), float64(fi.bytes)/1e6, fi.packets, conns, reqs, ftp)
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tfile\tseconds\tMB/s\tpackets/s\tpeak RSS MB\tCPU s\tvs floor\tvs tshark\tverdict\t")
	var verdicts []string
	busy := false
	for _, fi := range files {
		floor := rows["floor\x00"+fi.path]
		tshark := rows["tshark\x00"+fi.path]
		for _, tool := range toolOrder {
			r := rows[tool+"\x00"+fi.path]
			if r == nil {
				continue
			}
			base := filepath.Base(fi.path)
			if r.skip != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\tSKIP\t\n", tool, base)
				verdicts = append(verdicts, fmt.Sprintf("%s on %s: SKIP (%s)", tool, base, r.skip))
				continue
			}
			if r.err != "" {
				fmt.Fprintf(tw, "%s\t%s\t%.2f\t-\t-\t%.1f\t-\t-\t-\tERROR\t\n", tool, base, r.seconds, float64(r.rssKiB)*1024/1e6)
				verdicts = append(verdicts, fmt.Sprintf("%s on %s: ERROR (exit %d: %s)", tool, base, r.exit, r.err))
				if tool == "exfilwatch" {
					failed = true
				}
				continue
			}
			m := mbps(fi, r)
			rss := float64(r.rssKiB) * 1024 / 1e6
			pps := "?"
			if fi.packets > 0 {
				pps = fmt.Sprintf("%.0f", float64(fi.packets)/r.seconds)
			}
			vsFloor, vsTshark, verdict := "-", "-", "-"
			if tool != "floor" && mbps(fi, floor) > 0 {
				vsFloor = fmt.Sprintf("%.1f%%", 100*m/mbps(fi, floor))
			}
			if tool == "exfilwatch" {
				if mbps(fi, tshark) > 0 {
					vsTshark = fmt.Sprintf("%.2fx", m/mbps(fi, tshark))
				}
				var why []string
				share := 0.0
				if mbps(fi, floor) > 0 {
					share = m / mbps(fi, floor)
				}
				if share < minShare {
					why = append(why, fmt.Sprintf("throughput %.1f%% of floor < %.0f%%", 100*share, 100*minShare))
				}
				if rss >= maxRSS {
					why = append(why, fmt.Sprintf("peak RSS %.1f MB >= %.0f MB", rss, maxRSS))
				}
				verdict = "PASS"
				if len(why) > 0 {
					verdict = "FAIL"
					failed = true
				}
				msg := fmt.Sprintf("exfilwatch on %s: %s (%.1f%% of floor, target >= %.0f%%; peak RSS %.1f MB, target < %.0f MB)",
					base, verdict, 100*share, 100*minShare, rss, maxRSS)
				if len(why) > 0 {
					msg += ": " + strings.Join(why, "; ")
				}
				verdicts = append(verdicts, msg)
			}
			mark := ""
			if r.busy > busyLimit {
				mark = " *"
				busy = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f%s\t%.1f\t%s\t%.1f\t%.2f\t%s\t%s\t%s\t\n",
				tool, base, r.seconds, mark, m, pps, rss, r.cpu, vsFloor, vsTshark, verdict)
		}
	}
	tw.Flush()
	if busy {
		fmt.Fprintf(w, "* other processes used more than %.2f CPU during this run: the figure may be noisy (the fastest of BENCH_REPEAT runs is shown)\n", busyLimit)
	}
	fmt.Fprintln(w)
	for _, v := range verdicts {
		fmt.Fprintln(w, v)
	}
	overall := "PASS"
	switch {
	case failed:
		overall = "FAIL"
	case !hasExfilwatchRun(rows):
		overall = "INCOMPLETE (exfilwatch not measured)"
	}
	fmt.Fprintf(w, "overall: %s\n", overall)
	return failed
}

func hasExfilwatchRun(rows map[string]*row) bool {
	for _, r := range rows {
		if r.tool == "exfilwatch" && r.skip == "" {
			return true
		}
	}
	return false
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
