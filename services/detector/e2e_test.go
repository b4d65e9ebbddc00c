package detector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

type received struct {
	mu     sync.Mutex
	alerts []detector.Alert
	raw    [][]byte // the records as published
	msgIDs map[string]int
}

func (r *received) add(m *nats.Msg) {
	var a detector.Alert
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
	r.raw = append(r.raw, m.Data)
	r.msgIDs[m.Header.Get(events.HeaderMsgID)]++
}

// publishAccepted publishes a batch of envelopes and fails the test unless
// every one is accepted.
func publishAccepted(t *testing.T, pub *events.Publisher, batch [][]byte) {
	t.Helper()
	results, err := pub.PublishBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Outcome != events.Accepted {
			t.Fatalf("publish: %+v", r)
		}
	}
}

// subscribeAlerts collects every alert published on driftwatch.alerts.>
// from now on.
func subscribeAlerts(t *testing.T, env *apptest.Env) *received {
	t.Helper()
	sub := &received{msgIDs: map[string]int{}}
	s, err := env.NC.Subscribe("driftwatch.alerts.>", sub.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Unsubscribe() })
	if err := env.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func (r *received) pairs(state string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, a := range r.alerts {
		if a.State == state {
			out[a.OrderID+" "+a.Pattern]++
		}
	}
	return out
}

// TestEndToEndFaults plays a six-system stack with second-scale SLAs: a few
// hundred orders, a known subset carrying each fault. A subscriber on
// driftwatch.alerts.> must receive exactly the expected (order, pattern)
// pairs, each once, and a resolved record for the faults that heal late.
func TestEndToEndFaults(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	sub := subscribeAlerts(t, env)
	pub, err := events.NewPublisher(env.NC)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	n := 0
	var batch [][]byte
	emit := func(order, system, status string, kv ...string) {
		n++
		ev := map[string]any{"event_id": fmt.Sprintf("e%d", n), "order_id": order, "system": system, "status": status, "occurred_at": now.Format(time.RFC3339Nano)}
		for i := 0; i+1 < len(kv); i += 2 {
			ev[kv[i]] = kv[i+1]
		}
		if ev["kind"] == "ack" {
			delete(ev, "status")
		}
		data, _ := json.Marshal(ev)
		batch = append(batch, data)
	}
	flush := func() {
		publishAccepted(t, pub, batch)
		batch = batch[:0]
	}
	want := map[string]int{}
	expect := func(order, pattern string) { want[order+" "+pattern] = 1 }
	healthy := func(o string) {
		emit(o, "shop", "unfulfilled")
		emit(o, "stripe", "succeeded")
		emit(o, "erp", "Pending Fulfillment")
		emit(o, "wms", "confirmed")
	}
	for i := 0; i < 300; i++ {
		o := fmt.Sprintf("E2E-%03d", i)
		switch i % 30 {
		case 0: // the record system never hears of it
			emit(o, "shop", "unfulfilled")
			expect(o, detector.OrderNotAcknowledged)
		case 1: // shipped in the storefront, not in the ERP
			healthy(o)
			emit(o, "shop", "fulfilled")
			expect(o, detector.ShipmentNotReflected)
		case 2: // cancelled in the storefront, not in the ERP
			healthy(o)
			emit(o, "shop", "customer", "status_field", "cancel_reason")
			expect(o, detector.CancelNotPropagated)
		case 3: // paid, no order in the ERP
			emit(o, "stripe", "succeeded")
			expect(o, detector.PaymentWithoutOrder)
		case 4: // the warehouse never gets the ERP's order
			emit(o, "erp", "Pending Fulfillment")
			expect(o, detector.StatusNotPropagated)
		case 5: // acknowledged but never applied
			emit(o, "shop", "unfulfilled", "event_id", o+"-s1")
			emit(o, "erp", "x", "kind", "ack", "ack_of", "shop:"+o+"-s1")
			expect(o, detector.AckedNotApplied)
		case 6: // the warehouse regresses
			healthy(o)
			emit(o, "wms", "pending", "occurred_at", now.Add(time.Millisecond).Format(time.RFC3339Nano))
			expect(o, detector.IllegalTransition)
			expect(o, detector.StatusNotPropagated) // wms now disagrees with erp
		case 7: // the warehouse's clock is 10 minutes ahead
			emit(o, "shop", "unfulfilled")
			emit(o, "erp", "Pending Fulfillment")
			emit(o, "wms", "confirmed", "occurred_at", now.Add(10*time.Minute).Format(time.RFC3339Nano))
			expect(o, detector.ClockSkew)
		case 8: // heals late: resolved after the alert
			emit(o, "shop", "unfulfilled")
			expect(o, detector.OrderNotAcknowledged)
		case 9: // out of order with other offsets, within the SLA: healthy
			emit(o, "erp", "Pending Fulfillment", "occurred_at", now.In(time.FixedZone("", -7*3600)).Format(time.RFC3339Nano))
			emit(o, "wms", "confirmed", "occurred_at", now.Add(-time.Second).In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339Nano))
			emit(o, "shop", "unfulfilled", "occurred_at", now.Add(-2*time.Second).Format(time.RFC3339Nano))
		default:
			healthy(o)
		}
	}
	emit("E2E-UNMAPPED", "wms", "teleported")
	expect("E2E-UNMAPPED", detector.UnmappedStatus)
	flush()

	// Wait for every expected alert, then heal the late ones.
	apptest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		got := sub.pairs(detector.StateOpen)
		for k := range want {
			if got[k] == 0 {
				return fmt.Errorf("missing %s (have %d alerts)", k, len(got))
			}
		}
		return nil
	})
	healed := map[string]int{}
	now = time.Now()
	for i := 8; i < 300; i += 30 {
		o := fmt.Sprintf("E2E-%03d", i)
		emit(o, "erp", "Pending Fulfillment")
		emit(o, "wms", "confirmed")
		healed[o+" "+detector.OrderNotAcknowledged] = 1
	}
	flush()
	apptest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		got := sub.pairs(detector.StateResolved)
		for k := range healed {
			if got[k] == 0 {
				return fmt.Errorf("no resolved record for %s", k)
			}
		}
		return nil
	})
	// Once every expectation is judged and every alert published, no false
	// alarm can still come.
	env.WaitSettled(t, 30*time.Second)

	gotOpen := sub.pairs(detector.StateOpen)
	var extra, missing, dups []string
	for k, c := range gotOpen {
		if want[k] == 0 {
			extra = append(extra, k)
		} else if c > 1 {
			dups = append(dups, k)
		}
	}
	for k := range want {
		if gotOpen[k] == 0 {
			missing = append(missing, k)
		}
	}
	sort.Strings(extra)
	if len(extra)+len(missing)+len(dups) > 0 {
		t.Fatalf("alerts differ from the faults:\nextra %v\nmissing %v\nduplicates %v", extra, missing, dups)
	}
	gotResolved := sub.pairs(detector.StateResolved)
	for k := range gotResolved {
		if healed[k] == 0 {
			t.Errorf("unexpected resolution %s", k)
		}
	}
	for id, c := range sub.msgIDs {
		if c > 1 {
			t.Errorf("message id %s published %d times", id, c)
		}
	}
	// The alerts carry the contract's record (schemas/alert.schema.json).
	sub.mu.Lock()
	for i, a := range sub.alerts {
		if a.AlertID == "" || a.Source == nil || a.DetectedAt == "" || a.Message == "" || a.Severity == "" || !strings.Contains(a.Message, a.OrderID) {
			t.Errorf("incomplete alert %+v", a)
		}
		detector.CheckAlertRecord(t, sub.raw[i])
	}
	sub.mu.Unlock()
	// And the store and API agree.
	status, body := env.Do(t, "GET", "/v1/mismatches?state=open&pattern=cancel_not_propagated", "", "")
	if status != 200 || !strings.Contains(body, `"total":10`) {
		t.Fatalf("GET /v1/mismatches: %d %s", status, body[:min(len(body), 300)])
	}
	id := detector.AlertID("E2E-000", detector.OrderNotAcknowledged, "shop", "erp")
	status, body = env.Do(t, "POST", "/v1/mismatches/"+id+"/resolve", "application/json", `{"note":"entered by hand in NetSuite","by":"ops"}`)
	if status != 200 || !strings.Contains(body, "entered by hand") {
		t.Fatalf("resolve: %d %s", status, body)
	}
	apptest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if sub.pairs(detector.StateResolved)["E2E-000 "+detector.OrderNotAcknowledged] == 0 {
			return fmt.Errorf("no resolved record after the manual resolve")
		}
		return nil
	})
	if status, _ := env.Do(t, "POST", "/v1/mismatches/"+id+"/resolve", "application/json", `{"note":"again"}`); status != 409 {
		t.Fatalf("second resolve: %d", status)
	}
}
