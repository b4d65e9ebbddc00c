package detector

import (
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
)

// The judgement itself: pure functions of an expectation, the order's rows
// and a clock. They read and write nothing; the Engine does the reads
// (rows, the source event, acknowledgements) and stores what they decide.

// Onset is when drift can start for an event that occurred at occurred and
// reached the log at received (Unix ns): its source time, but never later
// than its arrival. A source clock running ahead (within max_future_skew)
// would otherwise push deadlines out and make time to detect negative.
func Onset(occurred, received int64) int64 { return min(occurred, received) }

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

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sourceSide(x *Expectation, src *projections.Row, entry *projections.Entry) *Side {
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

func (r *Rules) eventFinding(orderID, pattern string, x *projections.Entry, now time.Time) *Mismatch {
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
	m.MappingVersions = r.versions(x.System)
	return m
}

// Holds reports whether an expectation needs no mismatch, judged with the
// order's rows as they are now: the target reflects what was expected; a
// later cancellation superseded a forward expectation; or, after a manual
// edit, the source moved on and the target reflects where it is now.
func (r *Rules) Holds(x *Expectation, src, tgt *projections.Row) bool {
	if Superseded(x, src) {
		return true
	}
	if r.Met(x, tgt) {
		return true
	}
	if x.Manual && x.Dim == DimFulfilment && src.State().Real() && src.State() != x.SourceState {
		// The source moved since the manual edit (the storefront's own
		// cancellation arrived after the ERP's manual one): judge against
		// what the source says now.
		if want := r.expected(x.To, src.State()); want != canonical.None && canonical.ReflectsState(tgt.State(), tgt.HasRecord(), want) {
			return true
		}
	}
	return false
}

// Superseded reports whether a later cancellation of the source (its row
// now) replaced a forward fulfilment expectation.
func Superseded(x *Expectation, src *projections.Row) bool {
	return x.Dim == DimFulfilment && src.State() == canonical.Cancelled && x.SourceState != canonical.Cancelled && !x.Manual
}

// Judgement is the mismatch an expectation that does not hold becomes, at
// time now: its pattern and severity (Classify), both sides, the figures and
// the sentence. srcEntry is the source event when the source's row has
// moved past it (empty: the row's facet is that event); acked says whether
// the target acknowledged it.
func (r *Rules) Judgement(x *Expectation, src, tgt *projections.Row, srcEntry *projections.Entry, acked bool, detectedBy string, now time.Time) *Mismatch {
	pattern, severity := r.Classify(x, src, tgt, acked)
	m := &Mismatch{ExpState: x.State, ExpPayment: x.Payment, FlowFrom: x.From, FlowTo: x.To}
	m.AlertID = AlertID(x.OrderID, pattern, x.From, x.To)
	m.OrderID, m.Pattern, m.Severity, m.DetectedBy = x.OrderID, pattern, severity, detectedBy
	m.Dimension = dimName(x.Dim)
	m.OnsetNanos, m.DeadlineNanos = x.Onset, x.Deadline
	m.Source = sourceSide(x, src, srcEntry)
	m.Target = targetSide(x.Dim, tgt)
	m.Expected = x.State.String()
	if x.Dim == DimPayment {
		m.Expected = x.Payment.String()
	}
	m.ReplaySeqs = replaySeqs(m.Source, m.Target)
	m.Amount, m.Currency = firstNonEmpty(src.Amount, tgt.Amount), firstNonEmpty(src.Currency, tgt.Currency)
	m.MappingVersions = r.versions(x.From, x.To)
	m.Message = r.message(m, x, tgt, now)
	return m
}
