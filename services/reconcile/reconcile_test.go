package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/policy"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

func publish(t *testing.T, env *apptest.Env, lines ...string) {
	t.Helper()
	pub, _ := events.NewPublisher(env.NC)
	var batch [][]byte
	for _, l := range lines {
		batch = append(batch, []byte(l))
	}
	res, err := pub.PublishBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome == events.Rejected {
			t.Fatalf("rejected: %+v", r)
		}
	}
}

func evAt(id, order, system, status string, at time.Time, extra string) string {
	return fmt.Sprintf(`{"event_id":"%s","order_id":"%s","system":"%s","status":"%s","occurred_at":"%s"%s}`, id, order, system, status, at.UTC().Format(time.RFC3339Nano), extra)
}

// collector gathers what arrives on a subject.
type collector struct {
	mu   sync.Mutex
	msgs []map[string]any
}

func collect(t *testing.T, nc *nats.Conn, subject string) *collector {
	c := &collector{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var v map[string]any
		if json.Unmarshal(m.Data, &v) == nil {
			v["_subject"] = m.Subject
			c.mu.Lock()
			c.msgs = append(c.msgs, v)
			c.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = nc.Flush()
	return c
}

func (c *collector) count(pred func(map[string]any) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if pred(m) {
			n++
		}
	}
	return n
}

func TestSnapshotRevealsMissingEvents(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	alerts := collect(t, env.NC, "driftwatch.alerts.>")
	now := time.Now()
	var lines []string
	for i := 0; i < 20; i++ {
		o := fmt.Sprintf("S-%02d", i)
		lines = append(lines, evAt("s"+o, o, "shop", "unfulfilled", now, ""), evAt("e"+o, o, "erp", "Pending Fulfillment", now, ""), evAt("w"+o, o, "wms", "confirmed", now, ""))
	}
	publish(t, env, lines...)
	env.WaitApplied(t)
	// The ERP's export: orders 3, 7 and 11 moved on without the log hearing
	// of it; S-99 was never in the log; the rest agree.
	csv := "order_id,status,updated_at\n"
	for i := 0; i < 20; i++ {
		st := "Pending Fulfillment"
		switch i {
		case 3, 7:
			st = "Billed"
		case 11:
			st = "Cancelled"
		}
		csv += fmt.Sprintf("S-%02d,%s,%s\n", i, st, now.Add(time.Second).UTC().Format(time.RFC3339))
	}
	csv += "S-99,Pending Fulfillment," + now.UTC().Format(time.RFC3339) + "\n"
	status, body := env.Do(t, "POST", "/v1/snapshots/erp", "text/csv", csv)
	if status != 200 || !strings.Contains(body, `"accepted":21`) {
		t.Fatalf("import: %d %s", status, body)
	}
	want := map[string]bool{"S-03": true, "S-07": true, "S-11": true, "S-99": true}
	missing := func(m map[string]any) bool { return m["pattern"] == detector.MissingEvent && m["state"] == "open" }
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := alerts.count(missing); n < len(want) {
			return fmt.Errorf("%d missing_event alerts", n)
		}
		return nil
	})
	// The same file again appends nothing and raises nothing new.
	status, body = env.Do(t, "POST", "/v1/snapshots/erp", "text/csv", csv)
	if status != 200 || !strings.Contains(body, `"duplicate":21`) {
		t.Fatalf("second import: %d %s", status, body)
	}
	env.WaitSettled(t, 30*time.Second) // a wrong second alert would be out by now
	alerts.mu.Lock()
	got := map[string]int{}
	for _, m := range alerts.msgs {
		if missing(m) {
			got[m["order_id"].(string)]++
			if m["target"] == nil && m["order_id"] != "S-99" {
				t.Errorf("missing_event without the log's state: %v", m)
			}
		}
	}
	alerts.mu.Unlock()
	for o, n := range got {
		if !want[o] || n != 1 {
			t.Errorf("order %s: %d missing_event alerts", o, n)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("missing_event for %v, want %v", got, want)
	}
}

func TestReconcileSweep(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	reports := collect(t, env.NC, "driftwatch.reports.reconcile")
	old := time.Now().Add(-time.Hour)
	publish(t, env,
		// drift the detector raised and a person resolved without fixing.
		evAt("r1", "R-1", "shop", "unfulfilled", old, ""),
		// healthy and agreeing.
		evAt("r2a", "R-2", "shop", "unfulfilled", old, ""), evAt("r2b", "R-2", "erp", "Pending Fulfillment", old, ""), evAt("r2c", "R-2", "wms", "confirmed", old, ""),
		// in flight (just now, within its SLA).
		evAt("r3", "R-3", "shop", "unfulfilled", time.Now().Add(time.Hour), ""),
		// closed: cancelled everywhere.
		evAt("r4a", "R-4", "shop", "customer", old, `,"status_field":"cancel_reason"`), evAt("r4b", "R-4", "erp", "Cancelled", old, ""), evAt("r4c", "R-4", "wms", "cancelled", old, ""),
	)
	id := detector.AlertID("R-1", detector.OrderNotAcknowledged, "shop", "erp")
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, err := detector.GetMismatch(env.App.Store, id)
		return err
	})
	if _, err := env.App.Detector.Resolve(id, "ops", "looked fine to me"); err != nil {
		t.Fatal(err)
	}
	status, body := env.Do(t, "POST", "/v1/reconcile", "", "")
	if status != 200 {
		t.Fatalf("reconcile: %d %s", status, body)
	}
	var rep reconcile.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Orders != 4 || rep.OpenOrders != 3 || rep.InFlight < 1 || rep.Raised < 1 {
		t.Fatalf("report: orders %d open %d in flight %d raised %d", rep.Orders, rep.OpenOrders, rep.InFlight, rep.Raised)
	}
	m, _ := detector.GetMismatch(env.App.Store, id)
	if m.State != detector.StateOpen || m.DetectedBy != detector.ByReconcile {
		t.Fatalf("R-1 after the sweep: %s by %s", m.State, m.DetectedBy)
	}
	if _, err := detector.GetMismatch(env.App.Store, detector.AlertID("R-3", detector.OrderNotAcknowledged, "shop", "erp")); err == nil {
		t.Fatal("an in-flight order was raised")
	}
	// Fix R-1 for real: the next sweep (or the detector) resolves it.
	publish(t, env, evAt("r1b", "R-1", "erp", "Pending Fulfillment", time.Now(), ""), evAt("r1c", "R-1", "wms", "confirmed", time.Now(), ""))
	env.WaitApplied(t)
	if _, err := env.App.Reconcile.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, _ = detector.GetMismatch(env.App.Store, id)
	if m.State != detector.StateResolved {
		t.Fatalf("R-1 after the fix: %s", m.State)
	}
	for _, format := range []string{"text", "csv"} {
		status, body := env.Do(t, "GET", "/v1/reconcile/latest?format="+format, "", "")
		if status != 200 || !strings.Contains(body, "open") {
			t.Fatalf("latest %s: %d %s", format, status, body)
		}
	}
	apptest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if reports.count(func(map[string]any) bool { return true }) < 2 {
			return fmt.Errorf("reports on driftwatch.reports.reconcile: %d", reports.count(func(map[string]any) bool { return true }))
		}
		return nil
	})
}

func TestOpsAlerts(t *testing.T) {
	cfg := apptest.Config(t, apptest.StackYAML+`alerts:
  mismatch_rate: 0.3
  channel_share: 0.6
  escalate_after: 24h
  escalate:
    order_not_acknowledged: 1s
  silent_floor: 2s
`)
	env := apptest.Start(t, cfg, "")
	ops := collect(t, env.NC, "driftwatch.alerts.ops.>")
	escalated := collect(t, env.NC, "driftwatch.alerts.*.order_not_acknowledged")
	old := time.Now().Add(-time.Hour)
	// A steady source: wms sends every 50ms.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub, _ := events.NewPublisher(env.NC)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			_, _ = pub.PublishRaw(context.Background(), []byte(evAt(fmt.Sprintf("w%d", i), "W-STEADY", "wms", "confirmed", time.Now(), "")))
		}
	}()
	// 10 healthy orders and 6 the ERP never acknowledged: a 6/16 rate, all
	// from the shop.
	var lines []string
	for i := 0; i < 10; i++ {
		o := fmt.Sprintf("H-%d", i)
		lines = append(lines, evAt("h"+o, o, "shop", "unfulfilled", old, ""), evAt("e"+o, o, "erp", "Pending Fulfillment", old, ""), evAt("x"+o, o, "wms", "confirmed", old, ""))
	}
	for i := 0; i < 6; i++ {
		o := fmt.Sprintf("F-%d", i)
		lines = append(lines, evAt("f"+o, o, "shop", "unfulfilled", old, ""))
	}
	publish(t, env, lines...)
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		page, total, err := detector.ListMismatches(env.App.Store, detector.Filter{Pattern: detector.OrderNotAcknowledged}, 0, 10)
		if err != nil || total < 6 {
			return fmt.Errorf("%d mismatches %v", total, err)
		}
		_ = page
		return nil
	})
	// The rate is judged against the open orders of the last sweep.
	if _, err := env.App.Reconcile.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	fired := func(kind, subject, state string) func(map[string]any) bool {
		return func(m map[string]any) bool {
			return m["kind"] == kind && (subject == "" || m["subject"] == subject) && m["state"] == state
		}
	}
	evaluate := func() {
		if err := env.App.Policy.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	evaluate()
	evaluate() // a second round must not fire again
	apptest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := ops.count(fired(policy.KindMismatchRate, "all", policy.Firing)); n != 1 {
			return fmt.Errorf("mismatch_rate firing %d times", n)
		}
		if n := ops.count(fired(policy.KindChannelShare, "shop", policy.Firing)); n != 1 {
			return fmt.Errorf("channel_share shop firing %d times", n)
		}
		return nil
	})
	// Escalation after the shortened 1s window, once per mismatch: rounds
	// run until it fires, and once more, which must not fire again.
	apptest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		evaluate()
		if n := ops.count(fired(policy.KindEscalation, "", policy.Firing)); n != 6 {
			return fmt.Errorf("escalation fired %d times, want 6", n)
		}
		return nil
	})
	evaluate()
	apptest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := ops.count(fired(policy.KindEscalation, "", policy.Firing)); n != 6 {
			return fmt.Errorf("escalation fired %d times, want 6", n)
		}
		if n := escalated.count(func(m map[string]any) bool { return m["state"] == detector.StateEscalated }); n != 6 {
			return fmt.Errorf("%d escalated records", n)
		}
		return nil
	})
	// Clearing: the ERP acknowledges the six orders.
	lines = nil
	for i := 0; i < 6; i++ {
		o := fmt.Sprintf("F-%d", i)
		lines = append(lines, evAt("e"+o, o, "erp", "Pending Fulfillment", time.Now(), ""), evAt("x"+o, o, "wms", "confirmed", time.Now(), ""))
	}
	publish(t, env, lines...)
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, total, _ := detector.ListMismatches(env.App.Store, detector.Filter{State: detector.StateOpen, Pattern: detector.OrderNotAcknowledged}, 0, 1)
		if total != 0 {
			return fmt.Errorf("%d still open", total)
		}
		return nil
	})
	evaluate()
	apptest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := ops.count(fired(policy.KindMismatchRate, "all", policy.Cleared)); n != 1 {
			return fmt.Errorf("mismatch_rate cleared %d times", n)
		}
		if n := ops.count(fired(policy.KindEscalation, "", policy.Cleared)); n != 6 {
			return fmt.Errorf("escalation cleared %d times", n)
		}
		return nil
	})
	// source_silent: wms was steady; it stops.
	if n := ops.count(fired(policy.KindSourceSilent, "wms", policy.Firing)); n != 0 {
		t.Fatalf("a steady source was reported silent")
	}
	close(stop)
	<-done
	apptest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		evaluate()
		if n := ops.count(fired(policy.KindSourceSilent, "wms", policy.Firing)); n != 1 {
			return fmt.Errorf("source_silent wms firing %d times", n)
		}
		return nil
	})
	pub, _ := events.NewPublisher(env.NC)
	_, _ = pub.PublishRaw(context.Background(), []byte(evAt("again", "W-again", "wms", "confirmed", time.Now(), "")))
	apptest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		evaluate()
		if n := ops.count(fired(policy.KindSourceSilent, "wms", policy.Cleared)); n != 1 {
			return fmt.Errorf("source_silent wms cleared %d times", n)
		}
		return nil
	})
}

// importReply is the JSON reply of POST /v1/snapshots/{system}.
type importReply struct {
	Code     string `json:"code"`
	Rows     int    `json:"rows"`
	Accepted int    `json:"accepted"`
	Rejected int    `json:"rejected"`
	Applied  []struct {
		From int `json:"from"`
		To   int `json:"to"`
	} `json:"applied"`
	Refused []struct {
		Line    int    `json:"line"`
		OrderID string `json:"order_id"`
		Code    string `json:"code"`
	} `json:"refused"`
	Stopped *struct {
		Line int    `json:"line"`
		Code string `json:"code"`
	} `json:"stopped"`
}

// TestSnapshotImportBoundsOverHTTP checks the bounds of POST
// /v1/snapshots/{system}: a body declared over 64 MiB is refused with 413
// before anything is read; a field over 8 KiB refuses its row, named by
// line, while the other rows are applied; a record over 64 KiB stops the
// import with 413 naming its line, after the rows before it.
func TestSnapshotImportBoundsOverHTTP(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	now := time.Now().UTC().Format(time.RFC3339)

	// An unclosed quote and 65 MiB after it: one record as far as CSV goes.
	huge := "order_id,status\n\"B-1," + strings.Repeat("x", 65<<20)
	status, body := env.Do(t, "POST", "/v1/snapshots/erp", "text/csv", huge)
	if status != 413 || !strings.Contains(body, `"code":"too_large"`) || !strings.Contains(body, "64 MiB") {
		t.Fatalf("a body over 64 MiB: %d %.300s", status, body)
	}

	csv := "order_id,status,updated_at,attributes.note\n" +
		"F-1,Pending Fulfillment," + now + ",\n" +
		"F-2,Pending Fulfillment," + now + "," + strings.Repeat("y", 9<<10) + "\n" +
		"F-3,Billed," + now + ",short\n"
	status, body = env.Do(t, "POST", "/v1/snapshots/erp", "text/csv", csv)
	var st importReply
	if err := json.Unmarshal([]byte(body), &st); err != nil || status != 200 {
		t.Fatalf("a field over 8 KiB: %d %.300s", status, body)
	}
	if st.Rows != 3 || st.Accepted != 2 || st.Rejected != 1 || len(st.Refused) != 1 ||
		st.Refused[0].Line != 3 || st.Refused[0].Code != "field_too_long" || st.Refused[0].OrderID != "F-2" ||
		fmt.Sprint(st.Applied) != "[{2 2} {4 4}]" {
		t.Fatalf("a field over 8 KiB: %.500s", body)
	}

	csv = "order_id,status,updated_at\n" +
		"L-1,Pending Fulfillment," + now + "\n" +
		"L-2,\"" + strings.Repeat("z\n", 40<<10) + "\"," + now + "\n" +
		"L-3,Billed," + now + "\n"
	status, body = env.Do(t, "POST", "/v1/snapshots/erp", "text/csv", csv)
	st = importReply{}
	_ = json.Unmarshal([]byte(body), &st)
	if status != 413 || st.Code != "record_too_long" || st.Stopped == nil || st.Stopped.Line != 3 ||
		st.Rows != 1 || st.Accepted != 1 || fmt.Sprint(st.Applied) != "[{2 2}]" {
		t.Fatalf("a record over 64 KiB: %d %.500s", status, body)
	}
}
