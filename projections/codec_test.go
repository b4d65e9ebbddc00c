package projections

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
)

// TestRowDecodeRoundTripAndTruncation checks that a row decodes to what was
// encoded, shared or copied, and that every truncation of its bytes is
// reported as corrupt rather than read past or decoded as something else.
func TestRowDecodeRoundTripAndTruncation(t *testing.T) {
	f := Facet{Raw: "Pending Fulfillment", Field: "status", State: 2, Payment: 1, OccurredAt: "2026-11-25T10:00:00-05:00",
		Occurred: 1764082800000000000, Received: 1764082800123456789, Seq: 300000, EventID: "evt-ü-1", Actor: "manual",
		Kind: "status", ClockSkew: true, MappingVer: 200, ExternalRef: "SO-1"}
	g := f
	g.Seq, g.EventID, g.Payment = 300001, "evt-2", 3
	h := g
	h.Raw, h.Unmapped = "teleported", true
	rows := []Row{
		{System: "erp", OrderID: "O-1", Fulfilment: f, Payment: f, Last: f, Events: 130, Acks: 2, Amount: "12.50", Currency: "EUR"},
		{System: "erp", OrderID: "O-1", Fulfilment: f, Payment: g, Last: g, Events: 2},
		{System: "erp", OrderID: "O-1", Fulfilment: f, Payment: g, Last: h, Events: 3},
		{System: "erp", OrderID: "O-1", Fulfilment: f, Last: f, Events: 1},
		{System: "erp", OrderID: "O-1", Payment: g, Last: g, Events: 1},
		{System: "erp", OrderID: "O-1", Last: h, Events: 1},
		{System: "erp", OrderID: "O-1", Acks: 1, Events: 1},
	}
	for i, want := range rows {
		for _, b := range [][]byte{want.encode(), encodeRowV1(&want)} {
			for _, share := range []bool{false, true} {
				o := RawOrder{OrderID: "O-1", Values: [][]byte{b}}
				got, err := o.Rows(nil, share)
				if err != nil || len(got) != 1 || got[0] != want {
					t.Fatalf("row %d version %d share=%v: %+v %v", i, b[0], share, got, err)
				}
			}
			for n := 0; n < len(b); n++ {
				if _, err := decodeRow(b[:n]); !errors.Is(err, errCorrupt) {
					t.Fatalf("row %d version %d, %d of %d bytes: err %v, want corrupt", i, b[0], n, len(b), err)
				}
			}
		}
	}
	if v2, v1 := len(rows[0].encode()), len(encodeRowV1(&rows[0])); v2*2 > v1 {
		t.Fatalf("a row whose facets are one event takes %d bytes, %d in version 1", v2, v1)
	}
}

// encodeRowV1 is the version 1 encoding, which stores written before
// version 2 hold.
func encodeRowV1(r *Row) []byte {
	e := enc{}
	e.byte1(rowVersion1)
	e.s(r.System)
	e.s(r.OrderID)
	r.Fulfilment.encode(&e)
	r.Payment.encode(&e)
	r.Last.encode(&e)
	e.u(r.Events)
	e.u(r.Acks)
	e.s(r.Amount)
	e.s(r.Currency)
	return e.b
}

// TestScanOrdersRawChunks scans orders of one to three rows in chunks that
// are released (and so reused) as soon as they are read, and checks every
// order against Store.Rows: IDs and rows copied out before Release stay
// intact while the buffers go round.
func TestScanOrdersRawChunks(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := testApplier(t)
	tx := s.NewTx(false)
	systems := []string{"shop", "erp", "wms"}
	seq := uint64(0)
	for o := 0; o < 50; o++ {
		id := fmt.Sprintf("ORD-%d-%s", o, strings.Repeat("x", o%7))
		for k := 0; k <= o%3; k++ {
			seq++
			data := fmt.Sprintf(`{"event_id":"e%d","order_id":"%s","system":"%s","status":"paid","occurred_at":"2026-11-27T10:00:00Z"}`, seq, id, systems[k])
			if _, err := a.Apply(tx, Delivery{Subject: "driftwatch.in." + systems[k], Data: []byte(data), Seq: seq, Received: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CommitTx(tx, true); err != nil {
		t.Fatal(err)
	}
	got := map[string][]Row{}
	var order []string
	err = s.ScanOrdersRaw(7, func(c *RawChunk) error {
		defer c.Release()
		if len(c.Orders) == 0 || len(c.Orders) > 7 {
			t.Errorf("chunk of %d orders", len(c.Orders))
		}
		for i := range c.Orders {
			rows, err := c.Orders[i].Rows(nil, false)
			if err != nil {
				return err
			}
			id := strings.Clone(c.Orders[i].OrderID)
			got[id] = rows
			order = append(order, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || !sort.StringsAreSorted(order) {
		t.Fatalf("%d orders, in key order: %v", len(got), sort.StringsAreSorted(order))
	}
	for id, rows := range got {
		want, err := s.Rows(id)
		if err != nil || !reflect.DeepEqual(rows, want) {
			t.Fatalf("%s: scanned %+v, stored %+v (%v)", id, rows, want, err)
		}
	}
}

// TestEntryVersion1Decodes: an order index entry written before version 2
// (no assumed zone, no shadowed flag) still reads, field for field.
func TestEntryVersion1Decodes(t *testing.T) {
	x := Entry{Seq: 7, System: "shop", Kind: "status", EventID: "e7", Raw: "fulfilled", Field: "fulfillment_status",
		State: canonical.Shipped, OccurredAt: "2026-11-27T10:04:05-04:00", Occurred: 11, Received: 12, Actor: "integration",
		Current: true, SetState: true, PrevState: canonical.Confirmed, PrevRaw: "unfulfilled", Amount: "10.00", Currency: "EUR"}
	e := enc{}
	e.byte1(entryVersion1)
	e.u(x.Seq)
	for _, s := range []string{x.System, x.Kind, x.EventID, x.Raw, x.Field} {
		e.s(s)
	}
	e.byte1(uint8(x.State))
	e.byte1(uint8(x.Payment))
	e.bool(x.Unmapped)
	e.bool(x.Ignored)
	e.s(x.OccurredAt)
	e.i(x.Occurred)
	e.i(x.Received)
	for _, s := range []string{x.Actor, x.AckOf, x.ExternalRef} {
		e.s(s)
	}
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
	got, err := decodeEntry(e.b)
	if err != nil || got != x {
		t.Fatalf("version 1 entry: %+v %v, want %+v", got, err, x)
	}
	x.ZoneAssumed, x.Shadowed = "America/Chicago", true
	if back, err := decodeEntry(x.encode()); err != nil || back != x {
		t.Fatalf("version 2 round trip: %+v %v", back, err)
	}
}
