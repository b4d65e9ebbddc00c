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

// InSubject is the subject events from or about system are published on.
func InSubject(system string) string { return InPrefix + system }

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
// subject.
func SystemFromSubject(subject string) (string, bool) {
	if !strings.HasPrefix(subject, InPrefix) {
		return "", false
	}
	sys := subject[len(InPrefix):]
	if sys == "" || strings.ContainsAny(sys, ".*>") {
		return "", false
	}
	return sys, true
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
