// Package gate is the boundary gate (CONTRACT.md section 7): before the
// middleware writes a status to a target system (the ERP by default), it
// asks whether the change from the target's current canonical state to the
// incoming one is a documented transition or no change. The gate answers
// allow or flag with a reason; a flag is recorded as a mismatch
// (detected_by validate) and published like any other alert. It never drops
// and never forces: the caller decides.
//
// It serves NATS request-reply on driftwatch.validate as a nats micro
// service ("driftwatch", endpoint "validate": `nats micro info driftwatch`
// shows it) and POST /v1/validate. Decide is the pure decision; reads come
// from the Pebble projections (one Get per request), and flags are recorded
// asynchronously so a burst of flags never slows the answers.
package gate

import (
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// Verdict is a decision and, for a flag, the mismatch to record.
type Verdict struct {
	Reply    events.ValidateReply
	Mismatch *detector.Mismatch
}

// Decider holds what a decision needs besides the target's row.
type Decider struct {
	cfg    *config.Config
	tables map[string]*mapping.Table
}

// NewDecider builds the decider for a configuration.
func NewDecider(cfg *config.Config) *Decider {
	d := &Decider{cfg: cfg, tables: map[string]*mapping.Table{}}
	for _, s := range cfg.Systems {
		d.tables[s.ID], _ = cfg.Mappings.Table(s.Platform)
	}
	return d
}

// initialPayments are the payment states an order may start in.
var initialPayments = map[canonical.Payment]bool{canonical.Unpaid: true, canonical.Authorized: true, canonical.Paid: true, canonical.Failed: true}

// Decide judges an incoming event against the target's current row (row
// is nil when the target has no record of the order). now stamps the
// mismatch of a flag.
func (d *Decider) Decide(ev *events.Event, target string, row *projections.Row, now time.Time) Verdict {
	var v Verdict
	r := &v.Reply
	r.Current.System = target
	if row != nil && row.HasRecord() {
		r.Current.HasRecord = true
		r.Current.Status = row.Last.Raw
		r.Current.OccurredAt = row.Last.OccurredAt
		if s := row.State(); s != canonical.None {
			r.Current.Canonical = s.String()
		}
		if p := row.PaymentState(); p != canonical.NoPayment {
			r.Current.Payment = p.String()
		}
	}
	flag := func(pattern, severity, reason string) Verdict {
		r.Decision, r.Pattern, r.Severity, r.Reason = events.DecisionFlag, pattern, severity, reason
		r.AlertID = detector.AlertID(ev.OrderID, pattern, ev.System, target)
		v.Mismatch = d.mismatch(ev, target, row, r, now)
		return v
	}
	if _, ok := d.cfg.System(target); !ok {
		return flag(detector.UnmappedStatus, detector.Low, fmt.Sprintf("target %q is not a configured system: nothing to compare against", target))
	}
	table, ok := d.tables[ev.System]
	if !ok {
		return flag(detector.UnmappedStatus, detector.Low, fmt.Sprintf("%q is not a configured system: its statuses have no mapping", ev.System))
	}
	if ev.EffectiveKind() == events.KindAck {
		r.Decision, r.Reason = events.DecisionAllow, "an acknowledgement changes no state"
		return v
	}
	res, field, mapped := table.Lookup(ev.StatusField, ev.Status)
	if !mapped {
		r.Incoming.Canonical = "unknown"
		return flag(detector.UnmappedStatus, detector.Low, fmt.Sprintf("%s status %q (field %s) is missing from the %s mapping table v%d: its meaning is unknown", ev.System, ev.Status, field, table.Platform, table.Version))
	}
	if res.State != canonical.None {
		r.Incoming.Canonical = res.State.String()
	}
	if res.Payment != canonical.NoPayment {
		r.Incoming.Payment = res.Payment.String()
	}
	if res.Ignore {
		r.Decision, r.Reason = events.DecisionAllow, fmt.Sprintf("%q says nothing about the order's state (ignored by the %s table)", ev.Status, table.Platform)
		return v
	}
	var cur canonical.State
	var curPay canonical.Payment
	if row != nil {
		cur, curPay = row.State(), row.PaymentState()
	}
	var reasons []string
	if s := res.State; s != canonical.None {
		if !cur.Real() {
			switch s {
			case canonical.Pending, canonical.Confirmed, canonical.Cancelled:
				reasons = append(reasons, fmt.Sprintf("%s has no fulfilment state yet; %s is a valid start", target, s))
			default:
				return flag(detector.IllegalTransition, detector.High, fmt.Sprintf("%s has never seen order %s, but %s says %s (%q): an order cannot start at %s", target, ev.OrderID, ev.System, s, ev.Status, s))
			}
		} else {
			switch canonical.FulfilmentTransition(cur, s) {
			case canonical.Undocumented:
				why := "not a documented transition"
				if cur.Terminal() {
					why = cur.String() + " is final"
				} else if cr, ok := cur.Rank(); ok {
					if sr, ok := s.Rank(); ok && sr < cr {
						why = "a regression"
					}
				}
				return flag(detector.IllegalTransition, detector.High, fmt.Sprintf("%s shows %q (%s) since %s; %s says %s (%q): %s -> %s is %s", target, r.Current.Status, cur, r.Current.OccurredAt, ev.System, s, ev.Status, cur, s, why))
			case canonical.NoChange:
				reasons = append(reasons, fmt.Sprintf("%s is already %s", target, s))
			default:
				reasons = append(reasons, fmt.Sprintf("%s -> %s is documented", cur, s))
			}
		}
	}
	if p := res.Payment; p != canonical.NoPayment {
		switch {
		case !curPay.Real() && (row == nil || !row.HasRecord()) && (p == canonical.Authorized || p == canonical.Paid) && res.State == canonical.None:
			return flag(detector.PaymentWithoutOrder, detector.Critical, fmt.Sprintf("%s says %s (%q) for order %s, which %s has never seen: a payment without an order", ev.System, p, ev.Status, ev.OrderID, target))
		case !curPay.Real():
			if !initialPayments[p] {
				return flag(detector.IllegalTransition, detector.High, fmt.Sprintf("%s has no payment state for order %s; %s says %s (%q), which cannot come first", target, ev.OrderID, ev.System, p, ev.Status))
			}
			reasons = append(reasons, fmt.Sprintf("payment starts at %s", p))
		default:
			switch canonical.PaymentTransition(curPay, p) {
			case canonical.Undocumented:
				return flag(detector.IllegalTransition, detector.High, fmt.Sprintf("%s's payment is %s; %s says %s (%q): %s -> %s is not a documented payment transition", target, curPay, ev.System, p, ev.Status, curPay, p))
			case canonical.NoChange:
				reasons = append(reasons, fmt.Sprintf("payment already %s", p))
			default:
				reasons = append(reasons, fmt.Sprintf("payment %s -> %s is documented", curPay, p))
			}
		}
	}
	r.Decision = events.DecisionAllow
	r.Reason = joinReasons(reasons)
	return v
}

func joinReasons(rs []string) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += "; "
		}
		out += r
	}
	return out
}

// mismatch builds the record of a flag.
func (d *Decider) mismatch(ev *events.Event, target string, row *projections.Row, r *events.ValidateReply, now time.Time) *detector.Mismatch {
	m := &detector.Mismatch{}
	m.AlertID, m.OrderID, m.Pattern, m.Severity, m.DetectedBy = r.AlertID, ev.OrderID, r.Pattern, r.Severity, detector.ByValidate
	// The flag resolves when the target comes to show the incoming state.
	m.GateTarget = target
	m.ExpState, _ = canonical.ParseState(r.Incoming.Canonical)
	m.ExpPayment, _ = canonical.ParsePayment(r.Incoming.Payment)
	m.Source = &detector.Side{System: ev.System, Status: ev.Status, Field: ev.StatusField, Canonical: r.Incoming.Canonical,
		Payment: r.Incoming.Payment, OccurredAt: ev.OccurredAt, EventID: ev.EventID, Actor: string(ev.EffectiveActor())}
	if row != nil && row.HasRecord() {
		f := &row.Last
		m.Target = &detector.Side{System: target, Status: f.Raw, Field: f.Field, Canonical: r.Current.Canonical, Payment: r.Current.Payment,
			OccurredAt: f.OccurredAt, ReceivedAt: projections.FormatTime(f.Received), Seq: f.Seq, EventID: f.EventID, Actor: f.Actor}
		m.ReplaySeqs = []uint64{f.Seq}
		m.Amount, m.Currency = row.Amount, row.Currency
	}
	if !ev.Occurred.IsZero() {
		m.OnsetNanos = ev.Occurred.UnixNano()
	}
	m.DeadlineNanos = now.UnixNano()
	m.Expected = r.Current.Canonical
	m.MappingVersions = map[string]int{}
	for _, sys := range []string{ev.System, target} {
		if s, ok := d.cfg.System(sys); ok {
			if t := d.tables[sys]; t != nil {
				m.MappingVersions[s.Platform] = t.Version
			}
		}
	}
	m.Message = fmt.Sprintf("The gate flagged a write of order %s to %s: %s.", ev.OrderID, target, r.Reason)
	return m
}
