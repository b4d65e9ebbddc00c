package detector

import (
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/projections"
)

// OrderVerdict is what a reconciliation sweep found for one order.
type OrderVerdict struct {
	// Closed: the order reached a closing state that every system with a
	// record of it agrees on (closedOrder).
	Closed   bool
	InFlight int // unmet flow expectations still within their SLA
	// Raised counts the mismatches this call opened: new ones, or ones
	// reopened after a resolution. Finding an open mismatch again is a
	// repeat (it counts in the mismatch's occurrences), not a raise.
	Raised int
}

// ReconcileOrder compares an order's rows along every flow, with event-time
// awareness: an unmet flow whose judgement time has not come is in flight;
// an overdue one is judged exactly as the detector judges it, with
// detected_by reconcile. rows are the order's projections (any order).
// Closed orders are judged too: a closed order whose flow target has no
// record of it (closedOrder looks only at systems with a record) is drift
// the sweep must still find.
//
// With current, rows are known to be the order's rows now (nothing was
// committed since they were read), and judging uses them instead of
// reading them again.
func (e *Engine) ReconcileOrder(b *pebble.Batch, orderID string, rows []projections.Row, now time.Time, current bool) (OrderVerdict, error) {
	var judgeWith []projections.Row // nil: judging reads the rows again
	if current {
		judgeWith = rows
	}
	v, _, err := e.reconcileOrder(b, orderID, rows, now, judgeWith)
	return v, err
}

// CheckOrder is ReconcileOrder without writing: it reports the verdict
// (Raised stays 0), whether ReconcileOrder would raise (overdue: an unmet
// flow past its judgement time) and whether the order has open mismatches
// that ResolveAgreedOrder may resolve. Safe to call concurrently, outside
// the detector's lock; a sweep runs it on every order and takes the lock
// only for those that need it.
func (e *Engine) CheckOrder(orderID string, rows []projections.Row, now time.Time) (v OrderVerdict, overdue, open bool) {
	v, overdue, _ = e.reconcileOrder(nil, orderID, rows, now, nil)
	e.mu.Lock()
	open = e.openOrders[orderID] > 0
	e.mu.Unlock()
	return v, overdue, open
}

// reconcileOrder judges the overdue unmet flows in b, or with b nil only
// reports that there are some (overdue). current, when not nil, are the
// order's rows now, for judging (else it reads them).
func (e *Engine) reconcileOrder(b *pebble.Batch, orderID string, rows []projections.Row, now time.Time, current []projections.Row) (v OrderVerdict, overdue bool, err error) {
	rowOf := func(sys string) *projections.Row {
		for i := range rows {
			if rows[i].System == sys {
				return &rows[i]
			}
		}
		return nil
	}
	v.Closed = closedOrder(rows, e.tables)
	empty := projections.Row{}
	for _, f := range e.cfg.Flows {
		src := rowOf(f.From)
		if src == nil || !src.HasRecord() {
			continue
		}
		tgt := rowOf(f.To)
		if tgt == nil {
			tgt = &empty
		}
		for _, fx := range e.Expect(f, src.State(), src.PaymentState()) {
			facet := &src.Fulfilment
			if fx.Dim == DimPayment {
				facet = &src.Payment
			}
			onset := Onset(facet.Occurred, facet.Received)
			x := &Expectation{OrderID: orderID, From: f.From, To: f.To, Dim: fx.Dim, State: fx.State, Payment: fx.Payment,
				SourceState: facet.State, SourcePayment: facet.Payment, SourceSeq: facet.Seq, SourceEventID: facet.EventID,
				Onset: onset, Deadline: onset + int64(f.SLA.D()), Presence: fx.Presence,
				Manual: facet.Actor == "manual"}
			x.JudgeAt = max(x.Deadline, facet.Received+int64(e.settle))
			if e.Met(x, tgt) {
				continue
			}
			if now.UnixNano() < x.JudgeAt {
				v.InFlight++
				continue
			}
			overdue = true
			if b == nil {
				continue
			}
			opened, err := e.judgeWith(b, x, now, ByReconcile, current)
			if err != nil {
				return v, overdue, err
			}
			if opened {
				v.Raised++
			}
		}
	}
	return v, overdue, nil
}

// closedOrder reports whether an order is closed: it reached a closing
// state and every system with a record of it agrees, so nothing more is
// expected of any system. It is a pure function of the order's rows and the
// systems' mapping tables (by system id).
//
// The closing state c is the furthest one any system with a record shows:
// cancelled if one does, else returned if one does, else delivered if one
// does; with none of them the order is not closed. Each system with a record
// must then show c as far as its platform can express it
// (mapping.Table.ExpressibleState), judged by canonical.ReflectsState:
//
//   - delivered: a platform with a delivered status must show it; one whose
//     furthest status is shipped (NetSuite) must show shipped; a platform
//     with no fulfilment statuses (a payment processor) is not asked. A
//     system at return_requested does not agree: a return is under way.
//   - returned: a platform that can say returned must show returned; one
//     that cannot (a carrier) is not asked.
//   - cancelled: a platform that can say cancelled must show cancelled (a
//     system with no record reflects a cancellation, and systems without a
//     record are not looked at); one that cannot is not asked.
//
// A system with a record but no fulfilment state (only unmapped or payment
// statuses) does not agree when its platform can express c.
func closedOrder(rows []projections.Row, tables map[string]*mapping.Table) bool {
	c := canonical.None
	for i := range rows {
		if !rows[i].HasRecord() {
			continue
		}
		switch rows[i].State() {
		case canonical.Cancelled:
			c = canonical.Cancelled
		case canonical.Returned:
			if c != canonical.Cancelled {
				c = canonical.Returned
			}
		case canonical.Delivered:
			if c == canonical.None {
				c = canonical.Delivered
			}
		}
	}
	if c == canonical.None {
		return false
	}
	for i := range rows {
		r := &rows[i]
		if !r.HasRecord() {
			continue
		}
		want := c
		if t := tables[r.System]; t != nil {
			want = t.ExpressibleState(c)
		}
		if want == canonical.None {
			continue // the platform has no status for c: nothing to show
		}
		b := r.State()
		if b == canonical.ReturnRequested || !canonical.ReflectsState(b, true, want) {
			return false
		}
	}
	return true
}

// TTDOutcome says how a mismatch counts in time to detect.
type TTDOutcome uint8

// Outcomes of TimeToDetect.
const (
	// TTDNoOnset: the mismatch has no onset; it is not counted.
	TTDNoOnset TTDOutcome = iota
	// TTDMeasured: the duration is the time to detect (never negative).
	TTDMeasured
	// TTDSkewed: the onset is after the detection even once bounded by the
	// source's received_at; counted apart as skewed, never averaged.
	TTDSkewed
)

// TimeToDetect is the one rule every figure of time to detect follows (the
// reconciliation report, the dashboard's buckets, the metrics histogram):
// detected_at minus the onset, where the onset is taken no later than the
// source event's received_at (Source.ReceivedAt): a source clock running
// ahead cannot put the drift's start after the moment the log heard of it.
// A mismatch whose onset is still after its detection (no received time to
// bound it, or received after the detection) is TTDSkewed and its duration
// is 0: it is counted apart and never averaged, so no mean or percentile of
// time to detect is negative.
func TimeToDetect(m *Mismatch) (time.Duration, TTDOutcome) {
	if m.OnsetNanos == 0 {
		return 0, TTDNoOnset
	}
	onset := m.OnsetNanos
	if m.Source != nil && m.Source.ReceivedAt != "" {
		if rt, err := time.Parse(time.RFC3339Nano, m.Source.ReceivedAt); err == nil {
			onset = min(onset, rt.UnixNano())
		}
	}
	if onset > m.DetectedNanos {
		return 0, TTDSkewed
	}
	return time.Duration(m.DetectedNanos - onset), TTDMeasured
}

// ResolveAgreedOrder resolves the order's open flow mismatches whose systems
// now agree (the sweep's second half).
func (e *Engine) ResolveAgreedOrder(b *pebble.Batch, orderID string, now time.Time) error {
	return e.resolveAgreed(b, orderID, "", now) // every system: every flow mismatch
}
