package detect

import (
	"path"
	"strconv"
	"strings"

	"exfilwatch/attribution"
)

// The severity model (docs/findings.md). A finding exists only when the
// rule's conditions hold (a non-browser process, or its close lineage, read
// a sensitive file within the window before uploading it somewhere off the
// host). The reasons then add or remove points; the sum gives the severity:
//
//	score <= 1: low, 2-3: medium, 4-5: high, >= 6: critical
//
// A content match (the uploaded bytes are a file that was read) is at least
// high whatever else is known.

// Reason codes. Weights are in reasonWeights.
const (
	ReasonSensitiveRead  = "sensitive_read"     // the uploader itself read sensitive files
	ReasonLineageRead    = "lineage_read"       // a parent, child or sibling read them
	ReasonCredential     = "credential_class"   // keys, keychains, cloud or browser credentials
	ReasonInterpreter    = "interpreter"        // a script interpreter (python, perl, ruby, node, osascript…)
	ReasonShell          = "shell"              // a shell (sh, bash, zsh…)
	ReasonNetworkTool    = "network_tool"       // curl, wget, nc, ftp…
	ReasonTemporary      = "location_temporary" // binary or script in a temporary directory
	ReasonHidden         = "location_hidden"    // binary or script in a hidden (dot) directory or named with a dot
	ReasonDownloads      = "location_downloads" // binary or script in a Downloads folder
	ReasonUserWritable   = "location_user_writable"
	ReasonUnsigned       = "unsigned"             // macOS: no valid code signature
	ReasonAdhoc          = "adhoc_signed"         // macOS: ad-hoc signature (no team)
	ReasonTeamSigned     = "team_signed"          // macOS: valid signature by a developer team (lowers)
	ReasonContentMatch   = "content_match"        // the uploaded bytes hash to a file that was read
	ReasonBytesMatch     = "bytes_comparable"     // uploaded at least half of the bytes read
	ReasonBytesSmall     = "bytes_much_smaller"   // uploaded under 1% of the bytes read (lowers)
	ReasonRawIP          = "raw_ip_destination"   // no host name: an address typed or computed
	ReasonNewDestination = "new_destination"      // this process identity never uploaded there before
	ReasonInternal       = "internal_destination" // the destination is on the host's own networks (lowers)
	ReasonUnparsed       = "unparsed_protocol"    // bulk bytes on a flow no parser understood (TLS, other)
)

var reasonWeights = map[string]int{
	ReasonSensitiveRead: 0, ReasonLineageRead: 0,
	ReasonCredential:  2,
	ReasonInterpreter: 1, ReasonShell: 1, ReasonNetworkTool: 1,
	ReasonTemporary: 2, ReasonHidden: 2, ReasonDownloads: 2, ReasonUserWritable: 1,
	ReasonUnsigned: 2, ReasonAdhoc: 2, ReasonTeamSigned: -1,
	ReasonContentMatch: 4, ReasonBytesMatch: 1, ReasonBytesSmall: -1,
	ReasonRawIP: 1, ReasonNewDestination: 1, ReasonInternal: -1, ReasonUnparsed: 0,
}

// maxLocationPoints caps the location signals together: a binary in
// /tmp/.x is suspicious, not three times so.
const maxLocationPoints = 3

// Severities, and their ECS event.severity numbers.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// SeverityNumber maps a severity to ECS event.severity (0-100).
func SeverityNumber(s string) int {
	switch s {
	case SeverityLow:
		return 21
	case SeverityMedium:
		return 47
	case SeverityHigh:
		return 73
	case SeverityCritical:
		return 99
	}
	return 0
}

func severityOf(score int, contentMatch bool) string {
	s := SeverityLow
	switch {
	case score >= 6:
		s = SeverityCritical
	case score >= 4:
		s = SeverityHigh
	case score >= 2:
		s = SeverityMedium
	}
	if contentMatch && (s == SeverityLow || s == SeverityMedium) {
		s = SeverityHigh
	}
	return s
}

// Program kinds, by executable base name (version suffixes allowed).
var (
	interpreters = []string{"python", "perl", "ruby", "node", "nodejs", "osascript", "php", "lua", "tclsh", "pwsh", "deno", "bun", "java", "Rscript"}
	shells       = []string{"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "tcsh", "csh"}
	networkTools = []string{"curl", "wget", "nc", "ncat", "netcat", "ftp", "lftp", "tnftp", "ncftp", "ncftpput", "socat", "http", "https", "xh", "aria2c", "scp", "sftp", "tftp", "rclone", "wput", "curlie"}
)

// baseIs reports whether name is one of list, allowing version suffixes
// ("python3.12", "perl5.34") .
func baseIs(name string, list []string) bool {
	for _, n := range list {
		if name == n {
			return true
		}
		if strings.HasPrefix(name, n) {
			rest := name[len(n):]
			if strings.Trim(rest, "0123456789.-") == "" {
				return true
			}
		}
	}
	return false
}

func (f *Finding) add(code, desc string) {
	w := reasonWeights[code]
	f.Reasons = append(f.Reasons, Reason{Code: code, Description: desc, Weight: w})
	f.Score += w
}

// assess lists the reasons and computes the score and severity.
func (d *Detector) assess(f *Finding, id attribution.CodeIdentity, newDest bool) {
	p := f.Process
	self, lineage := false, false
	credential := ""
	var readBytes int64
	paths := map[string]bool{}
	for _, fl := range f.Files {
		if fl.Relation == RelSelf {
			self = true
		} else {
			lineage = true
		}
		if credential == "" && d.opt.CredentialClasses[fl.Class] {
			credential = fl.Class
		}
		if !paths[fl.Path] && fl.Size > 0 {
			paths[fl.Path] = true
			readBytes += fl.Size
		}
	}
	f.BytesRead = readBytes
	if self {
		f.add(ReasonSensitiveRead, "the uploading process read "+plural(len(f.Files), "sensitive file")+" in the window")
	}
	if lineage {
		f.add(ReasonLineageRead, "a related process (parent, child or sibling in its process group) read sensitive files in the window")
	}
	if credential != "" {
		f.add(ReasonCredential, "credential material was read (class "+credential+")")
	}

	exe := p.Executable
	base := path.Base(exe)
	if exe == "" {
		base = p.Name
	}
	switch {
	case baseIs(base, interpreters):
		desc := "script interpreter " + base
		if f.Script != nil && f.Script.Path != "" {
			desc += " running " + f.Script.Path
		}
		f.add(ReasonInterpreter, desc)
	case baseIs(base, shells):
		f.add(ReasonShell, "shell "+base)
	case baseIs(base, networkTools):
		f.add(ReasonNetworkTool, "command-line network tool "+base)
	}

	// Locations: of the executable and, for an interpreter, of its script.
	locPoints := 0
	locs := map[string]bool{}
	for _, pth := range []string{exe, f.scriptPath()} {
		if pth == "" {
			continue
		}
		for _, code := range locationSignals(pth, d.opt.GOOS) {
			if locs[code] {
				continue
			}
			locs[code] = true
			w := reasonWeights[code]
			if locPoints+w > maxLocationPoints {
				w = maxLocationPoints - locPoints
			}
			locPoints += w
			f.Reasons = append(f.Reasons, Reason{Code: code, Description: locationDesc(code, pth), Weight: w})
			f.Score += w
		}
	}

	if d.opt.GOOS == "darwin" && (id.SigningID != "" || id.ValidSignature || id.TeamID != "" || p.Code != nil) {
		adhoc := p.Code != nil && p.Code.AdHoc
		switch {
		case !id.ValidSignature:
			f.add(ReasonUnsigned, "no valid code signature")
		case adhoc || (id.TeamID == "" && !id.PlatformBinary):
			f.add(ReasonAdhoc, "ad-hoc signed (no developer team)")
		case id.TeamID != "":
			f.add(ReasonTeamSigned, "signed by developer team "+id.TeamID+" ("+id.SigningID+")")
		}
	}

	up := &f.Upload
	for _, h := range up.Hashes {
		for i := range f.Files {
			fl := &f.Files[i]
			if fl.Hashed && fl.SHA256 == h.SHA256 {
				fl.ContentMatch = true
				if f.ContentMatch == nil {
					f.ContentMatch = &ContentMatch{Where: h.Where, Path: fl.Path, SHA256: h.SHA256}
				}
			}
		}
	}
	if f.ContentMatch != nil {
		f.add(ReasonContentMatch, "the "+f.ContentMatch.Where+" is byte for byte "+f.ContentMatch.Path)
	} else if readBytes > 0 {
		switch {
		case up.Bytes*2 >= readBytes:
			f.add(ReasonBytesMatch, "uploaded "+strconv.Itoa(int(up.Bytes))+" bytes, read "+strconv.Itoa(int(readBytes))+" bytes of sensitive files")
		case up.Bytes*100 < readBytes:
			f.add(ReasonBytesSmall, "uploaded "+strconv.Itoa(int(up.Bytes))+" bytes, under 1% of the "+strconv.Itoa(int(readBytes))+" bytes read")
		}
	}

	if f.DestinationName == "" {
		f.add(ReasonRawIP, "destination given as a raw address "+up.Conn.Server.Addr().String())
	}
	if newDest {
		f.add(ReasonNewDestination, "first upload by this program to this destination")
	}
	if f.Upload.Conn.Direction == "internal" {
		f.add(ReasonInternal, "destination on the host's own networks")
	}
	if up.Protocol != "http" && up.Protocol != "ftp" {
		f.add(ReasonUnparsed, "bulk outbound bytes on a "+up.Protocol+" flow no parser understood")
	}
	f.Severity = severityOf(f.Score, f.ContentMatch != nil)
}

func (f *Finding) scriptPath() string {
	if f.Script == nil {
		return ""
	}
	return f.Script.Path
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

var tempDirs = []string{"/tmp/", "/var/tmp/", "/private/tmp/", "/private/var/tmp/", "/dev/shm/", "/private/var/folders/", "/var/folders/", "/run/user/"}

// locationSignals classifies where a program (or script) lives.
func locationSignals(p, goos string) []string {
	cp := path.Clean(p)
	lp := cp
	if goos == "darwin" {
		lp = strings.ToLower(cp)
	}
	var out []string
	for _, t := range tempDirs {
		if strings.HasPrefix(lp+"/", t) || strings.HasPrefix(lp, t) {
			out = append(out, ReasonTemporary)
			break
		}
	}
	segs := strings.Split(strings.TrimPrefix(cp, "/"), "/")
	for _, s := range segs {
		if strings.HasPrefix(s, ".") && s != "." && s != ".." {
			out = append(out, ReasonHidden)
			break
		}
	}
	inHome := strings.HasPrefix(lp, "/home/") || strings.HasPrefix(lp, "/users/") || strings.HasPrefix(lp, "/Users/") || strings.HasPrefix(lp, "/root/") || strings.HasPrefix(lp, "/var/root/")
	if inHome && len(segs) > 2 && strings.EqualFold(segs[2], "Downloads") || strings.HasPrefix(lp, "/root/downloads/") || strings.HasPrefix(lp, "/var/root/downloads/") {
		out = append(out, ReasonDownloads)
	} else if inHome && !contains(out, ReasonTemporary) {
		out = append(out, ReasonUserWritable)
	}
	return out
}

func locationDesc(code, p string) string {
	switch code {
	case ReasonTemporary:
		return p + " is in a temporary directory"
	case ReasonHidden:
		return p + " is hidden (a dot file or directory)"
	case ReasonDownloads:
		return p + " is in a Downloads folder"
	}
	return p + " is in a user-writable home directory"
}

// Classes returns the distinct sensitive classes of the files, in order.
func (f *Finding) Classes() []string {
	var out []string
	for _, fl := range f.Files {
		if !contains(out, fl.Class) {
			out = append(out, fl.Class)
		}
	}
	return out
}
