package reconcile

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestReportFixture checks every figure of a report against numbers worked
// out by hand for five mismatches.
func TestReportFixture(t *testing.T) {
	cfg, err := config.LoadFile("../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	store, eng := testStore(t, cfg)
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
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
	// detected at t0+d: time to detect = d - onset.
	type row struct {
		m        *detector.Mismatch
		detected time.Duration
		resolved time.Duration // 0: still open
	}
	rows := []row{
		{mk("A", detector.OrderNotAcknowledged, detector.High, "shop", "erp", 0, "100.50", "EUR"), 10 * time.Second, 0},
		{mk("A", detector.CancelNotPropagated, detector.Critical, "shop", "erp", 0, "100.50", "EUR"), 20 * time.Second, 0},
		{mk("B", detector.PaymentWithoutOrder, detector.Critical, "stripe", "erp", 0, "20", "EUR"), 30 * time.Second, 0},
		{mk("C", detector.StatusNotPropagated, detector.Medium, "erp", "wms", 0, "", ""), 40 * time.Second, 100 * time.Second},
		{mk("D", detector.ShipmentNotReflected, detector.Medium, "amazon", "erp", 0, "5", "USD"), 100 * time.Second, 0},
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
	rep := &Report{OpenOrders: 8}
	if err := Summarise(store, rep, t0, t0.Add(200*time.Second)); err != nil {
		t.Fatal(err)
	}
	// By hand: 4 open mismatches on 3 orders (A, B, D); rate 3/8 = 0.375.
	// Sources of the open ones: shop 2, stripe 1, amazon 1.
	// Time to detect over all 5 (detected in the period): 10, 20, 30, 40,
	// 100 s: mean 40, p90 (nearest rank, 5*0.9 -> 5th) 100.
	// Time to resolve: C, 100-40 = 60 s.
	// Value at risk: EUR 100.50 + 100.50 + 20 = 221.00; USD 5.00.
	// Oldest unresolved: A's order_not_acknowledged, detected at t0+10s,
	// 190 s old at the period's end.
	checks := []struct {
		name      string
		got, want any
	}{
		{"open mismatches", rep.OpenMismatches, 4},
		{"orders in mismatch", rep.OrdersInMismatch, 3},
		{"mismatch rate", rep.MismatchRate, 0.375},
		{"by pattern cancel", rep.ByPattern[detector.CancelNotPropagated], 1},
		{"by severity critical", rep.BySeverity[detector.Critical], 2},
		{"by severity medium", rep.BySeverity[detector.Medium], 1},
		{"pair shop->erp", rep.BySystemPair["shop->erp"], 2},
		{"pair erp->wms (resolved)", rep.BySystemPair["erp->wms"], 0},
		{"share shop", rep.SystemShare["shop"], 0.5},
		{"share stripe", rep.SystemShare["stripe"], 0.25},
		{"ttd count", rep.TimeToDetect.Count, 5},
		{"ttd mean", rep.TimeToDetect.MeanSeconds, 40.0},
		{"ttd p90", rep.TimeToDetect.P90Seconds, 100.0},
		{"ttr count", rep.TimeToResolve.Count, 1},
		{"ttr mean", rep.TimeToResolve.MeanSeconds, 60.0},
		{"value EUR", rep.ValueAtRisk["EUR"], "221.00"},
		{"value USD", rep.ValueAtRisk["USD"], "5.00"},
		{"oldest", rep.Oldest.AlertID, rows[0].m.AlertID},
		{"oldest age", rep.Oldest.AgeSeconds, 190.0},
		{"top at risk", rep.TopAtRisk[0].Amount, "100.50"},
		{"top at risk last", rep.TopAtRisk[len(rep.TopAtRisk)-1].Amount, "5"},
		{"period total", rep.PeriodTotal, 5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	var text, csv bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "37.5%") || !strings.Contains(text.String(), "221.00 EUR") {
		t.Errorf("text report:\n%s", text.String())
	}
	if err := rep.WriteCSV(&csv); err != nil || !strings.Contains(csv.String(), "orders,mismatch_rate,0.375") {
		t.Errorf("csv report:\n%s", csv.String())
	}
}
