package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Gate decisions (CONTRACT.md section 7).
const (
	DecisionAllow = "allow"
	DecisionFlag  = "flag"
)

// ValidateRequest asks the boundary gate whether Event may be written to
// Target (default: the record system).
type ValidateRequest struct {
	Event  json.RawMessage `json:"event"`
	Target string          `json:"target,omitempty"`
}

// CurrentState is the target's current state in a gate reply.
type CurrentState struct {
	System     string `json:"system"`
	Status     string `json:"status,omitempty"`
	Canonical  string `json:"canonical,omitempty"`
	Payment    string `json:"payment,omitempty"`
	OccurredAt string `json:"occurred_at,omitempty"`
	HasRecord  bool   `json:"has_record"`
}

// IncomingState is the incoming event's canonical meaning.
type IncomingState struct {
	Canonical string `json:"canonical,omitempty"`
	Payment   string `json:"payment,omitempty"`
}

// ValidateReply is the gate's answer.
type ValidateReply struct {
	Decision string        `json:"decision"`
	Severity string        `json:"severity,omitempty"`
	Pattern  string        `json:"pattern,omitempty"`
	Reason   string        `json:"reason"`
	Current  CurrentState  `json:"current"`
	Incoming IncomingState `json:"incoming"`
	AlertID  string        `json:"alert_id,omitempty"`
}

// Allowed reports whether the gate allowed the write.
func (r *ValidateReply) Allowed() bool { return r.Decision == DecisionAllow }

// GateError is an error reply of the gate: the request was malformed (it
// is never a flag).
type GateError struct {
	Code        string
	Description string
}

func (e *GateError) Error() string { return fmt.Sprintf("gate: %s (%s)", e.Description, e.Code) }

// Validate asks the boundary gate on nc whether ev may be written to target
// ("" = the record system). A flag is a normal reply, not an error: the
// caller decides what to do with it. A malformed request returns a
// *GateError. An event with a string field that is not valid UTF-8 is not
// sent (encoding it would turn the bad bytes into U+FFFD and the gate
// would judge another event): its *ValidationError is returned.
func Validate(ctx context.Context, nc *nats.Conn, ev Event, target string) (*ValidateReply, error) {
	ve := &ValidationError{}
	if ev.validateText(ve); len(ve.Problems) > 0 {
		return nil, ve
	}
	data, err := ev.Marshal()
	if err != nil {
		return nil, fmt.Errorf("events: encode event: %w", err)
	}
	return ValidateRaw(ctx, nc, data, target)
}

// ValidateRaw is Validate for an envelope given as JSON bytes.
func ValidateRaw(ctx context.Context, nc *nats.Conn, event []byte, target string) (*ValidateReply, error) {
	req, err := json.Marshal(ValidateRequest{Event: event, Target: target})
	if err != nil {
		return nil, err
	}
	msg, err := nc.RequestWithContext(ctx, ValidateSubject, req)
	if err != nil {
		return nil, fmt.Errorf("events: ask the gate: %w", err)
	}
	if desc := msg.Header.Get("Nats-Service-Error"); desc != "" {
		return nil, &GateError{Code: msg.Header.Get("Nats-Service-Error-Code"), Description: desc}
	}
	var reply ValidateReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("events: bad gate reply: %w", err)
	}
	return &reply, nil
}
