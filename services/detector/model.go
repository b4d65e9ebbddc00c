package detector

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/services/config"
)

// Patterns (CONTRACT.md section 6).
const (
	OrderNotAcknowledged = "order_not_acknowledged"
	ShipmentNotReflected = "shipment_not_reflected"
	ReturnNotReflected   = "return_not_reflected"
	CancelNotPropagated  = "cancel_not_propagated"
	PaymentWithoutOrder  = "payment_without_order"
	StatusNotPropagated  = "status_not_propagated"
	AckedNotApplied      = "acked_not_applied"
	UnmappedStatus       = "unmapped_status"
	IllegalTransition    = "illegal_transition"
	ManualOverride       = "manual_override"
	ClockSkew            = "clock_skew"
	MissingEvent         = "missing_event"
)

// Patterns lists every pattern.
var Patterns = []string{OrderNotAcknowledged, ShipmentNotReflected, ReturnNotReflected, CancelNotPropagated,
	PaymentWithoutOrder, StatusNotPropagated, AckedNotApplied, UnmappedStatus, IllegalTransition,
	ManualOverride, ClockSkew, MissingEvent}

// Severities, most severe first.
const (
	Critical = "critical"
	High     = "high"
	Medium   = "medium"
	Low      = "low"
)

// Severities lists the severities, most severe first.
var Severities = []string{Critical, High, Medium, Low}

// SeverityRank orders severities (critical 0 ... low 3).
func SeverityRank(s string) int {
	for i, x := range Severities {
		if x == s {
			return i
		}
	}
	return len(Severities)
}

// DefaultSeverity is the contract's default severity of a pattern.
func DefaultSeverity(pattern string) string {
	switch pattern {
	case PaymentWithoutOrder:
		return Critical
	case OrderNotAcknowledged, ReturnNotReflected, CancelNotPropagated, AckedNotApplied, IllegalTransition, MissingEvent:
		return High
	case ShipmentNotReflected, StatusNotPropagated, ManualOverride:
		return Medium
	default:
		return Low
	}
}

// Alert states.
const (
	StateOpen      = "open"
	StateEscalated = "escalated"
	StateResolved  = "resolved"
)

// Detection sources.
const (
	BySLA       = "sla"
	ByValidate  = "validate"
	ByReconcile = "reconcile"
	ByIngest    = "ingest"
)

// Side is one system's state in an alert.
type Side struct {
	System     string `json:"system"`
	Status     string `json:"status"`
	Field      string `json:"status_field,omitempty"`
	Canonical  string `json:"canonical"`
	Payment    string `json:"payment,omitempty"`
	OccurredAt string `json:"occurred_at"`
	ReceivedAt string `json:"received_at"`
	Seq        uint64 `json:"seq"`
	EventID    string `json:"event_id"`
	Actor      string `json:"actor,omitempty"`
}

// Alert is the alert record of CONTRACT.md section 6, published on
// driftwatch.alerts.<severity>.<pattern>. Fields after Escalation extend
// the contract (additive, for the dashboard and for people).
type Alert struct {
	AlertID         string         `json:"alert_id"`
	State           string         `json:"state"`
	OrderID         string         `json:"order_id"`
	Pattern         string         `json:"pattern"`
	Severity        string         `json:"severity"`
	Source          *Side          `json:"source"`
	Target          *Side          `json:"target"`
	OnsetAt         string         `json:"onset_at"`
	Deadline        string         `json:"deadline"`
	DetectedAt      string         `json:"detected_at"`
	ResolvedAt      *string        `json:"resolved_at"`
	DetectedBy      string         `json:"detected_by"`
	MappingVersions map[string]int `json:"mapping_versions"`
	Message         string         `json:"message"`
	// Owner is the person or team that owns the mismatch ("" while
	// unassigned): set when it opens from the configuration's owners,
	// changed by an assignment (Engine.Assign).
	Owner string `json:"owner"`
	// Runbook is what the pattern means, its usual causes and the first
	// checks for this mismatch (runbooks.go). It is filled in when a
	// record is published or served, never stored: a change of the
	// configuration's runbooks shows on every record at once.
	Runbook *Runbook `json:"runbook,omitempty"`
	// Escalation says, on an escalated record, after how long it was
	// escalated and who owned it then ("escalated after 24h; owner:
	// team-erp", "...; unassigned").
	Escalation string `json:"escalation,omitempty"`

	// Expected is the canonical state the target was expected to reflect.
	Expected string `json:"expected,omitempty"`
	// Dimension is fulfilment or payment ("" for per-event findings).
	Dimension string `json:"dimension,omitempty"`
	// ReplaySeqs are the log sequences that explain the alert.
	ReplaySeqs []uint64 `json:"replay_seqs,omitempty"`
	// Amount and Currency are the order value at risk, when known.
	Amount   string `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
	// Occurrences counts detections of this alert id while open.
	Occurrences int `json:"occurrences,omitempty"`
	// Scope is "system" for a finding about a system or a platform rather
	// than the order it arrived with (an unmapped status, a clock off by
	// whole hours); OrderID then names the first order that showed it, and
	// per-order figures (mismatch rate, value at risk) leave it out.
	Scope string `json:"scope,omitempty"`
}

// OwnerNone is the owner filter's word for the unassigned mismatches
// (Filter.Owner, GET /v1/mismatches?owner=none); no owner may be called it.
const OwnerNone = config.OwnerNone

// ScopeSystem marks a finding about a system, not an order (Alert.Scope).
const ScopeSystem = "system"

// PerOrder reports whether the alert is about its order (it counts in
// per-order figures such as the mismatch rate and the value at risk).
func (a *Alert) PerOrder() bool { return a.Scope != ScopeSystem }

// Audit actions (AuditEntry.Action).
const (
	ActionOpened    = "opened"
	ActionRepeated  = "repeated"
	ActionReopened  = "reopened"
	ActionEscalated = "escalated"
	ActionResolved  = "resolved"
	ActionExpired   = "expired"
	ActionAssigned  = "assigned"
	ActionNote      = "note"
)

// AuditEntry is one step in a mismatch's life: opened, repeated,
// reopened, escalated, resolved, expired (a gate flag), assigned (From and
// To are the owners before and after; an empty one, left out of the JSON,
// is "unassigned") or note (a remark that changes nothing else).
type AuditEntry struct {
	At     string `json:"at"`
	Action string `json:"action"`
	By     string `json:"by,omitempty"`
	Note   string `json:"note,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// Mismatch is a stored alert with its lifecycle.
type Mismatch struct {
	Alert
	// OnsetNanos, DeadlineNanos, DetectedNanos and ResolvedNanos are the
	// alert's times as Unix nanoseconds, for metrics and sorting.
	OnsetNanos    int64        `json:"onset_ns"`
	DeadlineNanos int64        `json:"deadline_ns"`
	DetectedNanos int64        `json:"detected_ns"`
	ResolvedNanos int64        `json:"resolved_ns,omitempty"`
	EscalatedAt   string       `json:"escalated_at,omitempty"`
	Audit         []AuditEntry `json:"audit"`
	// ExpState and ExpPayment are what the target must reflect for the
	// mismatch to resolve (flow patterns only).
	ExpState   canonical.State   `json:"exp_state,omitempty"`
	ExpPayment canonical.Payment `json:"exp_payment,omitempty"`
	// FlowFrom and FlowTo are the flow a flow pattern was judged on ("" for
	// per-event findings, which do not resolve by agreement).
	FlowFrom string `json:"flow_from,omitempty"`
	FlowTo   string `json:"flow_to,omitempty"`
	// GateTarget is the system a gate flag was asked about (detected_by
	// validate); ExpState/ExpPayment then hold the incoming state. The
	// flag resolves when the target shows a state that reflects it, and
	// expires when its order never reaches the log.
	GateTarget string `json:"gate_target,omitempty"`
	// Assignments counts the owner changes the record was republished
	// for: the n of their Nats-Msg-Id <alert_id>:assigned:<n>.
	Assignments int `json:"assignments,omitempty"`
}

// AlertID is the stable id of (order_id, pattern, source system, target
// system): the same drift always has the same id.
func AlertID(orderID, pattern, source, target string) string {
	h := sha256.New()
	for _, s := range []string{orderID, pattern, source, target} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "dw-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// Dimensions of an expectation.
const (
	DimFulfilment uint8 = 1
	DimPayment    uint8 = 2
)

func dimName(d uint8) string {
	if d == DimPayment {
		return "payment"
	}
	return "fulfilment"
}

// Expectation says system To must reflect From's state by Deadline.
type Expectation struct {
	OrderID string
	From    string
	To      string
	Dim     uint8
	// State/Payment is what To must reflect (after reducing to what To's
	// platform can express); SourceState/SourcePayment is what From said.
	State         canonical.State
	Payment       canonical.Payment
	SourceState   canonical.State
	SourcePayment canonical.Payment
	SourceSeq     uint64
	SourceEventID string
	Onset         int64 // From's occurred_at, Unix ns
	Deadline      int64 // Onset + SLA
	JudgeAt       int64 // max(Deadline, From's received_at + settle)
	// Manual marks an expectation raised by a manual change (on either
	// side): unmet, it is a manual_override.
	Manual bool
	// Presence marks a payment expectation on a record system whose
	// platform cannot express the payment state: it is met when the record
	// system has the order at all (unmet: payment_without_order).
	Presence bool
}
