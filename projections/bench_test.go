package projections

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply measures events applied per second through the projection
// state machine into a real Pebble store, 1000 events per durable commit
// (as the projector does), 12 events per order across three systems.
func BenchmarkApply(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a := testApplier(&testing.T{})
	statuses := [][2]string{{"shop", "unfulfilled"}, {"erp", "Pending Fulfillment"}, {"wms", "confirmed"}, {"wms", "picked"}, {"wms", "packed"}, {"wms", "shipped"}, {"shop", "fulfilled"}, {"erp", "Pending Billing"}, {"erp", "Billed"}, {"shop", "fulfilled"}, {"wms", "delivered"}, {"erp", "Billed"}}
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	payloads := make([][]byte, 0, 12000)
	subjects := make([]string, 0, 12000)
	for o := 0; o < 1000; o++ {
		for k, st := range statuses {
			payloads = append(payloads, []byte(fmt.Sprintf(`{"event_id":"%%d-%d-%d","order_id":"O-%%d-%d","system":"%s","status":"%s","occurred_at":"%s"}`,
				o, k, o, st[0], st[1], base.Add(time.Duration(k)*time.Second).Format(time.RFC3339))))
			subjects = append(subjects, "driftwatch.in."+st[0])
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	tx := s.NewTx(false)
	for i := 0; i < b.N; i++ {
		round := i / len(payloads)
		p := payloads[i%len(payloads)]
		data := []byte(fmt.Sprintf(string(p), round, round))
		if _, err := a.Apply(tx, Delivery{Subject: subjects[i%len(subjects)], Data: data, Seq: uint64(i + 1), Received: base}); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if err := s.CommitTx(tx, true); err != nil {
				b.Fatal(err)
			}
			tx = s.NewTx(false)
		}
	}
	if err := s.CommitTx(tx, true); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRowsShared measures decoding an order's five rows the way the
// reconciliation sweep checks them: strings sharing the scanned bytes,
// into a reused slice.
func BenchmarkRowsShared(b *testing.B) {
	var o RawOrder
	o.OrderID = "S-00012345"
	for _, sys := range []string{"shop", "erp", "wms", "stripe", "carrier"} {
		f := Facet{Raw: "fulfilled", Field: "fulfillment_status", State: 3, OccurredAt: "2026-11-25T10:00:00Z", Occurred: 1764064800000000000,
			Received: 1764064800123456789, Seq: 4242424, EventID: "4242424", Kind: "status", MappingVer: 3}
		r := Row{System: sys, OrderID: o.OrderID, Fulfilment: f, Last: f, Events: 3, Amount: "129.95", Currency: "EUR"}
		o.Values = append(o.Values, r.encode())
	}
	var rows []Row
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if rows, err = o.Rows(rows[:0], true); err != nil || len(rows) != 5 || rows[4].System != "carrier" {
			b.Fatal(err, len(rows))
		}
	}
}
