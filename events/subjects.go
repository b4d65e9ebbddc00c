package events

import "strings"

// Stream names (CONTRACT.md section 4).
const (
	EventsStream = "DRIFTWATCH_EVENTS"
	AlertsStream = "DRIFTWATCH_ALERTS"
	DLQStream    = "DRIFTWATCH_DLQ"
)

// Subject prefixes and fixed subjects (CONTRACT.md section 4).
const (
	InPrefix        = "driftwatch.in."
	DLQPrefix       = "driftwatch.dlq."
	AlertsPrefix    = "driftwatch.alerts."
	OpsAlertsPrefix = "driftwatch.alerts.ops."
	ReportsSubject  = "driftwatch.reports.reconcile"
	ValidateSubject = "driftwatch.validate"
)

// Headers set on published and dead-lettered messages.
const (
	HeaderMsgID     = "Nats-Msg-Id"
	HeaderErrorCode = "Driftwatch-Error-Code"
	HeaderError     = "Driftwatch-Error"

	// JetStream's atomic batch headers (ADR-50), set by PublishBatch and
	// kept on the stored messages.
	HeaderBatchID     = "Nats-Batch-Id"
	HeaderBatchSeq    = "Nats-Batch-Sequence"
	HeaderBatchCommit = "Nats-Batch-Commit"
)

// UnknownSystemToken is the subject token used for dead-lettered input whose
// system cannot be told (missing or not a valid id). It cannot collide with a
// configured system because system ids start with a letter.
const UnknownSystemToken = "_unknown"

// InSubject is the subject events from or about system are published on
// when the order is not named in it (any publisher may use it).
func InSubject(system string) string { return InPrefix + system }

// OrderSubject is the subject an event about orderID from or about system
// is published on: driftwatch.in.<system>.<order_id> when the order id is
// a valid subject token (OrderToken), else InSubject(system). The events
// stream stores it as driftwatch.in.<system> for one instance, and as
// driftwatch.in.<system>.<partition> for instances sharing the orders, so
// that each instance is delivered only its own orders' events (CONTRACT.md
// section 4). Both subjects carry the same events.
func OrderSubject(system, orderID string) string {
	if !OrderToken(orderID) {
		return InSubject(system)
	}
	return InPrefix + system + "." + orderID
}

// SystemSubjects are the subjects the log holds a system's events under:
// driftwatch.in.<system>, and driftwatch.in.<system>.<partition> for
// instances sharing the orders (a published order token never stays in
// the log: the stream's transform replaces or drops it).
func SystemSubjects(system string) []string {
	return []string{InSubject(system), InSubject(system) + ".*"}
}

// MaxOrderToken is the longest order id that OrderSubject puts in a
// subject.
const MaxOrderToken = 128

// OrderToken reports whether orderID can be a subject token: 1 to
// MaxOrderToken bytes of printable ASCII other than '.', '*', '>' and
// space. The server hashes the token's bytes exactly as Partition hashes
// the order id.
func OrderToken(orderID string) bool {
	if len(orderID) < 1 || len(orderID) > MaxOrderToken {
		return false
	}
	for i := 0; i < len(orderID); i++ {
		c := orderID[i]
		if c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// DLQSubject is the dead-letter subject for input rejected for system.
func DLQSubject(system string) string {
	if !ValidSystemID(system) {
		system = UnknownSystemToken
	}
	return DLQPrefix + system
}

// AlertSubject is the subject a mismatch alert is published on.
func AlertSubject(severity, pattern string) string {
	return AlertsPrefix + severity + "." + pattern
}

// MsgID is the Nats-Msg-Id of an event: "<system>:<event_id>". JetStream
// drops a second message with the same id inside the dedupe window.
func MsgID(system, eventID string) string { return system + ":" + eventID }

// SystemFromSubject returns the system token of a driftwatch.in.<system>
// subject, or of driftwatch.in.<system>.<token> (an order id as
// published, a partition as stored).
func SystemFromSubject(subject string) (string, bool) {
	if !strings.HasPrefix(subject, InPrefix) {
		return "", false
	}
	sys := subject[len(InPrefix):]
	if i := strings.IndexByte(sys, '.'); i >= 0 {
		if tok := sys[i+1:]; tok == "" || strings.ContainsAny(tok, ".*>") {
			return "", false
		}
		sys = sys[:i]
	}
	if sys == "" || strings.ContainsAny(sys, "*>") {
		return "", false
	}
	return sys, true
}

// PartitionFromSubject returns the partition token of a stored
// driftwatch.in.<system>.<partition> subject (ok false: a subject without
// one, or whose token is not a partition number).
func PartitionFromSubject(subject string) (int, bool) {
	i := strings.LastIndexByte(subject, '.')
	if i < len(InPrefix) || !strings.HasPrefix(subject, InPrefix) || strings.IndexByte(subject[len(InPrefix):i], '.') >= 0 {
		return 0, false
	}
	tok := subject[i+1:]
	if tok == "" || len(tok) > 4 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	p := 0
	for j := 0; j < len(tok); j++ {
		if tok[j] < '0' || tok[j] > '9' {
			return 0, false
		}
		p = p*10 + int(tok[j]-'0')
	}
	return p, true
}

// ValidSystemID reports whether id matches [a-z][a-z0-9_-]{0,31}, the form of
// a system id (it is a subject token).
func ValidSystemID(id string) bool {
	if len(id) < 1 || len(id) > 32 {
		return false
	}
	if id[0] < 'a' || id[0] > 'z' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
