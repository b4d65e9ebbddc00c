package detector

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	storedjson "github.com/segmentio/encoding/json"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
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
	// raise and Resolve as they write to a batch; after a failed batch the
	// shell calls ReloadOpen. An order counted too high only costs a scan.
	openOrders map[string]int
	// lags caches each system's recent-lag statistic (clock.go); dropped
	// by ReloadOpen so a failed batch's additions are read back from the
	// store.
	lags map[string]*lagRing
	// observed are the alerts queued in the batch being written, reported
	// to Observe once it is committed (Committed) or forgotten (Discard).
	observed []*Mismatch
	// Observe, when set, is called for every alert the engine queued in a
	// batch once that batch is committed (metrics). It must not block.
	Observe func(a *Mismatch)
}

// Committed reports the alerts queued in the batch just committed to
// Observe. The shell calls it after every successful commit of a batch
// the engine wrote to.
func (e *Engine) Committed() {
	e.mu.Lock()
	obs := e.observed
	e.observed = nil
	e.mu.Unlock()
	if e.Observe != nil {
		for _, m := range obs {
			e.Observe(m)
		}
	}
}

// Discard forgets what the engine counted in a batch that was dropped or
// failed to commit: its queued alerts, and its open mismatches per order
// (recounted from the store).
func (e *Engine) Discard() error {
	e.mu.Lock()
	e.observed = nil
	e.mu.Unlock()
	return e.ReloadOpen()
}

// NewEngine builds the engine for a configuration on a store (read once to
// find the outbox's next id).
func NewEngine(cfg *config.Config, store *projections.Store) (*Engine, error) {
	db := store.DB()
	e := &Engine{Rules: *NewRules(cfg), store: store, settle: cfg.Detect.Settle.D()}
	if err := e.ReloadOpen(); err != nil {
		return nil, err
	}
	if db != nil {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixOutbox, UpperBound: projections.PrefixEnd(prefixOutbox)})
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

// keyGateFlagsMigrated marks a store whose open gate flags carry their
// target and incoming states (GateTarget) and sit in the x/g/ index.
var keyGateFlagsMigrated = []byte("x/v/gate-flags")

// migrateGateFlags gives the open gate flags stored before flags could
// resolve or expire their target and incoming states, once per store: the
// target is the system whose alert id matches (the record system when the
// flag named none), the incoming states are the flag's source side.
func (e *Engine) migrateGateFlags() error {
	db := e.store.DB()
	if _, closer, err := db.Get(keyGateFlagsMigrated); err == nil {
		return closer.Close()
	} else if !errors.Is(err, errNotFoundDB) {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	err := scanPrefix(db, prefixMis, func(k, v []byte) error {
		var m Mismatch
		if err := storedjson.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.DetectedBy != ByValidate || m.State == StateResolved || m.GateTarget != "" || m.FlowTo != "" || m.Source == nil {
			return nil
		}
		for sys := range e.systems {
			if AlertID(m.OrderID, m.Pattern, m.Source.System, sys) == m.AlertID {
				m.GateTarget = sys
			}
		}
		if m.GateTarget == "" {
			return nil // a flag about an unknown target: nothing to resolve against
		}
		m.ExpState, _ = canonical.ParseState(m.Source.Canonical)
		m.ExpPayment, _ = canonical.ParsePayment(m.Source.Payment)
		if err := putMismatch(b, k, &m); err != nil {
			return err
		}
		return b.Set(join(prefixGate, m.AlertID), []byte(m.OrderID), nil)
	})
	if err != nil {
		return err
	}
	if err := b.Set(keyGateFlagsMigrated, []byte{1}, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// ReloadOpen recounts the open mismatches per order from the store.
func (e *Engine) ReloadOpen() error {
	counts := map[string]int{}
	err := scanPrefix(e.store.DB(), prefixOpen, func(k, _ []byte) error {
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

// Key prefixes of the detector (see doc.go).
var (
	prefixExp     = []byte("x/e/")
	prefixDue     = []byte("x/d/")
	prefixMis     = []byte("x/m/")
	prefixOpen    = []byte("x/o/")
	prefixUnmap   = []byte("x/u/")
	prefixOutbox  = []byte("x/q/")
	prefixGate    = []byte("x/g/")
	errNotFoundDB = pebble.ErrNotFound
)

func join(prefix []byte, parts ...string) []byte {
	k := append([]byte(nil), prefix...)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func expKey(x *Expectation) []byte {
	k := join(prefixExp, x.OrderID, x.From, x.To)
	k = append(k, 0, x.Dim, 0)
	return binary.BigEndian.AppendUint64(k, x.SourceSeq)
}

func expFlowPrefix(order, from, to string, dim uint8) []byte {
	k := join(prefixExp, order, from, to)
	return append(k, 0, dim, 0)
}

func dueKey(x *Expectation) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte(nil), prefixDue...), uint64(x.JudgeAt))
	return append(k, expKey(x)[len(prefixExp):]...)
}

// expectationVersion prefixes the binary encoding of an Expectation.
const expectationVersion = 1

// encode writes the expectation in a fixed binary layout (it is written and
// read once per event and flow: no reflection on this path).
func (x *Expectation) encode() []byte {
	b := make([]byte, 0, 96+len(x.OrderID)+len(x.From)+len(x.To)+len(x.SourceEventID))
	b = append(b, expectationVersion)
	for _, s := range []string{x.OrderID, x.From, x.To, x.SourceEventID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, x.Dim, byte(x.State), byte(x.Payment), byte(x.SourceState), byte(x.SourcePayment), boolByte(x.Manual), boolByte(x.Presence))
	b = binary.AppendUvarint(b, x.SourceSeq)
	for _, v := range []int64{x.Onset, x.Deadline, x.JudgeAt} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

var errBadExpectation = errors.New("detector: corrupt expectation")

// decodeExpectation reads what encode wrote.
func decodeExpectation(b []byte) (Expectation, error) {
	var x Expectation
	if len(b) == 0 || b[0] != expectationVersion {
		return x, errBadExpectation
	}
	b = b[1:]
	str := func() string {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			b = nil
			return ""
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	x.OrderID, x.From, x.To, x.SourceEventID = str(), str(), str(), str()
	if len(b) < 7 {
		return x, errBadExpectation
	}
	x.Dim, x.State, x.Payment = b[0], canonical.State(b[1]), canonical.Payment(b[2])
	x.SourceState, x.SourcePayment, x.Manual, x.Presence = canonical.State(b[3]), canonical.Payment(b[4]), b[5] == 1, b[6] == 1
	b = b[7:]
	seq, k := binary.Uvarint(b)
	if k <= 0 {
		return x, errBadExpectation
	}
	x.SourceSeq, b = seq, b[k:]
	for _, dst := range []*int64{&x.Onset, &x.Deadline, &x.JudgeAt} {
		v, k := binary.Varint(b)
		if k <= 0 {
			return x, errBadExpectation
		}
		*dst, b = v, b[k:]
	}
	return x, nil
}

// putExpectation writes an expectation and its due index entry.
// putExpectation stores an expectation and keeps the judgement floor at
// or below its judgement time. The floor is set from driftwatch's clock
// (the watermark) while judgement times come from the log's (received_at
// is the NATS server's timestamp): on a server whose clock runs behind,
// an expectation could land below the floor and never be judged. The
// floor follows what is stored, whatever the clocks say.
func (e *Engine) putExpectation(b *pebble.Batch, x *Expectation) error {
	e.mu.Lock()
	e.dueFloor = min(e.dueFloor, x.JudgeAt)
	e.mu.Unlock()
	return putExpectation(b, x)
}

func putExpectation(b *pebble.Batch, x *Expectation) error {
	v := x.encode()
	if err := b.Set(expKey(x), v, nil); err != nil {
		return err
	}
	return b.Set(dueKey(x), v, nil) // the due index carries the value: no lookup when judging
}

func deleteExpectation(b *pebble.Batch, x *Expectation) error {
	if err := b.Delete(expKey(x), nil); err != nil {
		return err
	}
	return b.Delete(dueKey(x), nil)
}

// scanPrefix calls fn for each key/value under prefix, through r.
func scanPrefix(r iterable, prefix []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: projections.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...)); err != nil {
			return err
		}
	}
	return it.Error()
}

type iterable interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func expectationsOf(b *pebble.Batch, prefix []byte) ([]Expectation, error) {
	var out []Expectation
	err := scanPrefix(b, prefix, func(_, v []byte) error {
		x, err := decodeExpectation(v)
		if err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// OnEntry processes one event from the order index, applied by the
// projector: per-event findings, new expectations, early-met expectations
// and resolutions. now is the detection time.
func (e *Engine) OnEntry(b *pebble.Batch, orderID string, x projections.Entry, now time.Time) error {
	sys := x.System
	if x.Kind == string(events.KindAck) {
		return nil
	}
	claimed := claimedTime(&x)
	if x.ClockSkew {
		m := e.eventFinding(orderID, ClockSkew, &x, now)
		m.Message = fmt.Sprintf("%s's event %s for order %s says it happened at %s, %s after driftwatch received it at %s (limit %s): %s's clock or time zone is wrong; the event is ordered by the time driftwatch received it instead.",
			sys, x.EventID, orderID, x.OccurredAt, dur(time.Duration(claimed.UnixNano()-x.Received)), projections.FormatTime(x.Received), dur(e.cfg.Detect.MaxFutureSkew.D()), sys)
		if err := e.raise(b, m, now); err != nil {
			return err
		}
	}
	if x.Kind == string(events.KindStatus) {
		if err := e.observeLag(b, orderID, &x, claimed, now); err != nil {
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

// Onset is when drift can start for an event that occurred at occurred and
// reached the log at received (Unix ns): its source time, but never later
// than its arrival. A source clock running ahead (within max_future_skew)
// would otherwise push deadlines out and make time to detect negative.
func Onset(occurred, received int64) int64 { return min(occurred, received) }

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
			deadline := Onset(facet.Occurred, facet.Received) + int64(f.SLA.D())
			ex := &Expectation{OrderID: orderID, From: f.From, To: f.To, Dim: dim, State: s, Payment: p,
				SourceState: facet.State, SourcePayment: facet.Payment, SourceSeq: x.Seq, SourceEventID: facet.EventID,
				Onset: Onset(x.Occurred, x.Received), Deadline: deadline, JudgeAt: max(deadline, x.Received+int64(e.settle)), Manual: true}
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

// Met reports whether the target's row meets an expectation.
func (r *Rules) Met(x *Expectation, target *projections.Row) bool {
	if x.Presence {
		return target.HasRecord()
	}
	if x.Dim == DimPayment {
		return r.reflectsPayment(x.To, target, x.Payment)
	}
	return canonical.ReflectsState(target.State(), target.HasRecord(), x.State)
}

// reflectsPayment reports whether the target's payment state reflects p
// (canonical.ReflectsPayment), counting a partial refund as all a record
// can say when the field that set it can never say refunded: an ERP's
// credit memo does not tell whether it covers the whole order.
func (r *Rules) reflectsPayment(to string, target *projections.Row, p canonical.Payment) bool {
	got := target.PaymentState()
	if canonical.ReflectsPayment(got, p) {
		return true
	}
	t := r.tables[to]
	return p == canonical.Refunded && got == canonical.PartiallyRefunded && t != nil &&
		!t.FieldCanExpressPayment(target.Payment.Field, canonical.Refunded)
}

// row reads a system's row of an order (a zero row when it has none).
func (e *Engine) row(b *pebble.Batch, orderID, sys string) (projections.Row, bool, error) {
	r, err := e.store.RowThrough(b, orderID, sys)
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
	if x.Dim == DimFulfilment && src.State() == canonical.Cancelled && x.SourceState != canonical.Cancelled && !x.Manual {
		return false, nil // superseded by a later cancellation
	}
	tgt, err := row(x.To)
	if err != nil {
		return false, err
	}
	if e.Met(x, &tgt) {
		return false, nil
	}
	if x.Manual && x.Dim == DimFulfilment && src.State().Real() && src.State() != x.SourceState {
		// The source moved since the manual edit (the storefront's own
		// cancellation arrived after the ERP's manual one): judge against
		// what the source says now.
		if want := e.expected(x.To, src.State()); want != canonical.None && canonical.ReflectsState(tgt.State(), tgt.HasRecord(), want) {
			return false, nil
		}
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
	pattern, severity := e.Classify(x, &src, &tgt, acked)
	m := &Mismatch{ExpState: x.State, ExpPayment: x.Payment, FlowFrom: x.From, FlowTo: x.To}
	m.AlertID = AlertID(x.OrderID, pattern, x.From, x.To)
	m.OrderID, m.Pattern, m.Severity, m.DetectedBy = x.OrderID, pattern, severity, detectedBy
	m.Dimension = dimName(x.Dim)
	m.OnsetNanos, m.DeadlineNanos = x.Onset, x.Deadline
	m.Source = e.sourceSide(x, &src, &srcEntry)
	m.Target = targetSide(x.Dim, &tgt)
	m.Expected = x.State.String()
	if x.Dim == DimPayment {
		m.Expected = x.Payment.String()
	}
	m.ReplaySeqs = replaySeqs(m.Source, m.Target)
	m.Amount, m.Currency = firstNonEmpty(src.Amount, tgt.Amount), firstNonEmpty(src.Currency, tgt.Currency)
	m.MappingVersions = e.versions(x.From, x.To)
	m.Message = e.message(m, x, &tgt, now)
	return e.open(b, m, now)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (e *Engine) sourceSide(x *Expectation, src *projections.Row, entry *projections.Entry) *Side {
	if entry.Seq == 0 { // the source's facet is the event (or a manual expectation)
		return facetSide(x.From, dimFacet(src, x.Dim))
	}
	sd := &Side{System: x.From, Status: entry.Raw, Field: entry.Field, OccurredAt: entry.OccurredAt,
		ReceivedAt: projections.FormatTime(entry.Received), Seq: entry.Seq, EventID: entry.EventID, Actor: entry.Actor}
	sd.Canonical = canonName(entry.State, entry.Unmapped)
	if entry.Payment != canonical.NoPayment {
		sd.Payment = entry.Payment.String()
	}
	if f := dimFacet(src, x.Dim); x.Manual && f.Set() {
		return facetSide(x.From, f)
	}
	return sd
}

// dimFacet is the row's facet of dimension dim.
func dimFacet(r *projections.Row, dim uint8) *projections.Facet {
	if dim == DimPayment {
		return &r.Payment
	}
	return &r.Fulfilment
}

func canonName(s canonical.State, unmapped bool) string {
	if unmapped {
		return "unknown"
	}
	return s.String()
}

func facetSide(sys string, f *projections.Facet) *Side {
	sd := &Side{System: sys, Status: f.Raw, Field: f.Field, Canonical: canonName(f.State, f.Unmapped), OccurredAt: f.OccurredAt,
		ReceivedAt: projections.FormatTime(f.Received), Seq: f.Seq, EventID: f.EventID, Actor: f.Actor}
	if f.Payment != canonical.NoPayment {
		sd.Payment = f.Payment.String()
	}
	return sd
}

// targetSide is the target's current state in the dimension (its latest
// status when it has none in that dimension); nil when it has no record.
func targetSide(dim uint8, r *projections.Row) *Side {
	if !r.HasRecord() {
		return nil
	}
	f := dimFacet(r, dim)
	if !f.Set() {
		f = &r.Last
	}
	return facetSide(r.System, f)
}

func replaySeqs(sides ...*Side) []uint64 {
	var out []uint64
	for _, s := range sides {
		if s != nil && s.Seq != 0 {
			out = append(out, s.Seq)
		}
	}
	return out
}

func (e *Engine) eventFinding(orderID, pattern string, x *projections.Entry, now time.Time) *Mismatch {
	m := &Mismatch{}
	m.AlertID = AlertID(orderID, pattern, x.System, x.System)
	m.OrderID, m.Pattern, m.Severity, m.DetectedBy = orderID, pattern, DefaultSeverity(pattern), ByIngest
	m.OnsetNanos, m.DeadlineNanos = Onset(x.Occurred, x.Received), x.Received
	m.Source = &Side{System: x.System, Status: x.Raw, Field: x.Field, Canonical: canonName(x.State, x.Unmapped), OccurredAt: x.OccurredAt,
		ReceivedAt: projections.FormatTime(x.Received), Seq: x.Seq, EventID: x.EventID, Actor: x.Actor}
	if x.Payment != canonical.NoPayment {
		m.Source.Payment = x.Payment.String()
	}
	m.ReplaySeqs = []uint64{x.Seq}
	m.Amount, m.Currency = x.Amount, x.Currency
	m.MappingVersions = e.versions(x.System)
	return m
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

// Raise stores a mismatch found outside the flow judgement (by the gate, by
// reconciliation) and queues its alert, unless the same alert id is
// already open.
func (e *Engine) Raise(b *pebble.Batch, m *Mismatch, now time.Time) error { return e.raise(b, m, now) }

// raise stores a mismatch and queues its alert, unless the same alert id is
// already open (then it only counts the repeat).
func (e *Engine) raise(b *pebble.Batch, m *Mismatch, now time.Time) error {
	_, err := e.open(b, m, now)
	return err
}

// open is raise that also reports whether the mismatch was opened (new, or
// reopened after a resolution) rather than counted as a repeat of an open one.
func (e *Engine) open(b *pebble.Batch, m *Mismatch, now time.Time) (bool, error) {
	key := join(prefixMis, m.AlertID)
	old, found, err := getMismatch(b, key)
	if err != nil {
		return false, err
	}
	at := projections.FormatTime(now.UnixNano())
	if found && old.State != StateResolved {
		// A run of sightings by the same detector is one audit entry, at
		// the latest, its note saying when the run began; occurrences
		// counts them. An entry per sighting grew every open mismatch by
		// one entry per reconciliation sweep, and the sweep, which
		// rewrites each one it finds again, slowed down with every run
		// (1.68 -> 1.85 s over three on 1M orders).
		old.Occurrences++
		// The record shows the drift as it is now: what the source and
		// the target show at this sighting (a payment that moved from
		// authorized to succeeded while the order is still missing).
		if m.Source != nil {
			old.Source, old.Target, old.ReplaySeqs = m.Source, m.Target, m.ReplaySeqs
			old.Message, old.Expected = m.Message, m.Expected
			old.ExpState, old.ExpPayment = m.ExpState, m.ExpPayment
			if m.Amount != "" {
				old.Amount, old.Currency = m.Amount, m.Currency
			}
			if SeverityRank(m.Severity) < SeverityRank(old.Severity) {
				// Raised in place: the published subject of this record
				// keeps its first severity until its next state change.
				old.Severity = m.Severity
			}
		}
		if n := len(old.Audit); n > 0 && old.Audit[n-1].Action == "repeated" && old.Audit[n-1].By == m.DetectedBy {
			last := &old.Audit[n-1]
			if last.Note == "" {
				last.Note = "since " + last.At
			}
			last.At = at
		} else if n < 100 {
			old.Audit = append(old.Audit, AuditEntry{At: at, Action: "repeated", By: m.DetectedBy})
		}
		return false, putMismatch(b, key, &old)
	}
	m.State = StateOpen
	m.DetectedAt, m.DetectedNanos = at, now.UnixNano()
	m.OnsetAt, m.Deadline = projections.FormatTime(m.OnsetNanos), projections.FormatTime(m.DeadlineNanos)
	m.Occurrences = 1
	action := "opened"
	if found {
		action = "reopened"
		m.Audit = old.Audit
	}
	m.Audit = append(m.Audit, AuditEntry{At: at, Action: action, By: m.DetectedBy})
	if err := putMismatch(b, key, m); err != nil {
		return false, err
	}
	if err := b.Set(join(prefixOpen, m.OrderID, m.AlertID), nil, nil); err != nil {
		return false, err
	}
	if m.GateTarget != "" {
		if err := b.Set(join(prefixGate, m.AlertID), []byte(m.OrderID), nil); err != nil {
			return false, err
		}
	}
	e.countOpen(m.OrderID, 1)
	return true, e.enqueue(b, m)
}

// Resolve marks an open mismatch resolved (by a person or because the
// systems agree) and queues the resolved record.
func (e *Engine) Resolve(b *pebble.Batch, alertID string, now time.Time, by, note string, update ...func(*Mismatch)) (*Mismatch, error) {
	return e.resolve(b, alertID, now, "resolved", by, note, update...)
}

// resolve is Resolve with the audit action named (resolved, expired).
func (e *Engine) resolve(b *pebble.Batch, alertID string, now time.Time, action, by, note string, update ...func(*Mismatch)) (*Mismatch, error) {
	key := join(prefixMis, alertID)
	m, found, err := getMismatch(b, key)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrMismatchNotFound
	}
	if m.State == StateResolved {
		return &m, ErrAlreadyResolved
	}
	at := projections.FormatTime(now.UnixNano())
	for _, u := range update {
		u(&m)
	}
	m.State = StateResolved
	m.ResolvedAt = &at
	m.ResolvedNanos = now.UnixNano()
	m.Audit = append(m.Audit, AuditEntry{At: at, Action: action, By: by, Note: note})
	if err := putMismatch(b, key, &m); err != nil {
		return nil, err
	}
	if err := b.Delete(join(prefixOpen, m.OrderID, m.AlertID), nil); err != nil {
		return nil, err
	}
	if m.GateTarget != "" {
		if err := b.Delete(join(prefixGate, m.AlertID), nil); err != nil {
			return nil, err
		}
	}
	e.countOpen(m.OrderID, -1)
	return &m, e.enqueue(b, &m)
}

// Escalate marks an open mismatch escalated and queues the record. A
// mismatch that is gone is ErrMismatchNotFound; one no longer open
// (resolved, or escalated already) is ErrNotOpen, and nothing is written.
func (e *Engine) Escalate(b *pebble.Batch, alertID string, now time.Time, note string) (*Mismatch, error) {
	key := join(prefixMis, alertID)
	m, found, err := getMismatch(b, key)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, ErrMismatchNotFound
	case m.State != StateOpen:
		return &m, ErrNotOpen
	}
	at := projections.FormatTime(now.UnixNano())
	m.State = StateEscalated
	m.EscalatedAt = at
	m.Audit = append(m.Audit, AuditEntry{At: at, Action: "escalated", By: "policy", Note: note})
	if err := putMismatch(b, key, &m); err != nil {
		return nil, err
	}
	return &m, e.enqueue(b, &m)
}

// Sentinel errors of the mismatch store.
var (
	ErrMismatchNotFound = errors.New("detector: mismatch not found")
	ErrAlreadyResolved  = errors.New("detector: mismatch already resolved")
	ErrNotOpen          = errors.New("detector: mismatch is not open")
)

// resolveAgreed resolves the order's open flow mismatches that involve sys
// (every flow mismatch when sys is "")
// and whose target now reflects what was expected (or the source's current
// state, when the source moved on).
func (e *Engine) resolveAgreed(b *pebble.Batch, orderID, sys string, now time.Time) error {
	e.mu.Lock()
	n := e.openOrders[orderID]
	e.mu.Unlock()
	if n == 0 {
		return nil
	}
	var ids []string
	if err := scanPrefix(b, join(prefixOpen, orderID, ""), func(k, _ []byte) error {
		ids = append(ids, string(k[len(join(prefixOpen, orderID, "")):]))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		m, found, err := getMismatch(b, join(prefixMis, id))
		if err != nil || !found {
			if err != nil {
				return err
			}
			continue
		}
		if m.GateTarget != "" && m.FlowTo == "" {
			if sys != "" && sys != m.GateTarget {
				continue
			}
			if err := e.resolveGateFlag(b, &m, now); err != nil {
				return err
			}
			continue
		}
		if m.FlowTo == "" || (sys != "" && sys != m.FlowFrom && sys != m.FlowTo) {
			continue // per-event findings do not resolve by agreement
		}
		agree, err := e.agrees(b, &m)
		if err != nil {
			return err
		}
		if agree {
			tgt, _, err := e.row(b, orderID, m.FlowTo)
			if err != nil {
				return err
			}
			dim := DimFulfilment
			if m.Dimension == "payment" {
				dim = DimPayment
			}
			if _, err := e.Resolve(b, id, now, "driftwatch", "the systems agree again", func(r *Mismatch) {
				r.Target = targetSide(dim, &tgt)
				r.ReplaySeqs = replaySeqs(r.Source, r.Target)
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// agrees re-evaluates a flow mismatch against the current rows.
func (e *Engine) agrees(b *pebble.Batch, m *Mismatch) (bool, error) {
	target := m.FlowTo
	tgt, _, err := e.row(b, m.OrderID, target)
	if err != nil {
		return false, err
	}
	src, _, err := e.row(b, m.OrderID, m.FlowFrom)
	if err != nil {
		return false, err
	}
	table := e.tables[target]
	if m.Pattern == PaymentWithoutOrder && !table.CanExpressPayment(m.ExpPayment) {
		return tgt.HasRecord(), nil
	}
	if m.Dimension == "payment" {
		if e.reflectsPayment(target, &tgt, m.ExpPayment) {
			return true, nil
		}
		p := src.PaymentState()
		return p.Real() && p != m.ExpPayment && table.CanExpressPayment(p) && e.reflectsPayment(target, &tgt, p), nil
	}
	if canonical.ReflectsState(tgt.State(), tgt.HasRecord(), m.ExpState) {
		return true, nil
	}
	s := src.State()
	if !s.Real() || s == m.ExpState {
		return false, nil
	}
	want := table.ExpressibleState(s)
	return want != canonical.None && canonical.ReflectsState(tgt.State(), tgt.HasRecord(), want), nil
}

func getMismatch(r projections.Reader, key []byte) (Mismatch, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, errNotFoundDB) {
		return Mismatch{}, false, nil
	}
	if err != nil {
		return Mismatch{}, false, err
	}
	defer closer.Close()
	var m Mismatch
	if err := storedjson.Unmarshal(v, &m); err != nil {
		return Mismatch{}, false, fmt.Errorf("decode mismatch %s: %w", key, err)
	}
	return m, true, nil
}

func putMismatch(b *pebble.Batch, key []byte, m *Mismatch) error {
	v, err := storedjson.Marshal(m)
	if err != nil {
		return err
	}
	return b.Set(key, v, nil)
}

// OutboxEntry is an alert waiting to be published.
type OutboxEntry struct {
	Subject string `json:"subject"`
	MsgID   string `json:"msg_id"`
	Data    []byte `json:"data"`
}

func (e *Engine) enqueue(b *pebble.Batch, m *Mismatch) error {
	data, err := json.Marshal(&m.Alert)
	if err != nil {
		return err
	}
	entry, err := json.Marshal(OutboxEntry{Subject: events.AlertSubject(m.Severity, m.Pattern), MsgID: m.AlertID + ":" + m.State, Data: data})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.outboxID++
	id := e.outboxID
	if e.Observe != nil {
		e.observed = append(e.observed, m)
	}
	e.mu.Unlock()
	return b.Set(binary.BigEndian.AppendUint64(append([]byte(nil), prefixOutbox...), id), entry, nil)
}

// Clock shows the time of day of an RFC 3339 timestamp with its offset, as
// the source wrote it ("10:04:05-04:00").
func Clock(ts string) string { return clock(ts) }

func clock(ts string) string {
	for i := 0; i < len(ts); i++ {
		if ts[i] == 'T' {
			ts = ts[i+1:]
			break
		}
	}
	// Drop fractions of a second: "10:04:05.123456-04:00" -> "10:04:05-04:00".
	if dot := strings.IndexByte(ts, '.'); dot >= 0 {
		end := dot + 1
		for end < len(ts) && ts[end] >= '0' && ts[end] <= '9' {
			end++
		}
		ts = ts[:dot] + ts[end:]
	}
	return ts
}

func dur(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// ResolveNowMapped resolves the open unmapped_status findings whose status
// the current tables map (after a mapping change and a rebuild), and
// forgets them so a status that becomes unmapped again is reported again.
func (e *Engine) ResolveNowMapped(b *pebble.Batch, now time.Time) (int, error) {
	var ids []string
	if err := scanPrefix(b, prefixMis, func(_, v []byte) error {
		var m Mismatch
		if err := storedjson.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.Pattern != UnmappedStatus || m.State == StateResolved || m.Source == nil {
			return nil
		}
		sys, ok := e.systems[m.Source.System]
		if !ok {
			return nil
		}
		table, ok := e.cfg.Mappings.Table(sys.Platform)
		if !ok {
			return nil
		}
		if _, _, mapped := table.Lookup(m.Source.Field, m.Source.Status); mapped {
			ids = append(ids, m.AlertID)
			if err := b.Delete(join(prefixUnmap, sys.Platform, m.Source.Field, m.Source.Status), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := e.Resolve(b, id, now, "driftwatch", "the status is mapped now (mapping tables changed, projections rebuilt)"); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// resolveGateFlag resolves a gate flag once its target shows, after the
// flag, a state that agrees with the write the gate was asked about: the
// incoming fulfilment and payment states (a payment without an order: any
// record of the order). When the target already reflected the incoming
// state as the gate saw it (a backward write: shipped asked to go back to
// confirmed), only that very state agrees: a target moving further on is
// no sign the flagged write happened. A flag whose incoming state is
// unknown (unmapped, unknown system) has nothing to agree with and stays
// open for a person.
func (e *Engine) resolveGateFlag(b *pebble.Batch, m *Mismatch, now time.Time) error {
	if !e.known(m.GateTarget) || (!m.ExpState.Real() && !m.ExpPayment.Real()) {
		return nil
	}
	tgt, _, err := e.row(b, m.OrderID, m.GateTarget)
	if err != nil || !tgt.HasRecord() || tgt.Last.Received <= m.DetectedNanos {
		return err // nothing new from the target since the flag
	}
	if m.Pattern != PaymentWithoutOrder && !gateAgrees(m, &tgt) {
		return nil
	}
	side := targetSide(DimFulfilment, &tgt)
	if m.ExpPayment.Real() && !m.ExpState.Real() {
		side = targetSide(DimPayment, &tgt)
	}
	note := fmt.Sprintf("%s now shows %q (%s), which agrees with the flagged write", m.GateTarget, side.Status, side.Canonical)
	_, err = e.Resolve(b, m.AlertID, now, "driftwatch", note, func(r *Mismatch) {
		r.Target = side
		r.ReplaySeqs = replaySeqs(r.Target)
	})
	return err
}

// gateAgrees reports whether the target's row agrees with a gate flag's
// incoming states (see resolveGateFlag); m.Target is the target as the
// gate saw it.
func gateAgrees(m *Mismatch, tgt *projections.Row) bool {
	if m.ExpState.Real() {
		before := canonical.None
		if m.Target != nil {
			before, _ = canonical.ParseState(m.Target.Canonical)
		}
		if canonical.ReflectsState(before, m.Target != nil, m.ExpState) {
			if tgt.State() != m.ExpState {
				return false
			}
		} else if !canonical.ReflectsState(tgt.State(), true, m.ExpState) {
			return false
		}
	}
	if m.ExpPayment.Real() {
		before := canonical.NoPayment
		if m.Target != nil {
			before, _ = canonical.ParsePayment(m.Target.Payment)
		}
		if canonical.ReflectsPayment(before, m.ExpPayment) {
			return tgt.PaymentState() == m.ExpPayment
		}
		return canonical.ReflectsPayment(tgt.PaymentState(), m.ExpPayment)
	}
	return true
}

// ExpireGateFlags expires the open gate flags older than expiry whose order
// no system has ever shown in the log: nothing could ever resolve them.
// Each is resolved with an "expired" audit entry that says why. Flags on
// orders the log does know stay open (they resolve by agreement, or a
// person resolves them). It returns how many expired.
func (e *Engine) ExpireGateFlags(b *pebble.Batch, now time.Time, expiry time.Duration) (int, error) {
	type flag struct{ id, order string }
	var flags []flag
	if err := scanPrefix(b, prefixGate, func(k, v []byte) error {
		flags = append(flags, flag{string(k[len(prefixGate):]), string(v)})
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, f := range flags {
		m, found, err := getMismatch(b, join(prefixMis, f.id))
		if err != nil {
			return n, err
		}
		if !found || m.State == StateResolved {
			if err := b.Delete(join(prefixGate, f.id), nil); err != nil {
				return n, err
			}
			continue
		}
		if now.UnixNano()-m.DetectedNanos < int64(expiry) {
			continue
		}
		rows, err := e.store.Rows(f.order)
		if err != nil {
			return n, err
		}
		if len(rows) > 0 {
			// The log knows the order now: the flag is real drift or
			// resolves by agreement; it no longer waits to expire.
			if err := b.Delete(join(prefixGate, f.id), nil); err != nil {
				return n, err
			}
			continue
		}
		note := fmt.Sprintf("no system has shown order %s in the log within %s of the flag", f.order, dur(expiry))
		if _, err := e.resolve(b, f.id, now, "expired", "driftwatch", note); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
