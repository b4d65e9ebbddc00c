package reconcile

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// loader writes events straight through the projection state machine, with
// the received time the log would have given them.
type loader struct {
	t       *testing.T
	store   *projections.Store
	applier *projections.Applier
	tx      *projections.Tx
	seq     uint64
}

func newLoader(t *testing.T, cfg *config.Config, store *projections.Store) *loader {
	return &loader{t: t, store: store, applier: projector.NewApplier(cfg), tx: store.NewTx(false)}
}

// event applies one status event; extra is appended to the JSON object.
func (l *loader) event(order, system, status, field string, occurred, received time.Time, extra string) {
	l.t.Helper()
	l.seq++
	data := fmt.Sprintf(`{"event_id":"%d","order_id":"%s","system":"%s","status":"%s","status_field":"%s","occurred_at":"%s"%s}`,
		l.seq, order, system, status, field, occurred.UTC().Format(time.RFC3339Nano), extra)
	if _, err := l.applier.Apply(l.tx, projections.Delivery{Subject: "driftwatch.in." + system, Data: []byte(data), Seq: l.seq, Received: received}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *loader) commit() {
	l.t.Helper()
	if err := l.store.CommitTx(l.tx, true); err != nil {
		l.t.Fatal(err)
	}
	l.tx = l.store.NewTx(false)
}

// raise stores a mismatch found outside the flows (as the gate does).
func raise(t *testing.T, det *detector.Detector, m *detector.Mismatch) {
	t.Helper()
	if err := det.Update(func(b *pebble.Batch, e *detector.Engine, now time.Time) error { return e.Raise(b, m, now) }); err != nil {
		t.Fatal(err)
	}
}

const kpiFlows = `flows:
  - {from: shop, to: erp, sla: 5m, dimensions: [fulfilment]}
  - {from: erp,  to: wms, sla: 5m, dimensions: [fulfilment]}
`

// TestMismatchRateOverActiveOrders runs sweeps over scripted stores: the
// rate's denominator is the orders active in the period (delivered and
// cancelled orders that agree and saw nothing in the period are closed
// and left out; one delivered during the period counts), and an order only
// the gate saw counts on both sides, so the rate stays at most 1. Each
// drifted store has a healthy twin.
func TestMismatchRateOverActiveOrders(t *testing.T) {
	cfg, err := config.Parse("kpi.yaml", []byte(config.SixSystems+kpiFlows))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old, recent := now.Add(-48*time.Hour), now.Add(-10*time.Minute)
	delivered := func(l *loader, order string, at time.Time) {
		l.event(order, "shop", "delivered", "shipment_status", at, at, "")
		l.event(order, "erp", "Billed", "status", at, at, "")
		l.event(order, "wms", "delivered", "status", at, at, "")
	}
	cancelled := func(l *loader, order string, at time.Time) {
		l.event(order, "shop", "customer", "cancel_reason", at, at, "")
		l.event(order, "erp", "Cancelled", "status", at, at, "")
	}
	shipped := func(l *loader, order string, at time.Time) {
		l.event(order, "shop", "fulfilled", "fulfillment_status", at, at, "")
		l.event(order, "erp", "Billed", "status", at, at, "")
		l.event(order, "wms", "shipped", "status", at, at, "")
	}
	gateOnly := func(t *testing.T, det *detector.Detector, order string) {
		m := &detector.Mismatch{}
		m.AlertID = detector.AlertID(order, detector.IllegalTransition, "shop", "erp")
		m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, detector.IllegalTransition, detector.High, detector.ByValidate
		m.Source = &detector.Side{System: "shop"}
		raise(t, det, m)
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, l *loader, det *detector.Detector)
		// orders with rows, not closed, active, in mismatch
		orders, open, active, inMismatch int
		rate                             float64
	}{
		{
			name: "drift among closed orders",
			build: func(t *testing.T, l *loader, det *detector.Detector) {
				for i := range 10 {
					delivered(l, fmt.Sprintf("DL-%d", i), old)
				}
				delivered(l, "DL-recent", recent) // closed during the period: active
				cancelled(l, "CX-1", old)
				cancelled(l, "CX-2", old)
				for i := range 3 {
					shipped(l, fmt.Sprintf("SH-%d", i), old)
				}
				// Two the ERP never heard of: the sweep opens them.
				l.event("DR-1", "shop", "fulfilled", "fulfillment_status", old, old, "")
				l.event("DR-2", "shop", "fulfilled", "fulfillment_status", old, old, "")
				l.commit()
				gateOnly(t, det, "GATE-1")
			},
			orders: 18, open: 5, active: 7, inMismatch: 3, rate: 0.429,
		},
		{
			name: "healthy twin of drift among closed orders",
			build: func(t *testing.T, l *loader, det *detector.Detector) {
				for i := range 10 {
					delivered(l, fmt.Sprintf("DL-%d", i), old)
				}
				delivered(l, "DL-recent", recent)
				cancelled(l, "CX-1", old)
				cancelled(l, "CX-2", old)
				for i := range 3 {
					shipped(l, fmt.Sprintf("SH-%d", i), old)
				}
				shipped(l, "DR-1", old)
				shipped(l, "DR-2", old)
				l.commit()
			},
			orders: 18, open: 5, active: 6, inMismatch: 0, rate: 0,
		},
		{
			// More orders in mismatch than orders with rows that are
			// not closed: the gate saw two orders the log never did.
			name: "gate-only orders",
			build: func(t *testing.T, l *loader, det *detector.Detector) {
				for i := range 10 {
					cancelled(l, fmt.Sprintf("CX-%d", i), old)
				}
				l.event("DR-1", "shop", "fulfilled", "fulfillment_status", old, old, "")
				l.commit()
				gateOnly(t, det, "GATE-1")
				gateOnly(t, det, "GATE-2")
			},
			orders: 11, open: 1, active: 3, inMismatch: 3, rate: 1,
		},
		{
			name: "healthy twin of gate-only orders",
			build: func(t *testing.T, l *loader, det *detector.Detector) {
				for i := range 10 {
					cancelled(l, fmt.Sprintf("CX-%d", i), old)
				}
				shipped(l, "DR-1", old)
				l.commit()
			},
			orders: 11, open: 1, active: 1, inMismatch: 0, rate: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, eng := testStore(t, cfg)
			det := newDetector(t, store, eng)
			tc.build(t, newLoader(t, cfg, store), det)
			rec := New(Options{Store: store, Detector: det, Every: time.Hour, Logger: zerolog.Nop()})
			rep, err := rec.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := []int{rep.Orders, rep.OpenOrders, rep.ActiveOrders, rep.OrdersInMismatch}
			want := []int{tc.orders, tc.open, tc.active, tc.inMismatch}
			if fmt.Sprint(got) != fmt.Sprint(want) || rep.MismatchRate != tc.rate {
				t.Fatalf("orders, open, active, in mismatch %v rate %v; want %v rate %v", got, rep.MismatchRate, want, tc.rate)
			}
			// The next sweep finds the same: the period still covers it.
			rep, err = rec.Run(context.Background())
			if err != nil || rep.ActiveOrders != tc.active || rep.OrdersInMismatch != tc.inMismatch || rep.Opened != 0 {
				t.Fatalf("second sweep: active %d, in mismatch %d, opened %d, %v", rep.ActiveOrders, rep.OrdersInMismatch, rep.Opened, err)
			}
		})
	}
}

// Statuses the property test draws from, per system: (status, field).
var kpiStatuses = map[string][][2]string{
	"shop": {{"unfulfilled", "fulfillment_status"}, {"fulfilled", "fulfillment_status"}, {"delivered", "shipment_status"},
		{"customer", "cancel_reason"}, {"REQUESTED", "return.status"}, {"CLOSED", "return.status"}, {"paid", "financial_status"}},
	"erp": {{"Pending Fulfillment", "status"}, {"Billed", "status"}, {"Cancelled", "status"},
		{"Pending Receipt", "return_authorization_status"}, {"Pending Refund", "return_authorization_status"}},
	"wms":     {{"confirmed", "status"}, {"shipped", "status"}, {"delivered", "status"}, {"returned", "status"}, {"cancelled", "status"}},
	"carrier": {{"in_transit", "status"}, {"delivered", "status"}, {"return_to_sender", "status"}},
	"stripe":  {{"succeeded", "payment_intent.status"}, {"requires_capture", "payment_intent.status"}},
}

// kpiClosing are statuses that close an order in each system, per closing
// state (a system absent from one cannot say it).
var kpiClosing = []map[string][2]string{
	{"shop": {"delivered", "shipment_status"}, "erp": {"Billed", "status"}, "wms": {"delivered", "status"}, "carrier": {"delivered", "status"}},
	{"shop": {"CLOSED", "return.status"}, "erp": {"Pending Refund", "return_authorization_status"}, "wms": {"returned", "status"}},
	{"shop": {"customer", "cancel_reason"}, "erp": {"Cancelled", "status"}, "wms": {"cancelled", "status"}},
}

// TestKPIProperties generates random order histories (several systems,
// random states among them delivered, returned and cancelled, source clocks
// hours ahead of or behind the log's) and random mismatches (some on orders
// with no rows, some with onsets hours after their detection, some
// resolved), sweeps, and checks the report against brute-force references:
// the rate is in [0, 1] and its figures are the reference's; time to detect
// is never negative and counts the skewed apart; value at risk counts each
// order once per currency. DRIFTWATCH_KPI_SEED replays a seed.
func TestKPIProperties(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DRIFTWATCH_KPI_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DRIFTWATCH_KPI_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (DRIFTWATCH_KPI_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6b7069))
	// SLAs far longer than any history: no flow is overdue, so the active
	// orders are exactly the reference's.
	cfg, err := config.Parse("kpi.yaml", []byte(config.SixSystems+`flows:
  - {from: shop,    to: erp, sla: 1000h}
  - {from: stripe,  to: erp, sla: 1000h, dimensions: [payment]}
  - {from: carrier, to: erp, sla: 1000h, dimensions: [fulfilment]}
  - {from: erp,     to: wms, sla: 1000h, dimensions: [fulfilment]}
`))
	if err != nil {
		t.Fatal(err)
	}
	systems := []string{"shop", "erp", "wms", "carrier", "stripe"}
	patterns := []string{detector.OrderNotAcknowledged, detector.MissingEvent, detector.IllegalTransition, detector.ClockSkew, detector.CancelNotPropagated}
	currencies := []string{"EUR", "USD", "GBP", ""} // "": an amount without a currency still counts
	hours := func(n int) time.Duration { return time.Duration(rng.IntN(2*n*3600)-n*3600) * time.Second }
	money := func() string { return fmt.Sprintf("%d.%02d", rng.IntN(2000), rng.IntN(100)) }
	for round := range 12 {
		store, eng := testStore(t, cfg)
		det := newDetector(t, store, eng)
		l := newLoader(t, cfg, store)
		now := time.Now()
		var orders []string
		for i := range 40 {
			order := fmt.Sprintf("P-%d-%02d", round, i)
			orders = append(orders, order)
			// Half the orders were last heard of before the period (the
			// last hour); a third end in a closing state in every system.
			quiet := rng.IntN(2) == 0
			received := func() time.Time {
				if quiet {
					return now.Add(-time.Hour - time.Minute - time.Duration(rng.IntN(5*3600))*time.Second)
				}
				return now.Add(-time.Duration(rng.IntN(6*3600)) * time.Second)
			}
			closing := rng.IntN(3) == 0
			c := kpiClosing[rng.IntN(len(kpiClosing))]
			for _, sys := range systems {
				if rng.IntN(3) == 0 {
					continue
				}
				for range 1 + rng.IntN(3) {
					st := kpiStatuses[sys][rng.IntN(len(kpiStatuses[sys]))]
					at := received()
					extra := ""
					if rng.IntN(3) == 0 {
						extra = fmt.Sprintf(`,"attributes":{"amount":"%s","currency":"%s"}`, money(), currencies[rng.IntN(len(currencies))])
					}
					l.event(order, sys, st[0], st[1], at.Add(hours(3)), at, extra)
				}
				if st, ok := c[sys]; ok && closing {
					at := received()
					l.event(order, sys, st[0], st[1], at.Add(4*time.Hour), at, "") // after every other event
				}
			}
		}
		l.commit()
		for i := range 8 {
			orders = append(orders, fmt.Sprintf("G-%d-%d", round, i)) // no rows
		}
		openBefore := map[string]bool{}
		for _, order := range orders {
			if rng.IntN(2) == 0 {
				continue
			}
			for _, pattern := range patterns {
				if rng.IntN(3) != 0 {
					continue
				}
				m := &detector.Mismatch{}
				src := systems[rng.IntN(len(systems))]
				m.AlertID = detector.AlertID(order, pattern, src, "")
				m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, pattern, detector.DefaultSeverity(pattern), detector.ByValidate
				m.Source = &detector.Side{System: src}
				detected := now.Add(-time.Duration(rng.IntN(2*3600)) * time.Second)
				if rng.IntN(4) != 0 {
					m.OnsetNanos = detected.Add(hours(2)).UnixNano()
				}
				if rng.IntN(2) == 0 {
					m.Source.ReceivedAt = detected.Add(hours(1)).UTC().Format(time.RFC3339Nano)
				}
				if rng.IntN(2) == 0 {
					m.Amount, m.Currency = money(), currencies[rng.IntN(len(currencies))]
				}
				resolve := rng.IntN(4) == 0
				err := det.Update(func(b *pebble.Batch, e *detector.Engine, _ time.Time) error {
					if err := e.Raise(b, m, detected); err != nil {
						return err
					}
					if resolve {
						_, err := e.Resolve(b, m.AlertID, detected.Add(time.Minute), "ops", "checked")
						return err
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !resolve {
					openBefore[order] = true
				}
			}
		}
		rec := New(Options{Store: store, Detector: det, Every: time.Hour, Logger: zerolog.Nop(), ChunkOrders: 7, ReconcileBatch: 3})
		rep, err := rec.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		from, to := parseNanos(rep.PeriodStart), parseNanos(rep.PeriodEnd)

		// References, by brute force over every order and mismatch.
		openAfter := map[string][]*detector.Mismatch{}
		var ttd []float64
		skewed := 0
		if err := detector.ScanMismatches(store, detector.Filter{}, func(m *detector.Mismatch) error {
			if m.DetectedNanos >= from && m.DetectedNanos <= to && m.OnsetNanos != 0 {
				onset := m.OnsetNanos
				if m.Source.ReceivedAt != "" {
					onset = min(onset, parseNanos(m.Source.ReceivedAt))
				}
				if onset > m.DetectedNanos {
					skewed++
				} else {
					ttd = append(ttd, time.Duration(m.DetectedNanos-onset).Seconds())
				}
			}
			if m.State != detector.StateResolved {
				openAfter[m.OrderID] = append(openAfter[m.OrderID], m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		active := 0
		value := map[string]*big.Rat{}
		for _, order := range orders {
			rows, err := store.Rows(order)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > 0 {
				v, _, _ := eng.CheckOrder(order, rows, time.Now())
				if !v.Closed || lastReceived(rows) >= from || openBefore[order] || len(openAfter[order]) > 0 {
					active++
				}
			} else if len(openAfter[order]) > 0 {
				active++
			}
			if len(openAfter[order]) == 0 {
				continue
			}
			best := map[string]*big.Rat{}
			consider := func(a, cur string) {
				if a == "" {
					return
				}
				r, _ := new(big.Rat).SetString(a)
				if best[cur] == nil || r.Cmp(best[cur]) > 0 {
					best[cur] = r
				}
			}
			for _, r := range rows {
				consider(r.Amount, r.Currency)
			}
			for _, m := range openAfter[order] {
				consider(m.Amount, m.Currency)
			}
			for cur, r := range best {
				if value[cur] == nil {
					value[cur] = new(big.Rat)
				}
				value[cur].Add(value[cur], r)
			}
		}

		if rep.MismatchRate < 0 || rep.MismatchRate > 1 || rep.OrdersInMismatch > rep.ActiveOrders {
			t.Fatalf("round %d: rate %v (%d of %d) outside [0, 1]", round, rep.MismatchRate, rep.OrdersInMismatch, rep.ActiveOrders)
		}
		if rep.OrdersInMismatch != len(openAfter) || rep.ActiveOrders != active {
			t.Fatalf("round %d: %d of %d active orders in mismatch, reference %d of %d", round, rep.OrdersInMismatch, rep.ActiveOrders, len(openAfter), active)
		}
		ref := stat(ttd)
		if rep.TimeToDetect.MeanSeconds < 0 || rep.TimeToDetect.P90Seconds < 0 || rep.TimeToDetect.Stat != ref || rep.TimeToDetect.Skewed != skewed {
			t.Fatalf("round %d: time to detect %+v, reference %+v with %d skewed", round, rep.TimeToDetect, ref, skewed)
		}
		wantValue := map[string]string{}
		for cur, r := range value {
			wantValue[cur] = r.FloatString(2)
		}
		if fmt.Sprint(rep.ValueAtRisk) != fmt.Sprint(wantValue) {
			t.Fatalf("round %d: value at risk %v, reference %v", round, rep.ValueAtRisk, wantValue)
		}
		listed := map[string]bool{}
		for _, a := range rep.TopAtRisk {
			if listed[a.OrderID] {
				t.Fatalf("round %d: order %s listed twice at risk", round, a.OrderID)
			}
			listed[a.OrderID] = true
			if !sort.StringsAreSorted(a.Patterns) || a.Mismatches != len(openAfter[a.OrderID]) {
				t.Fatalf("round %d: at risk %+v, %d open mismatches", round, a, len(openAfter[a.OrderID]))
			}
		}
	}
}

// newDetector is a detector that records and resolves (no consumer).
func newDetector(t *testing.T, store *projections.Store, eng *detector.Engine) *detector.Detector {
	t.Helper()
	det, err := detector.New(detector.Options{Store: store, Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	return det
}
