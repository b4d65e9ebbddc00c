package replay

import (
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
)

// AckView is one acknowledgement.
type AckView struct {
	System     string `json:"system"`   // the acknowledged event's system
	EventID    string `json:"event_id"` // the acknowledged event
	AckSystem  string `json:"ack_system"`
	AckEventID string `json:"ack_event_id"`
	AckSeq     uint64 `json:"ack_seq"`
	OccurredAt string `json:"occurred_at"`
	ReceivedAt string `json:"received_at"`
}

// TimelineEvent is one event of GET /v1/orders/{order_id}/timeline.
type TimelineEvent struct {
	Seq         uint64    `json:"seq"`
	System      string    `json:"system"`
	Kind        string    `json:"kind"`
	EventID     string    `json:"event_id"`
	Status      string    `json:"status,omitempty"`
	StatusField string    `json:"status_field,omitempty"`
	Canonical   string    `json:"canonical,omitempty"`
	Payment     string    `json:"payment,omitempty"`
	Unmapped    bool      `json:"unmapped,omitempty"`
	Ignored     bool      `json:"ignored,omitempty"`
	OccurredAt  string    `json:"occurred_at"`
	ReceivedAt  string    `json:"received_at"`
	LagMillis   int64     `json:"lag_ms"` // received_at - occurred_at
	Actor       string    `json:"actor"`
	AckOf       string    `json:"ack_of,omitempty"`
	AckedBy     []AckView `json:"acked_by,omitempty"`
	Current     bool      `json:"current"`
	Late        bool      `json:"late,omitempty"`
	ClockSkew   bool      `json:"clock_skew,omitempty"`
	// ZoneAssumed names the zone occurred_at was read in when the event
	// carried no offset (its system's configured timezone).
	ZoneAssumed string `json:"zone_assumed,omitempty"`
	ExternalRef string `json:"external_ref,omitempty"`
	Amount      string `json:"amount,omitempty"`
	Currency    string `json:"currency,omitempty"`
}

// TimelineView is GET /v1/orders/{order_id}/timeline.
type TimelineView struct {
	OrderID string          `json:"order_id"`
	Events  []TimelineEvent `json:"events"`
}

// AckViewOf is the view of one acknowledgement link.
func AckViewOf(a projections.AckLink) AckView {
	return AckView{System: a.System, EventID: a.EventID, AckSystem: a.AckSystem, AckEventID: a.AckEventID,
		AckSeq: a.AckSeq, OccurredAt: a.OccurredAt, ReceivedAt: projections.FormatTime(a.Received)}
}

// BuildTimeline turns index entries into the timeline, linking acks.
func BuildTimeline(orderID string, entries []projections.Entry, acks []projections.AckLink) TimelineView {
	v := TimelineView{OrderID: orderID, Events: make([]TimelineEvent, 0, len(entries))}
	for _, e := range entries {
		te := TimelineEvent{Seq: e.Seq, System: e.System, Kind: e.Kind, EventID: e.EventID, Status: e.Raw,
			StatusField: e.Field, Unmapped: e.Unmapped, Ignored: e.Ignored, OccurredAt: e.OccurredAt,
			ReceivedAt: projections.FormatTime(e.Received), LagMillis: (e.Received - e.Claimed()) / int64(time.Millisecond),
			Actor: e.Actor, AckOf: e.AckOf, Current: e.Current, Late: e.Late, ClockSkew: e.ClockSkew,
			ZoneAssumed: e.ZoneAssumed, ExternalRef: e.ExternalRef, Amount: e.Amount, Currency: e.Currency}
		if e.State != canonical.None {
			te.Canonical = e.State.String()
		}
		if e.Payment != canonical.NoPayment {
			te.Payment = e.Payment.String()
		}
		for _, a := range acks {
			if a.System == e.System && a.EventID == e.EventID {
				te.AckedBy = append(te.AckedBy, AckViewOf(a))
			}
		}
		v.Events = append(v.Events, te)
	}
	return v
}
