package reconcile

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// TestReportFixture checks every figure of a report against numbers worked
// out by hand for seven mismatches on six orders.
func TestReportFixture(t *testing.T) {
	cfg, err := config.LoadFile("../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	store, eng := testStore(t, cfg)
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// B's value is on the ERP's row only: its mismatch's source (the
	// payment processor) carries none.
	tx := store.NewTx(false)
	ev := `{"event_id":"b-erp","order_id":"B","system":"erp","status":"Pending Fulfillment","occurred_at":"` + t0.Format(time.RFC3339) + `","attributes":{"amount":"20","currency":"EUR"}}`
	if _, err := projector.NewApplier(cfg).Apply(tx, projections.Delivery{Subject: "driftwatch.in.erp", Data: []byte(ev), Seq: 1, Received: t0}); err != nil {
		t.Fatal(err)
	}
	if err := store.CommitTx(tx, true); err != nil {
		t.Fatal(err)
	}
	mk := func(order, pattern, sev, src, tgt string, onset time.Duration, amount, cur string) *detector.Mismatch {
		m := &detector.Mismatch{FlowFrom: src, FlowTo: tgt}
		m.AlertID = detector.AlertID(order, pattern, src, tgt)
		m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, pattern, sev, detector.BySLA
		m.Source = &detector.Side{System: src}
		m.OnsetNanos = t0.Add(onset).UnixNano()
		m.DeadlineNanos = m.OnsetNanos
		m.Amount, m.Currency = amount, cur
		return m
	}
	// E's source clock runs ten minutes ahead, but the log received its
	// event at t0+45s: its onset counts as t0+45s. F's onset is an hour
	// ahead with no received time to bound it: skewed.
	e := mk("E", detector.ClockSkew, detector.Low, "carrier", "", 10*time.Minute, "", "")
	e.Source.ReceivedAt = t0.Add(45 * time.Second).Format(time.RFC3339Nano)
	f := mk("F", detector.IllegalTransition, detector.High, "wms", "", time.Hour, "", "")
	// detected at t0+d: time to detect = d - onset.
	type row struct {
		m        *detector.Mismatch
		detected time.Duration
		resolved time.Duration // 0: still open
	}
	rows := []row{
		{mk("A", detector.OrderNotAcknowledged, detector.High, "shop", "erp", 0, "100.50", "EUR"), 10 * time.Second, 0},
		{mk("A", detector.CancelNotPropagated, detector.Critical, "shop", "erp", 0, "100.50", "EUR"), 20 * time.Second, 0},
		{mk("B", detector.PaymentWithoutOrder, detector.Critical, "stripe", "erp", 0, "", ""), 30 * time.Second, 0},
		{mk("C", detector.StatusNotPropagated, detector.Medium, "erp", "wms", 0, "", ""), 40 * time.Second, 100 * time.Second},
		{mk("D", detector.ShipmentNotReflected, detector.Medium, "amazon", "erp", 0, "5", "USD"), 100 * time.Second, 0},
		{e, 50 * time.Second, 0},
		{f, 60 * time.Second, 0},
	}
	for _, r := range rows {
		b := store.NewBatch()
		if err := eng.Raise(b, r.m, t0.Add(r.detected)); err != nil {
			t.Fatal(err)
		}
		if r.resolved != 0 {
			if _, err := eng.Resolve(b, r.m.AlertID, t0.Add(r.resolved), "ops", "fixed"); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	// The sweep counted 8 active orders, A, B and D among them; E and F
	// have no rows (only the gate or a finding saw them).
	rep := &Report{ActiveOrders: 8, reconciled: map[string]struct{}{"A": {}, "B": {}, "D": {}}}
	if err := Summarise(store, rep, t0, t0.Add(200*time.Second)); err != nil {
		t.Fatal(err)
	}
	// By hand: 6 open mismatches on 5 orders (A, B, D, E, F); active
	// orders 8 + E + F = 10; rate 5/10 = 0.5.
	// Sources of the open ones: shop 2, stripe 1, amazon 1, carrier 1,
	// wms 1.
	// Time to detect over the 7 detected in the period: A 10, A 20, B 30,
	// C 40, D 100, E 50 - 45 = 5 s; F skewed. Mean 205/6 = 34.167, p90
	// (nearest rank, 6*0.9 -> 6th) 100.
	// Time to resolve: C, 100-40 = 60 s.
	// Value at risk: EUR A 100.50 once + B 20 (its ERP row) = 120.50; USD
	// 5.00.
	// Oldest unresolved: A's order_not_acknowledged, detected at t0+10s,
	// 190 s old at the period's end.
	checks := []struct {
		name      string
		got, want any
	}{
		{"open mismatches", rep.OpenMismatches, 6},
		{"orders in mismatch", rep.OrdersInMismatch, 5},
		{"active orders", rep.ActiveOrders, 10},
		{"mismatch rate", rep.MismatchRate, 0.5},
		{"by pattern cancel", rep.ByPattern[detector.CancelNotPropagated], 1},
		{"by severity critical", rep.BySeverity[detector.Critical], 2},
		{"by severity medium", rep.BySeverity[detector.Medium], 1},
		{"pair shop->erp", rep.BySystemPair["shop->erp"], 2},
		{"pair erp->wms (resolved)", rep.BySystemPair["erp->wms"], 0},
		{"share shop", rep.SystemShare["shop"], 0.333},
		{"share stripe", rep.SystemShare["stripe"], 0.167},
		{"ttd count", rep.TimeToDetect.Count, 6},
		{"ttd skewed", rep.TimeToDetect.Skewed, 1},
		{"ttd mean", rep.TimeToDetect.MeanSeconds, 34.167},
		{"ttd p90", rep.TimeToDetect.P90Seconds, 100.0},
		{"ttr count", rep.TimeToResolve.Count, 1},
		{"ttr mean", rep.TimeToResolve.MeanSeconds, 60.0},
		{"value EUR", rep.ValueAtRisk["EUR"], "120.50"},
		{"value USD", rep.ValueAtRisk["USD"], "5.00"},
		{"oldest", rep.Oldest.AlertID, rows[0].m.AlertID},
		{"oldest age", rep.Oldest.AgeSeconds, 190.0},
		{"top at risk orders", len(rep.TopAtRisk), 3},
		{"top at risk", rep.TopAtRisk[0].OrderID + " " + rep.TopAtRisk[0].Amount + " " + rep.TopAtRisk[0].Currency, "A 100.50 EUR"},
		{"top at risk patterns", strings.Join(rep.TopAtRisk[0].Patterns, ","), detector.CancelNotPropagated + "," + detector.OrderNotAcknowledged},
		{"top at risk worst", rep.TopAtRisk[0].Pattern + " " + rep.TopAtRisk[0].Severity, detector.CancelNotPropagated + " " + detector.Critical},
		{"top at risk mismatches", rep.TopAtRisk[0].Mismatches, 2},
		{"top at risk from a row", rep.TopAtRisk[1].OrderID + " " + rep.TopAtRisk[1].Amount, "B 20"},
		{"top at risk last", rep.TopAtRisk[2].OrderID + " " + rep.TopAtRisk[2].Amount, "D 5"},
		{"period total", rep.PeriodTotal, 7},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	var text, csv bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"50.0% (orders in mismatch / active orders)", "active orders in the period  10", "120.50 EUR",
		"mean 34.2s, p90 1m40s (6); 1 skewed", "mean 1m0s, p90 1m0s (1)", "3m10s old", "opened by this run",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteCSV(&csv); err != nil || !strings.Contains(csv.String(), "orders,mismatch_rate,0.5") ||
		!strings.Contains(csv.String(), "orders,active,10") || !strings.Contains(csv.String(), "time_to_detect,skewed,1") {
		t.Errorf("csv report:\n%s", csv.String())
	}
}

func TestFmtSeconds(t *testing.T) {
	for _, tc := range []struct {
		sec  float64
		want string
	}{
		{0, "0s"}, {0.2504, "250ms"}, {34.1666, "34.2s"}, {155.4, "2m35s"}, {3599.6, "1h0m0s"}, {7384, "2h3m0s"},
	} {
		if got := fmtSeconds(tc.sec); got != tc.want {
			t.Errorf("fmtSeconds(%v) = %q, want %q", tc.sec, got, tc.want)
		}
	}
}

// TestDueAtStart: a sweep runs at start when the latest report is older
// than a period or predates active orders; not with a fresh report, and
// not on a store without any.
func TestDueAtStart(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		rep  *Report
		due  bool
	}{
		{"no report", nil, false},
		{"fresh", &Report{ID: "a", PeriodEnd: fmtTime(now.Add(-time.Hour)), Orders: 5, ActiveOrders: 3}, false},
		{"missed while down", &Report{ID: "b", PeriodEnd: fmtTime(now.Add(-25 * time.Hour)), Orders: 5, ActiveOrders: 3}, true},
		{"older format", &Report{ID: "c", PeriodEnd: fmtTime(now.Add(-time.Hour)), Orders: 5}, true},
	} {
		store, err := projections.Open(t.TempDir(), projections.Options{CacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if tc.rep != nil {
			if err := Save(store, tc.rep); err != nil {
				t.Fatal(err)
			}
		}
		r := New(Options{Store: store, Every: 24 * time.Hour, Now: func() time.Time { return now }})
		if got := r.dueAtStart(); got != tc.due {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.due)
		}
		store.Close()
	}
}

// TestReportCSVNeutralisesFormulas checks that a value from an event (here
// a currency, from attributes.currency) that a spreadsheet would run as a
// formula is written with a leading quote, and so is a negative amount.
func TestReportCSVNeutralisesFormulas(t *testing.T) {
	rep := &Report{ID: "r1", ValueAtRisk: map[string]string{`=HYPERLINK("http://x","y")`: "-12.50", "EUR": "3.00"}}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`value_at_risk,"'=HYPERLINK(""http://x"",""y"")",'-12.50` + "\n", "value_at_risk,EUR,3.00\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("csv report lacks %q:\n%s", want, buf.String())
		}
	}
}
