package projections

import (
	"errors"
	"testing"
)

// TestRowDecodeRoundTripAndTruncation checks that a row decodes to what was
// encoded, shared or copied, and that every truncation of its bytes is
// reported as corrupt rather than read past or decoded as something else.
func TestRowDecodeRoundTripAndTruncation(t *testing.T) {
	f := Facet{Raw: "Pending Fulfillment", Field: "status", State: 2, Payment: 1, OccurredAt: "2026-11-25T10:00:00-05:00",
		Occurred: 1764082800000000000, Received: 1764082800123456789, Seq: 300000, EventID: "evt-ü-1", Actor: "manual",
		Kind: "status", ClockSkew: true, MappingVer: 200, ExternalRef: "SO-1"}
	want := Row{System: "erp", OrderID: "O-1", Fulfilment: f, Payment: f, Last: f, Events: 130, Acks: 2, Amount: "12.50", Currency: "EUR"}
	b := want.encode()
	for _, share := range []bool{false, true} {
		o := RawOrder{OrderID: "O-1", Values: [][]byte{b}}
		rows, err := o.Rows(nil, share)
		if err != nil || len(rows) != 1 || rows[0] != want {
			t.Fatalf("share=%v: %+v %v", share, rows, err)
		}
	}
	for n := 0; n < len(b); n++ {
		if _, err := decodeRow(b[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("%d of %d bytes: err %v, want corrupt", n, len(b), err)
		}
	}
}
