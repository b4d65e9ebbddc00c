package projections

import "github.com/driftwatch/driftwatch/events/canonical"

// RowsAsOf rebuilds what each system's projection of an order believed at
// an instant, from the order index: the events received at or before asOf
// (received time is the log's order, so this is the log up to a point),
// folded with the same rules as Apply (latest by occurred_at, then
// sequence). Acknowledgements count in Events and Acks.
func (s *Store) RowsAsOf(orderID string, asOf int64) ([]Row, error) {
	entries, err := s.Timeline(orderID)
	if err != nil {
		return nil, err
	}
	return FoldAsOf(orderID, entries, asOf), nil
}

// FoldAsOf folds index entries received at or before asOf into rows, by
// system in order of first appearance.
func FoldAsOf(orderID string, entries []Entry, asOf int64) []Row {
	var order []string
	rows := map[string]*Row{}
	for i := range entries {
		e := &entries[i]
		if e.Received > asOf {
			continue
		}
		r := rows[e.System]
		if r == nil {
			r = &Row{System: e.System, OrderID: orderID}
			rows[e.System] = r
			order = append(order, e.System)
		}
		r.Events++
		if e.Kind == "ack" {
			r.Acks++
			continue
		}
		f := Facet{Raw: e.Raw, Field: e.Field, State: e.State, Payment: e.Payment, Unmapped: e.Unmapped,
			OccurredAt: e.OccurredAt, Occurred: e.Occurred, Received: e.Received, Seq: e.Seq, EventID: e.EventID,
			Actor: e.Actor, Kind: e.Kind, ClockSkew: e.ClockSkew, ExternalRef: e.ExternalRef}
		if f.Unmapped {
			f.State = canonical.None
		}
		if !e.Unmapped && f.State != canonical.None && f.newerThan(&r.Fulfilment) &&
			!r.keepsReturn(f.Field, f.State) {
			r.Fulfilment = f
		}
		if !e.Unmapped && f.Payment != canonical.NoPayment && f.newerThan(&r.Payment) &&
			!r.keepsRefund(f.Field, f.Payment) {
			r.Payment = f
		}
		if f.newerThan(&r.Last) && !(e.Shadowed && !e.SetState && !e.SetPayment) {
			r.Last = f
			if e.Amount != "" {
				r.Amount, r.Currency = e.Amount, e.Currency
			}
		}
	}
	out := make([]Row, 0, len(order))
	for _, sys := range order {
		out = append(out, *rows[sys])
	}
	return out
}
