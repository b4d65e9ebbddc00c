// Package bench is driftwatch's load tool (`driftwatch bench`): it runs a
// realistic workload against an embedded driftwatch — many orders across six
// systems, a realistic event mix, duplicates, out-of-order arrivals and a
// share of faults — and measures publish and end-to-end rates (beside a
// plain JetStream stream with the same storage settings, so the ratio holds
// on a noisy machine), detection latency, gate latency at a fixed request
// rate while ingesting, reconciliation sweep time, replay and rebuild rates
// and peak memory.
package bench

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/driftwatch/driftwatch/services/config"
)

// Config is the benchmark stack. SLAs are short so faults become alerts
// during the run.
var Config = config.SixSystems + config.ReferenceFlows("3s", "3s", "3s", "3s", "3s") + `detect:
  settle: 500ms
  max_future_skew: 5m
reconcile:
  every: 24h
ingest:
  dedupe_window: 2h
  max_age: 30d
  sync_interval: %s
`

// Workload generates the events of orders.
type Workload struct {
	rng *rand.Rand
	// FaultShare of orders carry a fault (default 0.02).
	FaultShare float64
	// DuplicateShare of events are published twice (default 0.03).
	DuplicateShare float64
	// Base is the occurred_at of the first order.
	Base time.Time
}

// NewWorkload returns a deterministic workload.
func NewWorkload(seed int64) *Workload {
	return &Workload{rng: rand.New(rand.NewSource(seed)), FaultShare: 0.02, DuplicateShare: 0.03, Base: time.Now()}
}

var zones = []*time.Location{time.UTC, time.FixedZone("", -5*3600), time.FixedZone("", 5*3600+1800), time.FixedZone("", 3600)}

// Order returns the envelopes of order i, in the order they are published
// (some out of order), with duplicates, and whether it carries a fault.
func (w *Workload) Order(i int) (lines [][]byte, fault bool) {
	id := fmt.Sprintf("B-%08d", i)
	at := w.Base
	type ev struct{ sys, status, field string }
	channel := ev{"shop", "unfulfilled", "fulfillment_status"}
	shipped := ev{"shop", "fulfilled", "fulfillment_status"}
	if i%3 == 0 {
		channel = ev{"amazon", "Unshipped", "OrderStatus"}
		shipped = ev{"amazon", "Shipped", "OrderStatus"}
	}
	seq := []ev{channel, {"stripe", "succeeded", "payment_intent.status"}, {"erp", "Pending Fulfillment", "status"},
		{"wms", "confirmed", "status"}, {"wms", "picked", "status"}, {"wms", "packed", "status"}, {"wms", "shipped", "status"},
		shipped, {"erp", "Pending Billing", "status"}, {"carrier", "in_transit", "status"}, {"carrier", "delivered", "status"}, {"erp", "Billed", "status"}}
	fault = w.rng.Float64() < w.FaultShare
	if fault {
		seq = seq[:1] // the ERP never hears of it: order_not_acknowledged
	}
	for k, e := range seq {
		t := at.Add(time.Duration(k) * 200 * time.Millisecond).In(zones[w.rng.Intn(len(zones))])
		line := []byte(fmt.Sprintf(`{"event_id":"%s-%d","order_id":"%s","system":"%s","status":"%s","status_field":"%s","occurred_at":"%s","attributes":{"amount":"%d.%02d","currency":"EUR"}}`,
			id, k, id, e.sys, e.status, e.field, t.Format(time.RFC3339Nano), 10+w.rng.Intn(400), w.rng.Intn(100)))
		lines = append(lines, line)
		if w.rng.Float64() < w.DuplicateShare {
			lines = append(lines, line)
		}
	}
	// Out of order: swap two neighbours now and then.
	if len(lines) > 3 && w.rng.Intn(4) == 0 {
		k := 1 + w.rng.Intn(len(lines)-2)
		lines[k], lines[k+1] = lines[k+1], lines[k]
	}
	return lines, fault
}

// Payloads generates the events of orders 0 to n-1 in publishing order,
// with the subject of each.
func (w *Workload) Payloads(n int) (payloads [][]byte, subjects []string) {
	for i := 0; i < n; i++ {
		lines, _ := w.Order(i)
		for _, l := range lines {
			payloads = append(payloads, l)
			subjects = append(subjects, "driftwatch.in."+systemOf(l))
		}
	}
	return payloads, subjects
}
