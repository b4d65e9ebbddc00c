package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

const policyYAML = config.SixSystems + `flows:
  - {from: shop, to: erp, sla: 5m}
alerts:
  mismatch_rate: 0.3
  channel_share: 0.6
  silent_floor: 2s
reconcile:
  every: 1h
`

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("policy.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func openStore(t *testing.T, dir string) *projections.Store {
	t.Helper()
	store, err := projections.Open(dir, projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func newPolicy(cfg *config.Config, store *projections.Store, c *clock) *Policy {
	p, err := New(Options{Config: cfg, Store: store, Logger: zerolog.Nop(), Now: c.now})
	if err != nil {
		panic(err) // the options above are complete
	}
	return p
}

// alert returns the stored ops alert of kind and subject (State "" when
// there is none).
func alert(t *testing.T, store *projections.Store, kind, subject string) OpsAlert {
	t.Helper()
	all, err := List(store)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Kind == kind && a.Subject == subject {
			return a
		}
	}
	return OpsAlert{}
}

func evaluate(t *testing.T, p *Policy) {
	t.Helper()
	if err := p.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSourceSilentSurvivesRestart: the warehouse sent every second, then
// driftwatch restarted (policy stopped, store closed and reopened) and the
// warehouse stayed quiet: the new policy reports it silent from the history
// it stored, without a single new arrival. Its healthy twin, the shop,
// sends again after the restart and is not reported; a system no longer
// configured is not judged from its stored history.
func TestSourceSilentSurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	store := openStore(t, dir)
	p := newPolicy(cfg, store, c)
	for range 30 {
		c.t = c.t.Add(time.Second)
		p.Arrived("wms", 3, c.t)
		p.Arrived("shop", 3, c.t)
		p.Arrived("retired", 3, c.t)
	}
	evaluate(t, p)
	if a := alert(t, store, KindSourceSilent, "wms"); a.State != "" {
		t.Fatalf("a steady source reported: %+v", a)
	}
	p.Flush()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = openStore(t, dir)
	t.Cleanup(func() { store.Close() })
	c.t = c.t.Add(time.Hour) // driftwatch was down for an hour: nobody's silence
	p = newPolicy(cfg, store, c)
	evaluate(t, p)
	if wms := alert(t, store, KindSourceSilent, "wms"); wms.State != "" {
		t.Fatalf("driftwatch's own downtime was counted as wms's silence: %+v", wms)
	}
	c.t = c.t.Add(time.Minute) // the usual gap is 1s: the limit is the 2s floor
	p.Arrived("shop", 1, c.t)
	evaluate(t, p)
	wms := alert(t, store, KindSourceSilent, "wms")
	if wms.State != Firing || !strings.Contains(wms.Message, "wms has sent no event for 1m0s") {
		t.Fatalf("wms after the restart: %+v", wms)
	}
	if shop := alert(t, store, KindSourceSilent, "shop"); shop.State != "" {
		t.Fatalf("shop, sending again, reported: %+v", shop)
	}
	if retired := alert(t, store, KindSourceSilent, "retired"); retired.State != "" {
		t.Fatalf("a system no longer configured reported: %+v", retired)
	}
	// wms sends again: it clears, and says so.
	c.t = c.t.Add(time.Second)
	p.Arrived("wms", 1, c.t)
	evaluate(t, p)
	wms = alert(t, store, KindSourceSilent, "wms")
	if wms.State != Cleared || !strings.Contains(wms.Message, "sending again") || strings.Contains(wms.Message, "has sent no event") {
		t.Fatalf("wms cleared: %+v", wms)
	}
	p.Flush()
}

// TestClearedMessagesSayWhy: a rate alert's message says where the value
// stands when it clears (back at or below the threshold), never "above".
func TestClearedMessagesSayWhy(t *testing.T) {
	cfg := testConfig(t)
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	p := newPolicy(cfg, store, c)
	ctx := context.Background()
	judge := func(in Inputs) {
		t.Helper()
		if in.PeriodBySystem == nil {
			in.PeriodBySystem = map[string]int{}
		}
		if err := p.judgeRates(ctx, in, c.t); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(time.Minute)
	}
	judge(Inputs{ActiveOrders: 10, OrdersInMismatch: 5, ReportActive: 10, PeriodBySystem: map[string]int{"shop": 8, "erp": 2}, PeriodTotal: 10})
	rate, share := alert(t, store, KindMismatchRate, "all"), alert(t, store, KindChannelShare, "shop")
	if rate.State != Firing || !strings.Contains(rate.Message, "50.0% of active orders are in mismatch (5 of 10") || !strings.Contains(rate.Message, "above the 30.0% threshold") {
		t.Fatalf("mismatch_rate firing: %+v", rate)
	}
	if share.State != Firing || !strings.Contains(share.Message, "80% of the mismatches") || !strings.Contains(share.Message, "above the 60% threshold") {
		t.Fatalf("channel_share firing: %+v", share)
	}
	judge(Inputs{ActiveOrders: 10, OrdersInMismatch: 1, ReportActive: 10, PeriodBySystem: map[string]int{"erp": 6}, PeriodTotal: 6})
	rate, share = alert(t, store, KindMismatchRate, "all"), alert(t, store, KindChannelShare, "shop")
	for _, a := range []OpsAlert{rate, share} {
		if a.State != Cleared || strings.Contains(a.Message, "above") || !strings.Contains(a.Message, "back at or below") {
			t.Errorf("%s cleared: %q", a.Kind, a.Message)
		}
	}
	// A share over the threshold clears when too few mismatches are left
	// to judge it, and says that.
	judge(Inputs{PeriodBySystem: map[string]int{"erp": 8, "shop": 1}, PeriodTotal: 9})
	if a := alert(t, store, KindChannelShare, "erp"); a.State != Firing {
		t.Fatalf("channel_share erp: %+v", a)
	}
	judge(Inputs{PeriodBySystem: map[string]int{"erp": 3}, PeriodTotal: 3})
	if a := alert(t, store, KindChannelShare, "erp"); a.State != Cleared || strings.Contains(a.Message, "above") || !strings.Contains(a.Message, "3 mismatches in all are fewer than the 5 needed") {
		t.Fatalf("channel_share erp cleared with too few: %q", a.Message)
	}
}

// TestLiveMismatchRate: the live rate divides the orders in mismatch now by
// the last report's active orders plus the orders first in mismatch since
// the report's end, so an order only the gate saw after the report cannot
// lift the rate above 1 (16 of 16 in the report, one more since: 17 of 17,
// not 17 of 16). A report without active orders (written before they were
// counted) is not judged.
func TestLiveMismatchRate(t *testing.T) {
	cfg := testConfig(t)
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	eng, err := detector.NewEngine(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c := &clock{t: t0.Add(time.Minute)}
	p := newPolicy(cfg, store, c)
	raise := func(order string, at time.Time) string {
		t.Helper()
		m := &detector.Mismatch{}
		m.AlertID = detector.AlertID(order, detector.IllegalTransition, "shop", "erp")
		m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, detector.IllegalTransition, detector.High, detector.ByValidate
		m.Source = &detector.Side{System: "shop"}
		b := store.NewBatch()
		if err := eng.Raise(b, m, at); err != nil {
			t.Fatal(err)
		}
		if err := store.Commit(b); err != nil {
			t.Fatal(err)
		}
		return m.AlertID
	}
	for i := range 16 {
		raise(fmt.Sprintf("R-%02d", i), t0.Add(-time.Duration(i+1)*time.Minute))
	}
	save := func(rep *reconcile.Report) {
		t.Helper()
		rep.ID, rep.PeriodEnd = fmt.Sprint(c.t.UnixNano()), projections.FormatTime(t0.UnixNano())
		if err := reconcile.Save(store, rep); err != nil {
			t.Fatal(err)
		}
	}
	// A report from before active orders were counted: nothing judged.
	save(&reconcile.Report{OpenOrders: 16, OrdersInMismatch: 16})
	evaluate(t, p)
	if a := alert(t, store, KindMismatchRate, "all"); a.State != "" {
		t.Fatalf("judged against a report without active orders: %+v", a)
	}
	save(&reconcile.Report{OpenOrders: 16, ActiveOrders: 16, OrdersInMismatch: 16})
	raise("GATE-1", t0.Add(30*time.Second)) // after the report's end, no rows
	evaluate(t, p)
	a := alert(t, store, KindMismatchRate, "all")
	if a.State != Firing || a.Value != 1 || !strings.Contains(a.Message, "(17 of 17: the last reconciliation's 16 active orders and 1 in mismatch since)") {
		t.Fatalf("live rate: %+v", a)
	}
	// Healthy twin: a report of 40 active orders with the same 16 in
	// mismatch, and all but two resolved since: 3 of 41.
	save(&reconcile.Report{OpenOrders: 40, ActiveOrders: 40, OrdersInMismatch: 16})
	for i := 2; i < 16; i++ {
		if _, err := resolve(store, eng, detector.AlertID(fmt.Sprintf("R-%02d", i), detector.IllegalTransition, "shop", "erp"), c.t); err != nil {
			t.Fatal(err)
		}
	}
	evaluate(t, p)
	a = alert(t, store, KindMismatchRate, "all")
	if a.State != Cleared || a.History[len(a.History)-1].Value != 3.0/41 || !strings.Contains(a.Message, "(3 of 41") {
		t.Fatalf("live rate after the fixes: %+v", a)
	}
}

func resolve(store *projections.Store, eng *detector.Engine, alertID string, at time.Time) (*detector.Mismatch, error) {
	var m *detector.Mismatch
	err := func() error {
		b := store.NewBatch()
		var err error
		if m, err = eng.Resolve(b, alertID, at, "ops", "fixed"); err != nil {
			b.Close()
			return err
		}
		return store.Commit(b)
	}()
	return m, err
}

// TestListSkipsArrivals: the stored arrival histories live beside the ops
// alert records and List returns only the records.
func TestListSkipsArrivals(t *testing.T) {
	cfg := testConfig(t)
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	p := newPolicy(cfg, store, c)
	p.Arrived("wms", 1, c.t)
	if err := p.saveArrivals(); err != nil {
		t.Fatal(err)
	}
	if _, closer, err := store.Get([]byte("o/~arrivals/wms")); err != nil {
		t.Fatalf("arrivals of wms not stored: %v", err)
	} else {
		closer.Close()
	}
	if err := store.Set(opsKey(KindSourceSilent, "wms"), []byte(`{"kind":"source_silent","subject":"wms","state":"cleared"}`)); err != nil {
		t.Fatal(err)
	}
	all, err := List(store)
	if err != nil || len(all) != 1 || all[0].Kind != KindSourceSilent {
		t.Fatalf("List: %+v %v", all, err)
	}
}

// openMismatches starts a policy with a detector on a fresh store, and
// records an open order_not_acknowledged mismatch for each order.
func openMismatches(t *testing.T, orders ...string) (*projections.Store, *clock, *detector.Detector, *Policy, []*detector.Mismatch) {
	t.Helper()
	cfg := testConfig(t)
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	eng, err := detector.NewEngine(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	det, err := detector.New(detector.Options{Store: store, Engine: eng, Now: c.now, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	p := newPolicy(cfg, store, c)
	p.SetDetector(det)
	var open []*detector.Mismatch
	for _, order := range orders {
		m := &detector.Mismatch{}
		m.AlertID = detector.AlertID(order, detector.OrderNotAcknowledged, "shop", "erp")
		m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, detector.OrderNotAcknowledged, detector.High, detector.BySLA
		m.Source = &detector.Side{System: "shop", Status: "unfulfilled"}
		if err := det.Record([]*detector.Mismatch{m}); err != nil {
			t.Fatal(err)
		}
		open = append(open, m)
	}
	return store, c, det, p, open
}

// TestEscalationSkipsWhatWasResolved: two mismatches were overdue when the
// policy read them; one is resolved before the escalation's batch. Only the
// other is escalated and fires an ops escalation; the resolved one fires
// nothing (it used to fire for a mismatch nobody had open).
func TestEscalationSkipsWhatWasResolved(t *testing.T) {
	store, c, det, p, overdue := openMismatches(t, "E-1", "E-2")
	if _, err := det.Resolve(overdue[1].AlertID, "ops", "fixed meanwhile"); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(48 * time.Hour)
	if err := p.escalate(context.Background(), overdue, nil, c.t); err != nil {
		t.Fatal(err)
	}
	if a := alert(t, store, KindEscalation, overdue[0].AlertID); a.State != Firing {
		t.Fatalf("the open mismatch's escalation: %+v", a)
	}
	if a := alert(t, store, KindEscalation, overdue[1].AlertID); a.State != "" {
		t.Fatalf("a resolved mismatch fired an escalation: %+v", a)
	}
	var states []string
	if err := detector.ScanMismatches(store, detector.Filter{}, func(m *detector.Mismatch) error {
		states = append(states, m.OrderID+" "+m.State)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(states)
	if strings.Join(states, ",") != "E-1 escalated,E-2 resolved" {
		t.Fatalf("mismatch states %v", states)
	}
}

// TestEscalationNamesTheOwner: an escalated mismatch, its audit entry and
// the ops alert say after how long and who owned it at the escalation
// (assigned after it was read as overdue: the owner now), or that nobody
// did.
func TestEscalationNamesTheOwner(t *testing.T) {
	store, c, det, p, open := openMismatches(t, "W-1", "W-2")
	ids := []string{open[0].AlertID, open[1].AlertID}
	c.t = c.t.Add(25 * time.Hour)
	if _, err := det.Assign(ids[0], "team-erp", "lead", ""); err != nil {
		t.Fatal(err)
	}
	evaluate(t, p)
	for i, want := range []string{"escalated after 24h; owner: team-erp", "escalated after 24h; unassigned"} {
		m, err := detector.GetMismatch(store, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if m.State != detector.StateEscalated || m.Escalation != want || m.Audit[len(m.Audit)-1].Note != want {
			t.Errorf("%s: state %s, escalation %q, audit %+v", m.OrderID, m.State, m.Escalation, m.Audit[len(m.Audit)-1])
		}
		if a := alert(t, store, KindEscalation, ids[i]); a.State != Firing || !strings.Contains(a.Message, want) {
			t.Errorf("%s: ops alert %+v", m.OrderID, a)
		}
	}
}

// TestClusterInstanceJudgesSourcesOnlyWithPartitionZero: in a cluster,
// every instance hears every source, and only the one that owns partition
// 0 judges silence; its ops alerts name it.
func TestClusterInstanceJudgesSourcesOnlyWithPartitionZero(t *testing.T) {
	cfg := testConfig(t)
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	judges := false
	p, err := New(Options{Config: cfg, Store: store, Logger: zerolog.Nop(), Now: c.now, Instance: "b",
		JudgesSources: func() bool { return judges }})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		c.t = c.t.Add(time.Second)
		p.Arrived("wms", 3, c.t)
	}
	c.t = c.t.Add(time.Minute)
	evaluate(t, p)
	if a := alert(t, store, KindSourceSilent, "wms"); a.State != "" {
		t.Fatalf("an instance without partition 0 judged a silent source: %+v", a)
	}
	judges = true
	evaluate(t, p)
	if a := alert(t, store, KindSourceSilent, "wms"); a.State != Firing || a.Instance != "b" {
		t.Fatalf("the instance with partition 0: %+v", a)
	}
}

// TestSourcesObservedFromTheLog: an instance of a cluster learns the
// sources' arrivals from what the log holds (Options.Observe), not from
// its own share of the events: what a source sent since the last round
// counts, its silence fires once the log stops growing for it, and what
// came while another instance judged counts when this one judges again.
func TestSourcesObservedFromTheLog(t *testing.T) {
	cfg := testConfig(t)
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	log := map[string]Observed{}
	judges := true
	p, err := New(Options{Config: cfg, Store: store, Logger: zerolog.Nop(), Now: c.now,
		JudgesSources: func() bool { return judges },
		Observe: func(context.Context) (map[string]Observed, error) {
			out := map[string]Observed{}
			for k, v := range log {
				out[k] = v
			}
			return out, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(sys string, n uint64) {
		o := log[sys]
		o.Count += n
		o.Last = c.t
		log[sys] = o
	}
	send("wms", 1000) // history before the first round: a baseline, not arrivals
	evaluate(t, p)
	for range 30 {
		c.t = c.t.Add(time.Second)
		send("wms", 3)
		send("shop", 3)
		evaluate(t, p)
	}
	if a := alert(t, store, KindSourceSilent, "wms"); a.State != "" {
		t.Fatalf("a steady source reported: %+v", a)
	}
	c.t = c.t.Add(time.Minute) // the usual gap is 1s: the limit is the floor
	send("shop", 3)
	evaluate(t, p)
	if wms := alert(t, store, KindSourceSilent, "wms"); wms.State != Firing || !strings.Contains(wms.Message, "wms has sent no event for 1m0s") {
		t.Fatalf("wms quiet in the log for a minute: %+v", wms)
	}
	if shop := alert(t, store, KindSourceSilent, "shop"); shop.State != "" {
		t.Fatalf("shop, still sending, reported: %+v", shop)
	}
	// Another instance judges for a while: back, this one counts what
	// the log gained meanwhile, at the time it arrived.
	judges = false
	c.t = c.t.Add(time.Second)
	send("wms", 5)
	evaluate(t, p)
	if wms := alert(t, store, KindSourceSilent, "wms"); wms.State != Firing {
		t.Fatalf("wms judged by an instance that does not judge sources: %+v", wms)
	}
	judges = true
	c.t = c.t.Add(time.Second)
	evaluate(t, p)
	if wms := alert(t, store, KindSourceSilent, "wms"); wms.State != Cleared || !strings.Contains(wms.Message, "its last event came 1s ago") {
		t.Fatalf("wms sent while another instance judged: %+v", wms)
	}
}
