package projections

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/events/mapping"
)

// Delivery is one message read from the events stream.
type Delivery struct {
	Subject  string
	Data     []byte
	Seq      uint64    // stream sequence
	Received time.Time // JetStream message time: the processing timestamp
	// Owns, when set, says whether this store keeps the event's partition
	// of Partitions (owned, package services/partition): the order's, or
	// the one its subject names when Routed; another's event is NotOwned
	// and changes nothing.
	Owns       func(partition int) bool
	Partitions int
	// Routed says the stored subject names the event's partition, Route
	// (the events stream routes by partition from a sequence on): the
	// event is Route's owner's, and an order_id of another partition is
	// rejected, since its subject named another order.
	Routed bool
	Route  int
}

// Result says what Apply did with a delivery.
type Result uint8

// Results.
const (
	// Applied: a status or snapshot event that became the system's current
	// state in at least one dimension (or its first record of the order).
	Applied Result = iota + 1
	// Late: an event older (by occurred_at) than the system's current state;
	// it entered the order's history only.
	Late
	// Acked: an ack event, linked to the event it acknowledges.
	Acked
	// Duplicate: the ledger already holds (system, event_id); nothing changed.
	Duplicate
	// Rejected: invalid input; the caller dead-letters it. Nothing changed.
	Rejected
	// NotOwned: the order (valid or not) is in a partition another
	// instance owns; it applies and dead-letters it. Nothing changed.
	NotOwned
)

func (r Result) String() string {
	return [...]string{"", "applied", "late", "acked", "duplicate", "rejected", "not_owned"}[r]
}

// Outcome is the result of applying one delivery, with what the detector
// needs to know about it.
type Outcome struct {
	Result Result
	Err    error // the validation error of a Rejected delivery
	Event  events.Event
	// Before and After are the system's row before and after the event.
	Before, After Row
	// Entry is what was written to the order index.
	Entry Entry
}

// Applier turns deliveries into store writes. It holds the mapping table of
// every configured system and is safe for concurrent use.
type Applier struct {
	tables        map[string]*mapping.Table
	maxFutureSkew time.Duration
	zones         events.ZoneOf
}

// NewApplier returns an Applier. tables maps each configured system id to its
// platform's mapping table; events of other systems are rejected. zones
// (may be nil) gives the systems' configured time zones, in which an
// occurred_at without an offset is read (events.CheckZoned).
func NewApplier(tables map[string]*mapping.Table, maxFutureSkew time.Duration, zones events.ZoneOf) *Applier {
	return &Applier{tables: tables, maxFutureSkew: maxFutureSkew, zones: zones}
}

// Known reports whether a system is configured.
func (a *Applier) Known(system string) bool { _, ok := a.tables[system]; return ok }

// Apply applies one delivery to tx. A returned error is a storage failure:
// the Tx must be discarded.
func (a *Applier) Apply(tx *Tx, d Delivery) (Outcome, error) {
	b := tx.B
	ev, err := events.CheckDeliveredZoned(d.Subject, d.Data, a.Known, a.zones)
	if d.Routed {
		if part := events.Partition(ev.OrderID, d.Partitions); part != d.Route && ev.OrderID != "" {
			err = withProblem(err, events.Problem{Field: "order_id", Code: events.CodeSubjectMismatch,
				Message: fmt.Sprintf("%q is in partition %d of %d, but its subject %s names partition %d: it was published with another order's id in the subject", ev.OrderID, part, d.Partitions, d.Subject, d.Route)})
		}
	}
	if d.Owns != nil {
		part := d.Route
		if !d.Routed {
			part = events.Partition(ev.OrderID, d.Partitions)
		}
		if !d.Owns(part) {
			// Decided on the subject, or the order id as read, valid
			// or not: every instance reads the same bytes the same
			// way, so exactly one owns it.
			return Outcome{Result: NotOwned, Event: ev, Entry: Entry{Seq: d.Seq}}, nil
		}
	}
	if err != nil {
		return Outcome{Result: Rejected, Err: err, Event: ev}, nil
	}
	out := Outcome{Event: ev}
	seen := seenKey(ev.System, ev.EventID)
	if dup, err := tx.seenBefore(seen); err != nil {
		return out, err
	} else if dup {
		out.Result = Duplicate
		return out, nil
	}
	if err := tx.markSeen(seen, d.Seq); err != nil {
		return out, err
	}

	row, err := tx.Row(ev.OrderID, ev.System)
	if errors.Is(err, ErrNotFound) {
		row = Row{System: ev.System, OrderID: ev.OrderID}
	} else if err != nil {
		return out, fmt.Errorf("read row %s/%s: %w", ev.OrderID, ev.System, err)
	}
	out.Before = row

	recv := d.Received.UnixNano()
	entry := Entry{
		Seq: d.Seq, System: ev.System, Kind: string(ev.EffectiveKind()), EventID: ev.EventID,
		Raw: ev.Status, OccurredAt: ev.OccurredAt, Occurred: ev.Occurred.UnixNano(), Received: recv,
		Actor: string(ev.EffectiveActor()), AckOf: ev.AckOf, ExternalRef: ev.ExternalRef,
		ClockSkew: ev.Occurred.After(d.Received.Add(a.maxFutureSkew)), ZoneAssumed: ev.ZoneAssumed,
	}
	if entry.ClockSkew {
		// A time beyond received + max_future_skew cannot be true: the
		// event is ordered by when the log received it, so a clock ahead
		// cannot pin the order's state against real later events.
		// OccurredAt keeps the claimed time for people.
		entry.Occurred = recv
	}
	entry.Amount, entry.Currency = amountOf(ev.Attributes)
	row.Events++

	switch ev.EffectiveKind() {
	case events.KindAck:
		out.Result = Acked
		row.Acks++
		sys, id, _ := ev.AckTarget()
		link := AckLink{System: sys, EventID: id, AckSystem: ev.System, AckEventID: ev.EventID, AckSeq: d.Seq,
			Occurred: entry.Occurred, OccurredAt: ev.OccurredAt, Received: recv}
		if err := b.Set(ackKey(ev.OrderID, sys, id, ev.System), link.encode(), nil); err != nil {
			return out, err
		}
	default:
		table := a.tables[ev.System]
		res, field, mapped := table.Lookup(ev.StatusField, ev.Status)
		entry.Field = field
		entry.Unmapped = !mapped
		entry.Ignored = res.Ignore
		entry.State, entry.Payment = res.State, res.Payment
		if !mapped {
			entry.State = canonical.Unknown
		}
		f := Facet{
			Raw: ev.Status, Field: field, State: res.State, Payment: res.Payment, Unmapped: !mapped,
			OccurredAt: ev.OccurredAt, Occurred: entry.Occurred, Received: recv, Seq: d.Seq,
			EventID: ev.EventID, Actor: entry.Actor, Kind: entry.Kind, ClockSkew: entry.ClockSkew,
			MappingVer: table.Version, ExternalRef: ev.ExternalRef,
		}
		if mapped && res.State != canonical.None && f.newerThan(&row.Fulfilment) {
			if row.keepsReturn(field, res.State) {
				entry.Shadowed = true
			} else {
				row.Fulfilment = f
				entry.Current, entry.SetState = true, true
			}
		}
		if mapped && res.Payment != canonical.NoPayment && f.newerThan(&row.Payment) {
			if row.keepsRefund(field, res.Payment) {
				entry.Shadowed = true
			} else {
				row.Payment = f
				entry.Current, entry.SetPayment = true, true
			}
		}
		// Last is what the system shows now in its own words, unless the
		// event was shadowed in every dimension it speaks of.
		if f.newerThan(&row.Last) && !(entry.Shadowed && !entry.SetState && !entry.SetPayment) {
			row.Last = f
			entry.Current = true
			if entry.Amount != "" {
				row.Amount, row.Currency = entry.Amount, entry.Currency
			}
		}
		entry.Late = !entry.Current && !entry.Shadowed
		entry.PrevState, entry.PrevPayment, entry.PrevRaw = out.Before.Fulfilment.State, out.Before.Payment.Payment, out.Before.Last.Raw
		if entry.Current {
			out.Result = Applied
		} else {
			out.Result = Late
		}
	}
	if err := tx.putRow(&row); err != nil {
		return out, err
	}
	if err := b.Set(entryKey(ev.OrderID, d.Seq), entry.encode(), nil); err != nil {
		return out, err
	}
	if err := b.Set(seqKey(d.Seq), []byte(ev.OrderID), nil); err != nil {
		return out, err
	}
	out.After = row
	out.Entry = entry
	return out, nil
}

// keepsReturn and keepsRefund report whether an event of field would move
// the row out of a return (a refund) that another of its fields (another
// record: NetSuite's return authorization beside its sales order,
// Shopify's return beside the order's fulfilment status) put it in, along
// an undocumented transition. Such an event is kept in the history but
// does not override the state: platforms send the order record's status
// again while the return record moves on (an orders/updated webhook still
// says fulfilled, a sales order stays Billed).
func (r *Row) keepsReturn(field string, s canonical.State) bool {
	cur := &r.Fulfilment
	return cur.State.Side() && cur.Field != field && canonical.FulfilmentTransition(cur.State, s) == canonical.Undocumented
}

func (r *Row) keepsRefund(field string, p canonical.Payment) bool {
	cur := &r.Payment
	return cur.Payment.Refund() && cur.Field != field && canonical.PaymentTransition(cur.Payment, p) == canonical.Undocumented
}

// amountOf reads attributes.amount and attributes.currency, if any. The
// amount is kept as its decimal text, never as a float. The common shapes
// (amount a number or a string holding one, currency a plain string, each
// once) are read in place; anything else is decoded by encoding/json,
// whose answer is the reference.
func amountOf(attrs json.RawMessage) (amount, currency string) {
	if !bytes.Contains(attrs, []byte(`"amount"`)) {
		return "", ""
	}
	var amt, cur []byte
	plain := true
	ok := events.ObjectMembers(attrs, func(key, value []byte) {
		switch string(key) {
		case "amount":
			if amt != nil {
				plain = false
			}
			amt = value
		case "currency":
			if cur != nil {
				plain = false
			}
			cur = value
		default:
			// encoding/json matches keys without regard to case
			if bytes.EqualFold(key, []byte("amount")) || bytes.EqualFold(key, []byte("currency")) {
				plain = false
			}
		}
	})
	if ok && plain && amt != nil {
		if len(amt) >= 2 && amt[0] == '"' {
			amt = amt[1 : len(amt)-1]
		}
		curOK := cur == nil || (len(cur) >= 2 && cur[0] == '"' && bytes.IndexByte(cur, '\\') < 0)
		if isJSONNumber(amt) && curOK {
			if cur != nil {
				currency = string(cur[1 : len(cur)-1])
			}
			return string(amt), currency
		}
	}
	return amountByDecoder(attrs)
}

// amountByDecoder is amountOf by encoding/json: the reference for what the
// in-place reading returns.
func amountByDecoder(attrs json.RawMessage) (amount, currency string) {
	var a struct {
		Amount   json.Number `json:"amount"`
		Currency string      `json:"currency"`
	}
	dec := json.NewDecoder(bytes.NewReader(attrs))
	dec.UseNumber()
	if dec.Decode(&a) != nil {
		return "", ""
	}
	return a.Amount.String(), a.Currency
}

// isJSONNumber reports whether b is a number in JSON's grammar.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// withProblem adds p to err, a validation error or nil (another error
// is kept as it is: the event is rejected either way).
func withProblem(err error, p events.Problem) error {
	ve, ok := err.(*events.ValidationError)
	if err != nil && !ok {
		return err
	}
	if !ok {
		ve = &events.ValidationError{}
	}
	ve.Problems = append(ve.Problems, p)
	return ve
}
