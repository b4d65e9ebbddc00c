// Package demo plays a realistic retail stack for `driftwatch demo`: a
// Shopify storefront and an Amazon marketplace take orders, NetSuite (the
// record system) accepts them, an in-house warehouse picks and ships, Stripe
// takes the money and EasyPost tracks the parcels, each in its own
// vocabulary and time zone, at human speed. Now and then it injects a fault
// of every kind driftwatch detects, so a newcomer sees drift caught within a
// minute.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/schedule"
)

// Config is the demo stack: the example stack with SLAs short enough to see
// drift within a minute.
var Config = config.SixSystems + config.ReferenceFlows("15s", "20s", "20s", "30s", "15s") + `detect:
  settle: 1s
  max_future_skew: 2m
alerts:
  mismatch_rate: 0.2
  channel_share: 0.6
  escalate_after: 2m
  escalate:
    cancel_not_propagated: 45s
  silent_floor: 1m
reconcile:
  every: 1m
ingest:
  dedupe_window: 2h
  max_age: 7d
`

// zones are where each system's clock lives.
var zones = map[string]*time.Location{
	"shop":    time.FixedZone("America/New_York", -5*3600),
	"amazon":  time.UTC,
	"erp":     time.FixedZone("America/Los_Angeles", -8*3600),
	"wms":     time.FixedZone("Europe/Amsterdam", 3600),
	"stripe":  time.UTC,
	"carrier": time.FixedZone("America/Chicago", -6*3600),
}

// Batcher publishes envelopes (events.Publisher).
type Batcher interface {
	PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error)
}

// Simulator generates orders.
type Simulator struct {
	pub     Batcher
	rng     *rand.Rand
	mu      sync.Mutex
	n       atomic.Int64
	Every   time.Duration // a new order this often (default 1.5s)
	Speed   float64       // 1 = human speed; larger is faster
	OnError func(error)
}

// New returns a simulator publishing through pub.
func New(pub Batcher, seed int64) *Simulator {
	return &Simulator{pub: pub, rng: rand.New(rand.NewSource(seed)), Every: 1500 * time.Millisecond, Speed: 1}
}

// step is one event of an order's script.
type step struct {
	after  time.Duration // after the previous step
	system string
	status string
	field  string
	kind   string // "" or ack
	ackOf  string
	actor  string
	skew   time.Duration // added to occurred_at (a wrong clock)
}

// Fault names what an order's script injects.
var Faults = []string{"none", "erp_never_acknowledges", "cancel_not_propagated", "ships_after_cancel", "payment_without_order",
	"unmapped_status", "clock_skew", "manual_override", "illegal_transition", "acked_not_applied", "late_carrier_scan", "warehouse_silent"}

func (s *Simulator) intn(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Intn(n)
}

// script writes one order's life, with a fault one time in four.
func (s *Simulator) script(channel string) (steps []step, fault string) {
	fault = "none"
	if s.intn(4) == 0 {
		fault = Faults[1+s.intn(len(Faults)-1)]
	}
	d := func(ms int) time.Duration { return time.Duration(ms+s.intn(ms+1)) * time.Millisecond }
	confirm := step{0, "shop", "unfulfilled", "fulfillment_status", "", "", "", 0}
	ship := step{d(3000), "shop", "fulfilled", "fulfillment_status", "", "", "", 0}
	cancel := step{d(2000), "shop", "customer", "cancel_reason", "", "", "", 0}
	if channel == "amazon" {
		confirm = step{0, "amazon", "Unshipped", "OrderStatus", "", "", "", 0}
		ship = step{d(3000), "amazon", "Shipped", "OrderStatus", "", "", "", 0}
		cancel = step{d(2000), "amazon", "Canceled", "OrderStatus", "", "", "", 0}
	}
	pay := []step{{d(300), "stripe", "requires_capture", "payment_intent.status", "", "", "", 0}, {d(500), "stripe", "succeeded", "payment_intent.status", "", "", "", 0}}
	erpAccept := step{d(1500), "erp", "Pending Fulfillment", "status", "", "", "", 0}
	wms := []step{{d(1500), "wms", "confirmed", "status", "", "", "", 0}, {d(2000), "wms", "picked", "status", "", "", "", 0}, {d(1500), "wms", "packed", "status", "", "", "", 0}, {d(1500), "wms", "shipped", "status", "", "", "", 0}}
	erpShip := step{d(1000), "erp", "Pending Billing", "status", "", "", "", 0}
	carrier := []step{{d(1500), "carrier", "pre_transit", "status", "", "", "", 0}, {d(3000), "carrier", "in_transit", "status", "", "", "", 0}, {d(4000), "carrier", "delivered", "status", "", "", "", 0}}
	erpBilled := step{d(1500), "erp", "Billed", "status", "", "", "", 0}

	happy := func() []step {
		out := []step{confirm}
		if channel == "shop" {
			out = append(out, pay...)
		}
		out = append(out, erpAccept)
		out = append(out, wms...)
		out = append(out, ship, erpShip)
		out = append(out, carrier...)
		return append(out, erpBilled)
	}
	switch fault {
	case "erp_never_acknowledges":
		return []step{confirm}, fault
	case "cancel_not_propagated":
		return []step{confirm, erpAccept, wms[0], cancel}, fault
	case "ships_after_cancel":
		return []step{confirm, erpAccept, wms[0], cancel, {d(1000), "erp", "Cancelled", "status", "", "", "", 0}, wms[1], wms[2]}, fault
	case "payment_without_order":
		return pay, fault
	case "unmapped_status":
		return []step{confirm, erpAccept, wms[0], {d(2000), "erp", "Pending Credit Review", "status", "", "", "", 0}}, fault
	case "clock_skew":
		steps = happy()
		steps[len(steps)/2].skew = 10 * time.Minute
		return steps, fault
	case "manual_override":
		return []step{confirm, erpAccept, wms[0], {d(2000), "erp", "Pending Approval", "status", "", "", "manual", 0}}, fault
	case "illegal_transition":
		return append(happy(), step{d(1000), "wms", "pending", "status", "", "", "", 0}), fault
	case "acked_not_applied":
		return []step{confirm, {d(800), "erp", "", "", "ack", confirm.system, "", 0}}, fault
	case "late_carrier_scan":
		steps = happy()
		steps[len(steps)-2].after += 40 * time.Second // the delivery scan is late
		return steps, fault
	case "warehouse_silent":
		out := []step{confirm, erpAccept}
		return out, fault
	}
	return happy(), fault
}

// Run generates orders until ctx ends, and returns once every order it
// started has stopped.
func (s *Simulator) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	schedule.Every(ctx, time.Duration(float64(s.Every)/s.Speed), false, func(ctx context.Context) error {
		n := s.n.Add(1)
		channel := "shop"
		if s.intn(3) == 0 {
			channel = "amazon"
		}
		order := fmt.Sprintf("DEMO-%05d", n)
		if channel == "amazon" {
			order = fmt.Sprintf("114-%07d-%05d", 3000000+s.intn(999999), n)
		}
		steps, _ := s.script(channel)
		wg.Go(func() { s.play(ctx, order, steps) })
		return nil
	}, nil)
}

func (s *Simulator) play(ctx context.Context, order string, steps []step) {
	ids := map[string]string{}
	for i, st := range steps {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(float64(st.after) / s.Speed)):
		}
		id := fmt.Sprintf("%s-%s-%d", st.system, order, i)
		now := time.Now().Add(st.skew)
		ev := map[string]any{"event_id": id, "order_id": order, "system": st.system, "occurred_at": now.In(zones[st.system]).Format(time.RFC3339Nano)}
		if st.kind == "ack" {
			ev["kind"], ev["ack_of"] = "ack", st.ackOf+":"+ids[st.ackOf]
		} else {
			ev["status"] = st.status
			if st.field != "" {
				ev["status_field"] = st.field
			}
			ids[st.system] = id
		}
		if st.actor != "" {
			ev["actor"] = st.actor
		}
		if st.system == "shop" || st.system == "amazon" || st.system == "stripe" {
			ev["attributes"] = map[string]any{"amount": fmt.Sprintf("%d.%02d", 20+s.intn(480), s.intn(100)), "currency": "USD"}
		}
		data, _ := json.Marshal(ev)
		if _, err := s.pub.PublishBatch(ctx, [][]byte{data}); err != nil && ctx.Err() == nil && s.OnError != nil {
			s.OnError(err)
		}
	}
}
