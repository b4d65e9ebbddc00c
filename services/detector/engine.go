package detector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/partition"
)

// Engine is the deterministic core of detection. All methods take the
// current time explicitly and write through the given batch; an Engine is
// safe for concurrent use, though the detector drives it from one goroutine.
type Engine struct {
	Rules
	store  *projections.Store
	settle time.Duration

	mu       sync.Mutex
	outboxID uint64
	// dueFloor is a judgement time (Unix ns) below which no expectation is
	// left: every one was judged. JudgeDue starts its scan there instead of
	// walking the tombstones of everything judged before. New expectations
	// are due at received + settle or later, above any past watermark.
	dueFloor int64
	// openOrders counts each order's open mismatches, so the per-event
	// resolution check skips the (many) orders that have none. It follows
	// raise and Resolve as they write to a batch; a batch that does not
	// commit is forgotten by Discard, which recounts it from the store.
	openOrders map[string]int
	// lags caches each system's recent-lag statistic (clock.go); dropped
	// by ReloadOpen so a failed batch's additions are read back from the
	// store.
	lags map[string]*lagRing
	// queued are the alerts queued in the batch being written, handed
	// over once it is committed (Committed) or forgotten (Discard).
	queued []*Mismatch
	// owned is the partitions whose orders this engine judges (nil:
	// every order). The store may hold others', kept from when they were
	// owned here: their expectations wait, unjudged, for their return.
	owned *partition.Set
	// silent, set by Silently while a taken-over partition's past is
	// re-derived, stores what is raised without queueing its alert;
	// mirror puts the whole record in every queued alert (SetMirror).
	// Both are read and written under the detector's lock.
	silent, mirror bool
	// tx, set by OnEntryTx for one call, is the projection batch the
	// entry was applied in: rows are read through it.
	tx *projections.Tx
	// claimSystem, when set (SetSystemClaim), decides whether this engine
	// may open a finding about a system, which other instances of a
	// cluster may see at the same time.
	claimSystem atomic.Pointer[func(alertID string) bool]
}

// SetSystemClaim makes the engine ask claim before it opens a finding
// about a system (Scope "system": unmapped_status, a whole-hour
// clock_skew) that it does not hold open already. Such a finding is seen
// by every instance of a cluster whose orders show it; claim answers true
// for the one instance that is to hold it, and false for the others, which
// then keep no record of it. Safe to call while the engine is in use.
func (e *Engine) SetSystemClaim(claim func(alertID string) bool) { e.claimSystem.Store(&claim) }

// SetMirror makes every queued alert carry its whole stored record
// (OutboxEntry.Record), for the instances of a cluster to hand records
// over. Call it before the engine is used.
func (e *Engine) SetMirror(on bool) { e.mirror = on }

// Silently runs fn with alerts not queued: what fn raises or resolves is
// stored, and published by nobody. A partition taken over re-derives so
// what its previous owner already published. Call it under the
// detector's lock (Detector.UpdateTx).
func (e *Engine) Silently(fn func() error) error {
	e.silent = true
	defer func() { e.silent = false }()
	return fn()
}

// SetOwned makes the engine judge only the orders of owned's partitions.
// Call it before the engine is used.
func (e *Engine) SetOwned(owned *partition.Set) { e.owned = owned }

// Owns reports whether the engine judges orderID.
func (e *Engine) Owns(orderID string) bool { return e.owned.Owns(orderID) }

// ResetDueFloor makes the next JudgeDue scan every stored expectation
// again: the expectations of a partition taken back were passed over
// while it was another's, and are due now.
func (e *Engine) ResetDueFloor() {
	e.mu.Lock()
	e.dueFloor = 0
	e.mu.Unlock()
}

// Committed returns the alerts queued in the batch just committed, and
// forgets them. The shell calls it after every successful commit of a
// batch the engine wrote to (and hands them to the metrics).
func (e *Engine) Committed() []*Mismatch {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queued
	e.queued = nil
	return q
}

// Discard forgets what the engine counted in a batch that was dropped or
// failed to commit: its queued alerts, and its open mismatches per order
// (recounted from the store).
func (e *Engine) Discard() error {
	e.mu.Lock()
	e.queued = nil
	e.mu.Unlock()
	return e.ReloadOpen()
}

// NewEngine builds the engine for a configuration on a store (read once to
// find the outbox's next id).
func NewEngine(cfg *config.Config, store *projections.Store) (*Engine, error) {
	e := &Engine{Rules: *NewRules(cfg), store: store, settle: cfg.Detect.Settle.D()}
	if err := e.ReloadOpen(); err != nil {
		return nil, err
	}
	{
		it, err := store.NewIter(&pebble.IterOptions{LowerBound: prefixOutbox, UpperBound: projections.PrefixEnd(prefixOutbox)})
		if err != nil {
			return nil, err
		}
		if it.Last() {
			e.outboxID = binary.BigEndian.Uint64(it.Key()[len(prefixOutbox):])
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
		if err := e.migrateGateFlags(); err != nil {
			return nil, fmt.Errorf("detector: migrate gate flags: %w", err)
		}
	}
	return e, nil
}

// ReloadOpen recounts the open mismatches per order from the store.
func (e *Engine) ReloadOpen() error {
	counts := map[string]int{}
	err := scanPrefix(e.store, prefixOpen, func(k, _ []byte) error {
		rest := k[len(prefixOpen):]
		for i, c := range rest {
			if c == 0 {
				counts[string(rest[:i])]++
				break
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.openOrders = counts
	e.lags = map[string]*lagRing{}
	e.mu.Unlock()
	return nil
}

func (e *Engine) countOpen(orderID string, delta int) {
	e.mu.Lock()
	e.openOrders[orderID] += delta
	if e.openOrders[orderID] <= 0 {
		delete(e.openOrders, orderID)
	}
	e.mu.Unlock()
}

// OnEntryTx is OnEntry for an entry applied in tx, not yet committed (the
// projector's one pass, a partition's catch-up): the rows it reads are the
// ones tx wrote, else the committed ones. tx must be indexed.
func (e *Engine) OnEntryTx(tx *projections.Tx, orderID string, x projections.Entry, now time.Time) error {
	e.tx = tx
	defer func() { e.tx = nil }()
	return e.OnEntry(tx.B, orderID, x, now)
}

// OnEntry processes one event from the order index, applied by the
// projector: per-event findings, new expectations, early-met expectations
// and resolutions. now is the detection time.
func (e *Engine) OnEntry(b *pebble.Batch, orderID string, x projections.Entry, now time.Time) error {
	sys := x.System
	if x.Kind == string(events.KindAck) {
		return nil
	}
	if x.ClockSkew {
		m := e.eventFinding(orderID, ClockSkew, &x, now)
		m.Message = fmt.Sprintf("%s's event %s for order %s says it happened at %s, %s after driftwatch received it at %s (limit %s): %s's clock or time zone is wrong; the event is ordered by the time driftwatch received it instead.",
			sys, x.EventID, orderID, x.OccurredAt, dur(time.Duration(x.Claimed()-x.Received)), projections.FormatTime(x.Received), dur(e.cfg.Detect.MaxFutureSkew.D()), sys)
		if err := e.raise(b, m, now); err != nil {
			return err
		}
	}
	if x.Kind == string(events.KindStatus) {
		if err := e.observeLag(b, orderID, &x, now); err != nil {
			return err
		}
	}
	if x.Unmapped {
		if err := e.unmapped(b, orderID, &x, now); err != nil {
			return err
		}
	}
	if x.Kind == string(events.KindSnapshot) {
		if err := e.snapshot(b, orderID, &x, now); err != nil {
			return err
		}
	} else if x.SetState && x.State.Real() && x.PrevState.Real() && canonical.FulfilmentTransition(x.PrevState, x.State) == canonical.Undocumented {
		if err := e.illegal(b, orderID, &x, x.PrevState.String(), x.State.String(), now); err != nil {
			return err
		}
	}
	if x.SetPayment && x.Payment.Real() && x.PrevPayment.Real() && canonical.PaymentTransition(x.PrevPayment, x.Payment) == canonical.Undocumented {
		if err := e.illegal(b, orderID, &x, x.PrevPayment.String(), x.Payment.String(), now); err != nil {
			return err
		}
	}
	if x.SetState || x.SetPayment {
		if err := e.expect(b, orderID, &x); err != nil {
			return err
		}
	}
	if x.Current && x.Actor == string(events.ActorManual) {
		if err := e.expectAfterManual(b, orderID, &x); err != nil {
			return err
		}
	}
	return e.resolveAgreed(b, orderID, sys, now)
}

// snapshot raises missing_event when an imported snapshot row shows a state
// the log never received for that system: it differs from the system's
// state before the row was applied (or the log had no record at all).
func (e *Engine) snapshot(b *pebble.Batch, orderID string, x *projections.Entry, now time.Time) error {
	if !x.Current || x.Unmapped || x.Ignored {
		return nil
	}
	var diffs []string
	if x.SetState && x.State.Real() && x.State != x.PrevState {
		if x.PrevState == canonical.None {
			diffs = append(diffs, fmt.Sprintf("the log has no %s state for it", x.System))
		} else {
			diffs = append(diffs, fmt.Sprintf("the log shows %s", x.PrevState))
		}
	}
	if x.SetPayment && x.Payment.Real() && x.Payment != x.PrevPayment {
		if x.PrevPayment == canonical.NoPayment {
			diffs = append(diffs, "no payment state in the log")
		} else {
			diffs = append(diffs, fmt.Sprintf("the log shows payment %s", x.PrevPayment))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	m := e.eventFinding(orderID, MissingEvent, x, now)
	m.DetectedBy = ByReconcile
	m.Expected = x.State.String()
	if x.PrevRaw != "" {
		m.Target = &Side{System: x.System, Status: x.PrevRaw, Canonical: x.PrevState.String()}
		if x.PrevPayment != canonical.NoPayment {
			m.Target.Payment = x.PrevPayment.String()
		}
	}
	var what []string
	if x.State.Real() {
		what = append(what, x.State.String())
	}
	if x.Payment.Real() {
		what = append(what, "payment "+x.Payment.String())
	}
	m.Message = fmt.Sprintf("A snapshot of %s shows order %s as %q (%s) at %s, but %s: an event never reached the log (a webhook not sent, or a manual edit).",
		x.System, orderID, x.Raw, strings.Join(what, ", "), clock(x.OccurredAt), strings.Join(diffs, " and "))
	return e.raise(b, m, now)
}

// expect records, for every flow from the event's system, an expectation
// that the target reflects the new state. It does not look at the target's
// row: the projector may already hold later events than this one, so the
// row is not the target's state "as of" the event; the judgement, at the
// deadline, decides with the rows as they are then.
func (e *Engine) expect(b *pebble.Batch, orderID string, x *projections.Entry) error {
	s, p := canonical.None, canonical.NoPayment
	if x.SetState {
		s = x.State
	}
	if x.SetPayment {
		p = x.Payment
	}
	for _, f := range e.flowsFrom[x.System] {
		if s == canonical.Cancelled && f.Covers(config.DimFulfilment) {
			// A cancellation supersedes the flow's forward expectations.
			old, err := expectationsOf(b, expFlowPrefix(orderID, f.From, f.To, DimFulfilment))
			if err != nil {
				return err
			}
			for i := range old {
				if old[i].SourceState != canonical.Cancelled {
					if err := deleteExpectation(b, &old[i]); err != nil {
						return err
					}
				}
			}
		}
		for _, fx := range e.Expect(f, s, p) {
			ex := e.newExpectation(orderID, f, fx.Dim, x, fx.State, fx.Payment)
			ex.Presence = fx.Presence
			if err := e.putExpectation(b, ex); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Engine) newExpectation(orderID string, f config.Flow, dim uint8, x *projections.Entry, s canonical.State, p canonical.Payment) *Expectation {
	onset := Onset(x.Occurred, x.Received)
	deadline := onset + int64(f.SLA.D())
	return &Expectation{
		OrderID: orderID, From: f.From, To: f.To, Dim: dim, State: s, Payment: p,
		SourceState: x.State, SourcePayment: x.Payment, SourceSeq: x.Seq, SourceEventID: x.EventID,
		Onset: onset, Deadline: deadline, JudgeAt: max(deadline, x.Received+int64(e.settle)),
		Manual: x.Actor == string(events.ActorManual),
	}
}

// expectAfterManual: a person changed the event's system by hand; for every
// flow into it, the system must still reflect the source's state once the
// SLA has passed, or the manual change left the two disagreeing.
func (e *Engine) expectAfterManual(b *pebble.Batch, orderID string, x *projections.Entry) error {
	table := e.tables[x.System]
	for _, f := range e.flowsTo[x.System] {
		src, ok, err := e.row(b, orderID, f.From)
		if err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		// A manual edit is known the moment it arrives: nothing of it is
		// in flight, so it is judged once settled, not a whole SLA after
		// the edit. The source's own state may still be in flight to the
		// target, though: then the judgement waits for the source's
		// deadline (a shipment the ERP is still to hear of is not the
		// edit's fault).
		exp := func(dim uint8, facet *projections.Facet, s canonical.State, p canonical.Payment) error {
			onset := Onset(x.Occurred, x.Received) // the edit: where this drift starts
			deadline := max(Onset(facet.Occurred, facet.Received)+int64(f.SLA.D()), onset)
			ex := &Expectation{OrderID: orderID, From: f.From, To: f.To, Dim: dim, State: s, Payment: p,
				SourceState: facet.State, SourcePayment: facet.Payment, SourceSeq: x.Seq, SourceEventID: facet.EventID,
				Onset: onset, Deadline: deadline, JudgeAt: max(deadline, x.Received+int64(e.settle)), Manual: true}
			return e.putExpectation(b, ex)
		}
		if f.Covers(config.DimFulfilment) && src.State().Real() {
			if want := e.expected(x.System, src.State()); want != canonical.None {
				if err := exp(DimFulfilment, &src.Fulfilment, want, canonical.NoPayment); err != nil {
					return err
				}
			}
		}
		if f.Covers(config.DimPayment) && src.PaymentState().Real() && table.CanExpressPayment(src.PaymentState()) {
			if err := exp(DimPayment, &src.Payment, canonical.None, src.PaymentState()); err != nil {
				return err
			}
		}
	}
	return nil
}

// row reads a system's row of an order (a zero row when it has none).
func (e *Engine) row(b *pebble.Batch, orderID, sys string) (projections.Row, bool, error) {
	var r projections.Row
	var err error
	if e.tx != nil {
		r, err = e.tx.Row(orderID, sys)
	} else {
		r, err = e.store.RowThrough(b, orderID, sys)
	}
	if errors.Is(err, projections.ErrNotFound) {
		return projections.Row{System: sys, OrderID: orderID}, false, nil
	}
	return r, err == nil, err
}

// JudgeDue judges every expectation whose judgement time is at or before
// watermark (at most limit of them), at time now. It returns how many it
// judged; more may be due.
func (e *Engine) JudgeDue(b *pebble.Batch, watermark, now time.Time, limit int) (int, error) {
	n, _, err := e.JudgeDueAfter(b, watermark, now, limit, nil)
	return n, err
}

// JudgeDueAfter is JudgeDue for a caller that judges in rounds: it starts
// after the due-index key cursor (nil: at the floor) and returns the cursor
// for the next round, so no round walks the tombstones of the rounds before
// it. The cursor is valid only once b is committed and only for the same
// watermark.
func (e *Engine) JudgeDueAfter(b *pebble.Batch, watermark, now time.Time, limit int, cursor []byte) (int, []byte, error) {
	return e.JudgeDueFor(b, watermark, now, limit, cursor, e.owned.Owns)
}

// JudgeDueFor is JudgeDueAfter for the orders owns accepts (a partition
// being taken over, before it counts as owned). The floor it keeps is
// the engine's: pass a nil cursor and judge everything due with it.
func (e *Engine) JudgeDueFor(b *pebble.Batch, watermark, now time.Time, limit int, cursor []byte, owns func(orderID string) bool) (int, []byte, error) {
	upper := binary.BigEndian.AppendUint64(append([]byte(nil), prefixDue...), uint64(watermark.UnixNano())+1)
	e.mu.Lock()
	floor := e.dueFloor
	e.mu.Unlock()
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefixDue...), uint64(max(floor, 0)))
	if bytes.Compare(cursor, lower) > 0 {
		lower = cursor
	}
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, nil, err
	}
	var due []Expectation
	var next []byte
	for it.First(); it.Valid() && len(due) < limit; it.Next() {
		x, err := decodeExpectation(it.Value())
		if err != nil {
			it.Close()
			return 0, nil, err
		}
		if !owns(x.OrderID) {
			continue
		}
		due = append(due, x)
		next = append(append(next[:0], it.Key()...), 0) // the smallest key after this one
	}
	if err := it.Close(); err != nil {
		return 0, nil, err
	}
	for i := range due {
		x := &due[i]
		if _, err := e.judge(b, x, now, BySLA); err != nil {
			return 0, nil, err
		}
		if err := deleteExpectation(b, x); err != nil {
			return 0, nil, err
		}
	}
	if len(due) < limit {
		// Everything due by the watermark is judged. Every expectation
		// created from now on is due at its event's received time + settle
		// or later, and events are processed in log order, so at or above
		// the watermark as long as the log's clock is at most settle behind
		// ours (the floor keeps a second of margin when settle is
		// shorter); an expectation stored below it lowers it
		// (putExpectation).
		e.mu.Lock()
		e.dueFloor = max(e.dueFloor, watermark.Add(-max(time.Second-e.settle, 0)).UnixNano())
		e.mu.Unlock()
	}
	return len(due), next, nil
}

// judge decides one due expectation: met, superseded, or a mismatch
// (raised with detectedBy). It reports whether it opened one (new or
// reopened; a repeat of an open mismatch is not).
func (e *Engine) judge(b *pebble.Batch, x *Expectation, now time.Time, detectedBy string) (bool, error) {
	return e.judgeWith(b, x, now, detectedBy, nil)
}

// judgeWith is judge with the order's current rows given (nil: read them).
func (e *Engine) judgeWith(b *pebble.Batch, x *Expectation, now time.Time, detectedBy string, current []projections.Row) (bool, error) {
	row := func(sys string) (projections.Row, error) {
		if current == nil {
			r, _, err := e.row(b, x.OrderID, sys)
			return r, err
		}
		for i := range current {
			if current[i].System == sys {
				return current[i], nil
			}
		}
		return projections.Row{System: sys, OrderID: x.OrderID}, nil
	}
	src, err := row(x.From)
	if err != nil {
		return false, err
	}
	tgt, err := row(x.To)
	if err != nil {
		return false, err
	}
	if e.Holds(x, &src, &tgt) {
		return false, nil
	}
	// The source's event, for the alert's source side. While the source's
	// facet is still that event, the facet holds the same fields (its
	// status, times, canonical states; sourceSide reads it when the entry
	// is empty), and the read is spared.
	var srcEntry projections.Entry
	if f := dimFacet(&src, x.Dim); x.SourceSeq == 0 || f.Seq != x.SourceSeq {
		srcEntry, err = projections.ReadEntry(b, x.OrderID, x.SourceSeq)
		if err != nil && !errors.Is(err, projections.ErrNotFound) {
			return false, err
		}
	}
	// Whether the target acknowledged the source's event: a target that
	// never sent an acknowledgement for the order (its row counts them,
	// written in the same commit as the acknowledgement) did not.
	acked := false
	if tgt.Acks > 0 {
		if _, acked, err = projections.HasAck(b, x.OrderID, x.From, x.SourceEventID, x.To); err != nil {
			return false, err
		}
	}
	return e.open(b, e.Judgement(x, &src, &tgt, &srcEntry, acked, detectedBy, now), now)
}

func (e *Engine) unmapped(b *pebble.Batch, orderID string, x *projections.Entry, now time.Time) error {
	sys := e.systems[x.System]
	if sys == nil {
		return nil
	}
	key := join(prefixUnmap, sys.Platform, x.Field, x.Raw)
	if _, closer, err := b.Get(key); err == nil {
		closer.Close()
		return nil // reported once per (platform, field, value)
	} else if !errors.Is(err, errNotFoundDB) {
		return err
	}
	m := e.eventFinding(orderID, UnmappedStatus, x, now)
	m.AlertID = AlertID(sys.Platform+"\x00"+x.Field+"\x00"+x.Raw, UnmappedStatus, sys.Platform, "")
	m.Scope = ScopeSystem
	table := e.tables[x.System]
	m.Message = fmt.Sprintf("%s sent status %q (field %s) for order %s, which the %s mapping table v%d lacks: the event is kept with canonical state unknown; add the status to the table and rebuild.",
		x.System, x.Raw, x.Field, orderID, sys.Platform, table.Version)
	if err := b.Set(key, []byte(m.AlertID), nil); err != nil {
		return err
	}
	return e.raise(b, m, now)
}

func (e *Engine) illegal(b *pebble.Batch, orderID string, x *projections.Entry, from, to string, now time.Time) error {
	m := e.eventFinding(orderID, IllegalTransition, x, now)
	m.Message = fmt.Sprintf("Order %s moved from %s to %s in %s (%q) at %s: not a documented transition; check who changed it and why.",
		orderID, from, to, x.System, x.Raw, clock(x.OccurredAt))
	m.Expected = from + " -> " + to
	return e.raise(b, m, now)
}
