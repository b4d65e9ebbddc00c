package projections

import (
	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
)

// Facet is one event's contribution to a projection: what the system said,
// when, and where in the log. A Row keeps one Facet per dimension.
type Facet struct {
	Raw         string // raw status as the system sent it
	Field       string // raw status field (resolved: the table's default when the event named none)
	State       canonical.State
	Payment     canonical.Payment
	Unmapped    bool   // the raw status is missing from the platform's table
	OccurredAt  string // occurred_at as sent, with its offset
	Occurred    int64  // occurred_at as Unix nanoseconds (the ordering key)
	Received    int64  // the JetStream message time, Unix nanoseconds
	Seq         uint64 // stream sequence
	EventID     string
	Actor       string
	Kind        string // status or snapshot
	ClockSkew   bool   // occurred_at was later than received + max_future_skew
	MappingVer  int    // version of the platform's table that mapped it
	ExternalRef string
}

// Set reports whether the facet holds an event.
func (f *Facet) Set() bool { return f.Seq != 0 }

// newerThan orders facets by (occurred instant, stream sequence).
func (f *Facet) newerThan(o *Facet) bool {
	if !o.Set() {
		return true
	}
	if f.Occurred != o.Occurred {
		return f.Occurred > o.Occurred
	}
	return f.Seq > o.Seq
}

func (f *Facet) encode(e *enc) {
	e.s(f.Raw)
	e.s(f.Field)
	e.byte1(uint8(f.State))
	e.byte1(uint8(f.Payment))
	e.bool(f.Unmapped)
	e.s(f.OccurredAt)
	e.i(f.Occurred)
	e.i(f.Received)
	e.u(f.Seq)
	e.s(f.EventID)
	e.s(f.Actor)
	e.s(f.Kind)
	e.bool(f.ClockSkew)
	e.u(uint64(f.MappingVer))
	e.s(f.ExternalRef)
}

// facet reads a tagged facet of a version 2 row into *f; r holds the
// facets decoded before it.
func (d *dec) facet(f *Facet, r *Row) {
	switch d.byte1() {
	case facetZero:
	case facetFull:
		f.decode(d)
	case facetSameFulfilment:
		*f = r.Fulfilment
	case facetSamePayment:
		*f = r.Payment
	default:
		d.fail()
	}
}

func (f *Facet) decode(d *dec) {
	f.Raw = d.s()
	f.Field = d.s()
	f.State = canonical.State(d.byte1())
	f.Payment = canonical.Payment(d.byte1())
	f.Unmapped = d.bool()
	f.OccurredAt = d.s()
	f.Occurred = d.i()
	f.Received = d.i()
	f.Seq = d.u()
	f.EventID = d.s()
	f.Actor = d.s()
	f.Kind = d.s()
	f.ClockSkew = d.bool()
	f.MappingVer = int(d.u())
	f.ExternalRef = d.s()
}

// Row is one system's projection of one order.
//
// Fulfilment holds the latest event (by occurred_at, then sequence) that set
// a fulfilment state, Payment the latest that set a payment state, and Last
// the latest status or snapshot event of any meaning (an unmapped or ignored
// status included), which is what the system shows now in its own words.
// An unmapped status never overwrites a canonical state: the state stays
// what the last mapped event said, and the status is marked Unmapped in Last.
type Row struct {
	System     string
	OrderID    string
	Fulfilment Facet
	Payment    Facet
	Last       Facet
	Events     uint64 // events of this system applied to this order (acks included)
	Acks       uint64 // acknowledgements this system sent for the order
	// Amount and Currency are the latest attributes.amount/currency seen.
	Amount   string
	Currency string
}

// HasRecord reports whether the system has sent any status for the order.
func (r *Row) HasRecord() bool { return r.Last.Set() }

// State is the row's current fulfilment state (None when none is known).
func (r *Row) State() canonical.State { return r.Fulfilment.State }

// PaymentState is the row's current payment state.
func (r *Row) PaymentState() canonical.Payment { return r.Payment.Payment }

// Row encodings: version 1 wrote the three facets in full; version 2 (what
// encode writes) tags each facet as zero, written in full, or the same as
// an earlier one, since one event usually sets two or three of them. A
// version 2 row is about half the bytes (a typical row: 141 against 261),
// so less to write, compact, cache and decode. Both versions decode.
const (
	rowVersion1 = 1
	rowVersion  = 2
)

// Facet tags of a version 2 row.
const (
	facetZero           = 0
	facetFull           = 1
	facetSameFulfilment = 2
	facetSamePayment    = 3
)

func (r *Row) encode() []byte {
	e := enc{b: make([]byte, 0, 160)}
	e.byte1(rowVersion)
	e.s(r.System)
	e.s(r.OrderID)
	encodeFacet(&e, &r.Fulfilment, nil, nil)
	encodeFacet(&e, &r.Payment, &r.Fulfilment, nil)
	encodeFacet(&e, &r.Last, &r.Fulfilment, &r.Payment)
	e.u(r.Events)
	e.u(r.Acks)
	e.s(r.Amount)
	e.s(r.Currency)
	return e.b
}

// encodeFacet writes f tagged: zero, the same as the row's fulfilment or
// payment facet (when given, already written), or in full.
func encodeFacet(e *enc, f, fulfilment, payment *Facet) {
	switch {
	case *f == (Facet{}):
		e.byte1(facetZero)
	case fulfilment != nil && *f == *fulfilment:
		e.byte1(facetSameFulfilment)
	case payment != nil && *f == *payment:
		e.byte1(facetSamePayment)
	default:
		e.byte1(facetFull)
		f.encode(e)
	}
}

func decodeRow(b []byte) (Row, error) { return decodeRowFrom(dec{b: b}) }

// decodeRowShared decodes a row whose strings share b's bytes (no copy per
// string): b must never be modified afterwards, as a cached encoding or a
// value copied out of Pebble is not.
func decodeRowShared(b []byte) (Row, error) { return decodeRowFrom(dec{b: b, alias: true}) }

func decodeRowFrom(d dec) (Row, error) {
	var r Row
	err := decodeRowInto(&r, d)
	return r, err
}

// decodeRowInto decodes into *r, which must be the zero Row (decoding in
// place spares copying the large struct).
func decodeRowInto(r *Row, d dec) error {
	switch d.byte1() {
	case rowVersion:
		r.System = d.s()
		r.OrderID = d.s()
		d.facet(&r.Fulfilment, r)
		d.facet(&r.Payment, r)
		d.facet(&r.Last, r)
	case rowVersion1:
		r.System = d.s()
		r.OrderID = d.s()
		r.Fulfilment.decode(&d)
		r.Payment.decode(&d)
		r.Last.decode(&d)
	default:
		return errCorrupt
	}
	r.Events = d.u()
	r.Acks = d.u()
	r.Amount = d.s()
	r.Currency = d.s()
	return d.err
}

// Entry is one event in the order index (the timeline).
type Entry struct {
	Seq         uint64
	System      string
	Kind        string
	EventID     string
	Raw         string
	Field       string
	State       canonical.State
	Payment     canonical.Payment
	Unmapped    bool
	Ignored     bool
	OccurredAt  string
	Occurred    int64
	Received    int64
	Actor       string
	AckOf       string
	ExternalRef string
	// Current is true when the event became the system's current state in
	// some dimension when applied; Late when a newer event (by occurred_at)
	// had already been applied, so it only entered the history.
	Current   bool
	Late      bool
	ClockSkew bool
	Amount    string
	Currency  string
	// PrevState and PrevPayment are the system's canonical states before
	// this event (None/NoPayment when it had none): with State/Payment they
	// give the transition the event made, when it was Current.
	PrevState   canonical.State
	PrevPayment canonical.Payment
	// SetState and SetPayment say the event became the system's current
	// fulfilment or payment state when it was applied.
	SetState   bool
	SetPayment bool
	// PrevRaw is the system's raw status before this event.
	PrevRaw string
	// ZoneAssumed names the zone occurred_at was read in when the event
	// carried no offset (its system's configured timezone); "" otherwise.
	ZoneAssumed string
	// Shadowed is true when the event would have moved the system out of a
	// return or refund that another of its records set (see
	// Row.keepsReturn): it only entered the history.
	Shadowed bool
}

// Claimed is when the event says it happened, as Unix ns: Occurred,
// except for an event beyond max_future_skew, which is ordered by its
// received time (Occurred) while occurred_at keeps the time it claims.
func (x *Entry) Claimed() int64 {
	if x.ClockSkew {
		if t, msg := events.ParseTimestamp(x.OccurredAt); msg == "" {
			return t.UnixNano()
		}
	}
	return x.Occurred
}

// Entry encodings: version 2 adds ZoneAssumed and Shadowed at the end; version 1 entries
// still decode (without it).
const (
	entryVersion1 = 1
	entryVersion  = 2
)

func (x *Entry) encode() []byte {
	e := enc{b: make([]byte, 0, 192)}
	e.byte1(entryVersion)
	e.u(x.Seq)
	e.s(x.System)
	e.s(x.Kind)
	e.s(x.EventID)
	e.s(x.Raw)
	e.s(x.Field)
	e.byte1(uint8(x.State))
	e.byte1(uint8(x.Payment))
	e.bool(x.Unmapped)
	e.bool(x.Ignored)
	e.s(x.OccurredAt)
	e.i(x.Occurred)
	e.i(x.Received)
	e.s(x.Actor)
	e.s(x.AckOf)
	e.s(x.ExternalRef)
	e.bool(x.Current)
	e.bool(x.Late)
	e.bool(x.ClockSkew)
	e.s(x.Amount)
	e.s(x.Currency)
	e.byte1(uint8(x.PrevState))
	e.byte1(uint8(x.PrevPayment))
	e.bool(x.SetState)
	e.bool(x.SetPayment)
	e.s(x.PrevRaw)
	e.s(x.ZoneAssumed)
	e.bool(x.Shadowed)
	return e.b
}

func decodeEntry(b []byte) (Entry, error) {
	d := dec{b: b}
	var x Entry
	v := d.byte1()
	if v != entryVersion && v != entryVersion1 {
		return x, errCorrupt
	}
	x.Seq = d.u()
	x.System = d.s()
	x.Kind = d.s()
	x.EventID = d.s()
	x.Raw = d.s()
	x.Field = d.s()
	x.State = canonical.State(d.byte1())
	x.Payment = canonical.Payment(d.byte1())
	x.Unmapped = d.bool()
	x.Ignored = d.bool()
	x.OccurredAt = d.s()
	x.Occurred = d.i()
	x.Received = d.i()
	x.Actor = d.s()
	x.AckOf = d.s()
	x.ExternalRef = d.s()
	x.Current = d.bool()
	x.Late = d.bool()
	x.ClockSkew = d.bool()
	x.Amount = d.s()
	x.Currency = d.s()
	x.PrevState = canonical.State(d.byte1())
	x.PrevPayment = canonical.Payment(d.byte1())
	x.SetState = d.bool()
	x.SetPayment = d.bool()
	x.PrevRaw = d.s()
	if v >= entryVersion {
		x.ZoneAssumed = d.s()
		x.Shadowed = d.bool()
	}
	return x, d.err
}

// AckLink is system AckSystem acknowledging event EventID of System.
type AckLink struct {
	System     string // the acknowledged event's system
	EventID    string // the acknowledged event
	AckSystem  string // who acknowledged
	AckEventID string
	AckSeq     uint64
	Occurred   int64
	OccurredAt string
	Received   int64
}

const ackVersion = 1

func (a *AckLink) encode() []byte {
	e := enc{b: make([]byte, 0, 96)}
	e.byte1(ackVersion)
	e.s(a.System)
	e.s(a.EventID)
	e.s(a.AckSystem)
	e.s(a.AckEventID)
	e.u(a.AckSeq)
	e.i(a.Occurred)
	e.s(a.OccurredAt)
	e.i(a.Received)
	return e.b
}

func decodeAck(b []byte) (AckLink, error) {
	d := dec{b: b}
	var a AckLink
	if v := d.byte1(); v != ackVersion {
		return a, errCorrupt
	}
	a.System = d.s()
	a.EventID = d.s()
	a.AckSystem = d.s()
	a.AckEventID = d.s()
	a.AckSeq = d.u()
	a.Occurred = d.i()
	a.OccurredAt = d.s()
	a.Received = d.i()
	return a, d.err
}
