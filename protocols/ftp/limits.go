// Limits and anomaly names: every bound the parser enforces, and what it reports when one is hit.

package ftp

// Defaults applied when the matching Limits field is zero (or negative).
// They are finite on purpose: a hostile peer must never make a session grow
// without bound.
const (
	// DefaultMaxLineBytes caps one command or reply line after telnet
	// stripping, without CRLF. vsftpd reads command lines of up to 4096 bytes.
	DefaultMaxLineBytes = 4096
	// DefaultMaxPendingCommands caps commands sent but not yet answered
	// (pipelining). Zeek uses the same value (FTP::max_pending_commands).
	DefaultMaxPendingCommands = 20
	// DefaultMaxExpected caps data channels the session tracks at once:
	// announced expectations plus transfers waiting for their reply or close.
	DefaultMaxExpected = 16
	// DefaultMaxReplyLines caps the lines kept from one multi-line reply.
	DefaultMaxReplyLines = 64
	// DefaultMaxReplyBytes caps Reply.Message.
	DefaultMaxReplyBytes = 8192
	// DefaultMaxCommandNameBytes caps Command.Name. Real command names have
	// 3 or 4 letters; 16 leaves room for extensions.
	DefaultMaxCommandNameBytes = 16
	// DefaultMaxInterimReplies caps Command.Interim (1xx replies).
	DefaultMaxInterimReplies = 4
)

// Limits bounds the memory one Session may use. A zero field means the
// documented default (see the Default* constants), as net/http does with
// MaxHeaderBytes.
type Limits struct {
	MaxLineBytes       int // longer lines are truncated: AnomalyLineTooLong
	MaxPendingCommands int // the oldest is emitted without reply: AnomalyTooManyPending
	MaxExpected        int // the oldest data channel is dropped: AnomalyTooManyExpected
	MaxReplyLines      int // later lines of the reply are dropped: AnomalyTooManyReplyLines

	MaxReplyBytes       int // Reply.Message is truncated: AnomalyReplyTooLong
	MaxCommandNameBytes int // Command.Name is truncated: AnomalyCommandNameTooLong
	MaxInterimReplies   int // later 1xx replies are dropped: AnomalyTooManyInterim
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (l Limits) maxLineBytes() int { return orDefault(l.MaxLineBytes, DefaultMaxLineBytes) }
func (l Limits) maxPendingCommands() int {
	return orDefault(l.MaxPendingCommands, DefaultMaxPendingCommands)
}
func (l Limits) maxExpected() int   { return orDefault(l.MaxExpected, DefaultMaxExpected) }
func (l Limits) maxReplyLines() int { return orDefault(l.MaxReplyLines, DefaultMaxReplyLines) }
func (l Limits) maxReplyBytes() int { return orDefault(l.MaxReplyBytes, DefaultMaxReplyBytes) }
func (l Limits) maxCommandNameBytes() int {
	return orDefault(l.MaxCommandNameBytes, DefaultMaxCommandNameBytes)
}
func (l Limits) maxInterimReplies() int {
	return orDefault(l.MaxInterimReplies, DefaultMaxInterimReplies)
}

// Anomaly names. Limit anomalies carry Observed and Limit; protocol
// violations carry the offending text in Detail (quoted, capped, with
// PASS/ACCT arguments redacted).
const (
	AnomalyLineTooLong        = "ftp.line_too_long"
	AnomalyTooManyPending     = "ftp.too_many_pending_commands"
	AnomalyTooManyExpected    = "ftp.too_many_expected_data_channels"
	AnomalyTooManyReplyLines  = "ftp.too_many_reply_lines"
	AnomalyReplyTooLong       = "ftp.reply_too_long"
	AnomalyCommandNameTooLong = "ftp.command_name_too_long"
	AnomalyTooManyInterim     = "ftp.too_many_interim_replies"

	AnomalyInvalidReplyCode = "ftp.invalid_reply_code" // a reply line without a 3-digit code in 100..699
	AnomalyMalformedReply   = "ftp.malformed_reply"    // a code followed by neither ' ' nor '-'
	AnomalyInvalidCommand   = "ftp.invalid_command"    // empty, or a name that is not letters only
	AnomalyBadDataAddress   = "ftp.bad_data_address"   // PORT/EPRT/LPRT argument or 227/228/229 text not parsable
	AnomalyUnsolicitedReply = "ftp.unsolicited_reply"  // a reply with no command pending (not the greeting, not 421)
	AnomalyCommandAfterQuit = "ftp.command_after_quit" // a command after QUIT was answered 221
	AnomalyPartialLine      = "ftp.partial_line"       // a direction ended inside a line or a multi-line reply
	AnomalyReplyCutByGap    = "ftp.reply_cut_by_gap"   // a multi-line reply whose last line was lost in a gap
)
