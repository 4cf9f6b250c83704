package events

// Kind says which event a Record holds.
type Kind uint8

const (
	KindHTTP Kind = iota
	KindFTP
	KindFTPData
	KindFlow
	KindDNS
	// KindHTTPRequest is the notice that a request's body ended
	// (RequestSink), not an event of its own: HTTP holds it.
	KindHTTPRequest
)

// Record holds any one event by value, for code that queues events (the
// sensor while lookups answer, Async between goroutines).
type Record struct {
	Kind    Kind
	HTTP    HTTP
	FTP     FTPCommand
	FTPData FTPData
	Flow    Flow
	DNS     *DNS // a pointer: DNS events are rare, and Record is copied by value
}

// Deliver hands the event to a sink.
func (r *Record) Deliver(s Sink) {
	switch r.Kind {
	case KindHTTP:
		s.HTTP(&r.HTTP)
	case KindFTP:
		s.FTPCommand(&r.FTP)
	case KindFTPData:
		s.FTPData(&r.FTPData)
	case KindFlow:
		s.Flow(&r.Flow)
	case KindDNS:
		if d, ok := s.(DNSSink); ok && r.DNS != nil {
			d.DNS(r.DNS)
		}
	case KindHTTPRequest:
		if rs, ok := s.(RequestSink); ok {
			rs.HTTPRequest(&r.HTTP)
		}
	}
}

// Conns returns the connections the event describes: one, or for an FTP
// data transfer the data and the control connection.
func (r *Record) Conns() (a, b *Conn) {
	switch r.Kind {
	case KindHTTP, KindHTTPRequest:
		return &r.HTTP.Conn, nil
	case KindFTP:
		return &r.FTP.Conn, nil
	case KindFTPData:
		return &r.FTPData.Conn, &r.FTPData.Control
	case KindDNS:
		if r.DNS != nil {
			return &r.DNS.Conn, nil
		}
		return nil, nil
	}
	return &r.Flow.Conn, nil
}
