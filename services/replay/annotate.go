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
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// Gap is a flow expectation that was not met in time.
type Gap struct {
	System   string `json:"system"` // the system that failed to reflect
	Source   string `json:"source"`
	AfterSeq uint64 `json:"after_seq"` // the source event
	Severity string `json:"severity"`  // high when never reflected, medium when late
	Message  string `json:"message"`
}

// Event is a timeline event with notes.
type Event struct {
	api.TimelineEvent
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
	tl := api.BuildTimeline(orderID, entries, acks)
	v := View{OrderID: orderID, Events: make([]Event, len(tl.Events)), Gaps: []Gap{}}
	tables := map[string]*mapping.Table{}
	for _, s := range cfg.Systems {
		tables[s.ID], _ = cfg.Mappings.Table(s.Platform)
	}
	for i, te := range tl.Events {
		ev := Event{TimelineEvent: te, Notes: []string{}}
		e := &entries[i]
		if e.Late {
			ev.Notes = append(ev.Notes, "arrived late: older than the state "+e.System+" already had, so it only entered the history")
		}
		if e.ClockSkew {
			ev.Notes = append(ev.Notes, "clock skew: occurred_at is later than driftwatch received it")
		}
		if e.Unmapped {
			ev.Notes = append(ev.Notes, fmt.Sprintf("unmapped: %q is not in %s's mapping table", e.Raw, e.System))
		}
		if lag := time.Duration(e.Received - e.Occurred); lag > 5*time.Minute {
			ev.Notes = append(ev.Notes, fmt.Sprintf("reached driftwatch %s after it happened", lag.Round(time.Second)))
		}
		if e.SetState || e.SetPayment {
			for _, f := range cfg.FlowsFrom(e.System) {
				note, gap := follow(f, tables[f.To], entries, i, acks, now)
				if note != "" {
					ev.Notes = append(ev.Notes, note)
				}
				if gap != nil {
					v.Gaps = append(v.Gaps, *gap)
				}
			}
		}
		v.Events[i] = ev
	}
	return v
}

// follow checks whether and when flow f's target reflected entry i's state.
func follow(f config.Flow, target *mapping.Table, entries []projections.Entry, i int, acks []projections.AckLink, now time.Time) (string, *Gap) {
	e := &entries[i]
	var want canonical.State
	var pay canonical.Payment
	what := ""
	if e.SetState && e.State.Real() && f.Covers(config.DimFulfilment) {
		want = target.ExpressibleState(e.State)
		what = e.State.String()
	}
	if want == canonical.None && e.SetPayment && e.Payment.Real() && f.Covers(config.DimPayment) && target.CanExpressPayment(e.Payment) {
		pay = e.Payment
		what = "payment " + e.Payment.String()
	}
	if want == canonical.None && pay == canonical.NoPayment {
		return "", nil
	}
	sla := f.SLA.D()
	deadline := e.Occurred + int64(sla)
	// Fold the target's events in log order until it reflects the state.
	for j := range entries {
		t := &entries[j]
		if t.System != f.To || t.Kind == "ack" {
			continue
		}
		rows := projections.FoldAsOf("", entries[:j+1], t.Received)
		var row *projections.Row
		for k := range rows {
			if rows[k].System == f.To {
				row = &rows[k]
			}
		}
		if row == nil {
			continue
		}
		ok := false
		if want != canonical.None {
			ok = canonical.ReflectsState(row.State(), row.HasRecord(), want)
		} else {
			ok = canonical.ReflectsPayment(row.PaymentState(), pay)
		}
		if !ok {
			continue
		}
		if t.Occurred <= e.Occurred {
			return fmt.Sprintf("%s already reflected it", f.To), nil
		}
		after := time.Duration(t.Occurred - e.Occurred)
		if t.Occurred > deadline {
			return fmt.Sprintf("%s reflected it %s later, past the %s SLA", f.To, after.Round(time.Second), sla),
				&Gap{System: f.To, Source: e.System, AfterSeq: e.Seq, Severity: "medium",
					Message: fmt.Sprintf("%s %s at %s; %s reflected it only %s later (event %s), past the %s SLA", e.System, what, detector.Clock(e.OccurredAt), f.To, after.Round(time.Second), t.EventID, sla)}
		}
		return fmt.Sprintf("%s reflected it %s later (within the %s SLA)", f.To, after.Round(time.Second), sla), nil
	}
	acked := ""
	for _, a := range acks {
		if a.System == e.System && a.EventID == e.EventID && a.AckSystem == f.To {
			acked = fmt.Sprintf(" (it acknowledged the event at %s but never applied it)", detector.Clock(a.OccurredAt))
		}
	}
	if now.UnixNano() < deadline {
		return fmt.Sprintf("%s has not reflected it yet; due within the %s SLA", f.To, sla), nil
	}
	msg := fmt.Sprintf("%s %s at %s; %s never acknowledged within the %s SLA%s", e.System, what, detector.Clock(e.OccurredAt), f.To, sla, acked)
	return msg, &Gap{System: f.To, Source: e.System, AfterSeq: e.Seq, Severity: "high", Message: msg}
}
