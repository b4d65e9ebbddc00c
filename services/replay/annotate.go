// Package replay is for diagnosis: it lays out an order's cross-system
// timeline from the log with the gaps that matter marked in words (an
// acknowledgement that never came within the SLA, a state that arrived
// late), and re-runs detection over a window of the log in a dry run (into
// a scratch store: nothing is published, nothing downstream changes).
package replay

import (
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// Gap is a flow expectation that was not met in time: never (open) or
// only after it was due (late). Pattern and Severity are the detector's
// classification of it (detector.Rules), the same as the mismatch it
// raised or would raise.
type Gap struct {
	System   string `json:"system"` // the system that failed to reflect
	Source   string `json:"source"`
	AfterSeq uint64 `json:"after_seq"` // the source event
	Pattern  string `json:"pattern"`
	Severity string `json:"severity"`
	AlertID  string `json:"alert_id"`
	// Late is true when the target reflected the state after it was due.
	Late    bool   `json:"late"`
	Message string `json:"message"`
}

// Event is a timeline event with notes.
type Event struct {
	TimelineEvent
	Notes []string `json:"notes"`
}

// View is the annotated timeline of one order.
type View struct {
	OrderID string  `json:"order_id"`
	Events  []Event `json:"events"`
	Gaps    []Gap   `json:"gaps"`
}

// Annotate builds the annotated timeline of an order at time now.
func Annotate(cfg *config.Config, orderID string, entries []projections.Entry, acks []projections.AckLink, now time.Time) View {
	tl := BuildTimeline(orderID, entries, acks)
	v := View{OrderID: orderID, Events: make([]Event, len(tl.Events)), Gaps: []Gap{}}
	rules := detector.NewRules(cfg)
	for i, te := range tl.Events {
		ev := Event{TimelineEvent: te, Notes: []string{}}
		e := &entries[i]
		if e.Late {
			ev.Notes = append(ev.Notes, "arrived late: older than the state "+e.System+" already had, so it only entered the history")
		}
		if e.ClockSkew {
			ev.Notes = append(ev.Notes, "clock skew: occurred_at is later than driftwatch received it; ordered by its received time")
		}
		if e.Shadowed {
			ev.Notes = append(ev.Notes, fmt.Sprintf("kept in the history only: %s's return or refund, set by another of its records, stands (%s cannot move it back)", e.System, e.Field))
		}
		if e.ZoneAssumed != "" {
			ev.Notes = append(ev.Notes, fmt.Sprintf("occurred_at had no offset: read in %s (the system's configured timezone), an assumption", e.ZoneAssumed))
		}
		if e.Unmapped {
			ev.Notes = append(ev.Notes, fmt.Sprintf("unmapped: %q is not in %s's mapping table", e.Raw, e.System))
		}
		if lag := time.Duration(e.Received - e.Occurred); lag > 5*time.Minute {
			ev.Notes = append(ev.Notes, fmt.Sprintf("reached driftwatch %s after it happened", lag.Round(time.Second)))
		}
		if e.SetState || e.SetPayment {
			s, p := canonical.None, canonical.NoPayment
			if e.SetState {
				s = e.State
			}
			if e.SetPayment {
				p = e.Payment
			}
			for _, f := range cfg.FlowsFrom(e.System) {
				for _, fx := range rules.Expect(f, s, p) {
					note, gap := follow(rules, cfg.Detect.Settle.D(), f, fx, orderID, entries, i, acks, now)
					if note != "" {
						ev.Notes = append(ev.Notes, note)
					}
					if gap != nil {
						v.Gaps = append(v.Gaps, *gap)
					}
				}
			}
		}
		v.Events[i] = ev
	}
	return v
}

// follow checks whether and when flow f's target met expectation fx of
// entry i, judged as the detector judges it: due at max(deadline, received
// + settle), met when the target's row as of then reflects it, classified
// by the same rules.
func follow(rules *detector.Rules, settle time.Duration, f config.Flow, fx detector.FlowExpectation, orderID string,
	entries []projections.Entry, i int, acks []projections.AckLink, now time.Time) (string, *Gap) {
	e := &entries[i]
	sla := f.SLA.D()
	onset := detector.Onset(e.Occurred, e.Received)
	x := &detector.Expectation{OrderID: orderID, From: f.From, To: f.To, Dim: fx.Dim, State: fx.State, Payment: fx.Payment,
		SourceState: e.State, SourcePayment: e.Payment, SourceSeq: e.Seq, SourceEventID: e.EventID,
		Onset: onset, Deadline: onset + int64(sla), Manual: e.Actor == "manual", Presence: fx.Presence}
	x.JudgeAt = max(x.Deadline, e.Received+int64(settle))
	what := e.State.String()
	if fx.Dim == detector.DimPayment {
		what = "payment " + e.Payment.String()
	}
	rowOf := func(asOf int64, sys string) projections.Row {
		for _, r := range projections.FoldAsOf(orderID, entries, asOf) {
			if r.System == sys {
				return r
			}
		}
		return projections.Row{System: sys, OrderID: orderID}
	}
	// The target's acknowledgement of the event, if it sent one.
	var ack *projections.AckLink
	for i := range acks {
		if a := &acks[i]; a.System == e.System && a.EventID == e.EventID && a.AckSystem == f.To {
			ack = a
		}
	}
	acked := ack != nil
	gap := func(asOf int64, late bool, msg string) *Gap {
		src, tgt := rowOf(asOf, f.From), rowOf(asOf, f.To)
		pattern, severity := rules.Classify(x, &src, &tgt, acked && !late)
		return &Gap{System: f.To, Source: f.From, AfterSeq: e.Seq, Pattern: pattern, Severity: severity,
			AlertID: detector.AlertID(orderID, pattern, f.From, f.To), Late: late, Message: msg}
	}
	// Fold the target's events in log order until it reflects the state.
	for j := range entries {
		t := &entries[j]
		if t.System != f.To || t.Kind == "ack" {
			continue
		}
		if !rules.Met(x, ptr(rowOf(t.Received, f.To))) {
			continue
		}
		if t.Received <= e.Received {
			return fmt.Sprintf("%s already reflected it", f.To), nil
		}
		after := time.Duration(t.Received - e.Received).Round(time.Second)
		if t.Received > x.JudgeAt {
			if src := rowOf(x.JudgeAt, f.From); detector.Superseded(x, &src) {
				return fmt.Sprintf("%s reflected it %s later; a later cancellation superseded it", f.To, after), nil
			}
			msg := fmt.Sprintf("%s %s at %s; %s reflected it only %s later (event %s), past the %s SLA", e.System, what, detector.Clock(e.OccurredAt), f.To, after, t.EventID, sla)
			return fmt.Sprintf("%s reflected it %s later, past the %s SLA", f.To, after, sla), gap(x.JudgeAt, true, msg)
		}
		return fmt.Sprintf("%s reflected it %s later (within the %s SLA)", f.To, after, sla), nil
	}
	if now.UnixNano() < x.JudgeAt {
		return fmt.Sprintf("%s has not reflected it yet; due within the %s SLA", f.To, sla), nil
	}
	if src := rowOf(now.UnixNano(), f.From); detector.Superseded(x, &src) {
		return fmt.Sprintf("%s never reflected it; a later cancellation superseded it", f.To), nil
	}
	never := "never reflected it"
	if fx.Presence {
		never = "never had the order"
	}
	ackNote := ""
	if acked {
		ackNote = fmt.Sprintf(" (it acknowledged the event at %s but never applied it)", detector.Clock(ack.OccurredAt))
	}
	msg := fmt.Sprintf("%s %s at %s; %s %s within the %s SLA%s", e.System, what, detector.Clock(e.OccurredAt), f.To, never, sla, ackNote)
	return msg, gap(now.UnixNano(), false, msg)
}

func ptr[T any](v T) *T { return &v }
