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
