package detector

import (
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
)

// OrderVerdict is what a reconciliation sweep found for one order.
type OrderVerdict struct {
	Open     bool // not terminal-and-agreeing in every system
	InFlight int  // unmet flow expectations still within their SLA
	Raised   int  // mismatches raised (new or repeated)
}

// ReconcileOrder compares an order's rows along every flow, with event-time
// awareness: an unmet flow whose judgement time has not come is in flight;
// an overdue one is judged exactly as the detector judges it, with
// detected_by reconcile. rows are the order's projections (any order).
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
	v.Open = !closedOrder(rows)
	if !v.Open {
		return v, false, nil
	}
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
		table := e.tables[f.To]
		check := func(dim uint8, facet *projections.Facet, want canonical.State, pay canonical.Payment, presence bool) error {
			x := &Expectation{OrderID: orderID, From: f.From, To: f.To, Dim: dim, State: want, Payment: pay,
				SourceState: facet.State, SourcePayment: facet.Payment, SourceSeq: facet.Seq, SourceEventID: facet.EventID,
				Onset: facet.Occurred, Deadline: facet.Occurred + int64(f.SLA.D()), Presence: presence,
				Manual: facet.Actor == "manual"}
			x.JudgeAt = max(x.Deadline, facet.Received+int64(e.settle))
			if met(x, tgt) {
				return nil
			}
			if now.UnixNano() < x.JudgeAt {
				v.InFlight++
				return nil
			}
			overdue = true
			if b == nil {
				return nil
			}
			raised, err := e.judgeWith(b, x, now, ByReconcile, current)
			if raised {
				v.Raised++
			}
			return err
		}
		if f.Covers(config.DimFulfilment) && src.State().Real() {
			if want := table.ExpressibleState(src.State()); want != canonical.None {
				if err := check(DimFulfilment, &src.Fulfilment, want, canonical.NoPayment, false); err != nil {
					return v, overdue, err
				}
			}
		}
		if p := src.PaymentState(); f.Covers(config.DimPayment) && p.Real() {
			switch {
			case table.CanExpressPayment(p):
				if err := check(DimPayment, &src.Payment, canonical.None, p, false); err != nil {
					return v, overdue, err
				}
			case f.To == e.record && e.roleOf(f.From) == "payment" && (p == canonical.Authorized || p == canonical.Paid):
				if err := check(DimPayment, &src.Payment, canonical.None, p, true); err != nil {
					return v, overdue, err
				}
			}
		}
	}
	return v, overdue, nil
}

// closedOrder: every system with a state is in the same terminal state
// (all cancelled, or all returned), so nothing more can drift.
func closedOrder(rows []projections.Row) bool {
	var terminal canonical.State
	seen := 0
	for i := range rows {
		s := rows[i].State()
		if !rows[i].HasRecord() || !s.Real() {
			continue
		}
		if !s.Terminal() || (terminal != canonical.None && s != terminal) {
			return false
		}
		terminal = s
		seen++
	}
	return seen > 0
}

// ResolveAgreedOrder resolves the order's open flow mismatches whose systems
// now agree (the sweep's second half).
func (e *Engine) ResolveAgreedOrder(b *pebble.Batch, orderID string, now time.Time) error {
	return e.resolveAgreed(b, orderID, "", now) // every system: every flow mismatch
}
