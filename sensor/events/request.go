package events

// RequestSink is implemented by sinks that want to hear of an HTTP upload
// when its request body ends rather than when the response does: a server
// that answers slowly, or never, would otherwise hold back the judgement of
// the upload. It is a notice, not an event: the JSON and text writers do not
// implement it, and the HTTP event for the same transaction still follows.
//
// HTTPRequest is called once per request that carried a body (BodyBytes > 0)
// when the body completed or was given up on (a gap, a protocol switch, the
// connection's end), through the same ordered path as the events: it waits
// for the connection's process lookup like them, and comes before the HTTP
// event of its transaction. e.Conn is the connection as that event will
// carry it; e.Tx is a copy of the transaction at that moment, owned by the
// sink: Request final, Response nil, Anomalies so far. e.Tx.Seq() with
// e.FlowID names the transaction: the later HTTP event has the same FlowID
// and Tx.Seq() (a different *Transaction).
type RequestSink interface {
	HTTPRequest(*HTTP)
}

// WantsRequests says whether s takes request notices (RequestSink), looking
// through Async to the sink it feeds: the sensor builds notices only then.
func WantsRequests(s Sink) bool {
	if a, ok := s.(*Async); ok {
		s = a.out
	}
	_, ok := s.(RequestSink)
	return ok
}

// HTTPRequest implements RequestSink: the notice is forwarded, in order with
// the events, to the wrapped sink if it implements RequestSink.
func (a *Async) HTTPRequest(e *HTTP) {
	a.add(asyncItem{rec: Record{Kind: KindHTTPRequest, HTTP: *e}})
}
