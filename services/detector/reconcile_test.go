package detector

import (
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
)

// sixTables are the mapping tables of the reference stack by system id:
// shop (shopify), amazon, erp (netsuite: no delivered), wms (generic),
// stripe (no fulfilment states), carrier (easypost: no returned, no
// cancelled).
func sixTables(t *testing.T) map[string]*mapping.Table {
	t.Helper()
	cfg, err := config.Parse("six.yaml", []byte(config.SixSystems))
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]*mapping.Table{}
	for _, s := range cfg.Systems {
		tables[s.ID], _ = cfg.Mappings.Table(s.Platform)
	}
	return tables
}

// at is a row of system showing fulfilment state s (None: a record with no
// fulfilment state, as a payment-only or unmapped status leaves it).
func at(system string, s canonical.State) projections.Row {
	r := projections.Row{System: system, OrderID: "C-1", Last: projections.Facet{Seq: 1}}
	r.Fulfilment.State = s
	if s != canonical.None {
		r.Fulfilment.Seq = 1
	}
	return r
}

// noRecord is a row of a system that only acknowledged (no status).
func noRecord(system string) projections.Row {
	return projections.Row{System: system, OrderID: "C-1", Acks: 1}
}

func TestClosedOrder(t *testing.T) {
	tables := sixTables(t)
	const (
		pending   = canonical.Pending
		confirmed = canonical.Confirmed
		shipped   = canonical.Shipped
		delivered = canonical.Delivered
		retReq    = canonical.ReturnRequested
		returned  = canonical.Returned
		cancelled = canonical.Cancelled
		none      = canonical.None
	)
	for _, tc := range []struct {
		name string
		rows []projections.Row
		want bool
	}{
		{"no rows", nil, false},
		{"still in progress", []projections.Row{at("shop", confirmed), at("erp", confirmed)}, false},
		{"shipped everywhere is not a closing state", []projections.Row{at("shop", shipped), at("erp", shipped), at("wms", shipped)}, false},
		// NetSuite cannot say delivered: shipped is as far as it goes.
		{"delivered, erp at its furthest (shipped)", []projections.Row{at("shop", delivered), at("carrier", delivered), at("erp", shipped)}, true},
		{"delivered, payment processor not asked", []projections.Row{at("shop", delivered), at("erp", shipped), at("stripe", none)}, true},
		// The generic warehouse can say delivered: shipped does not agree.
		{"delivered, wms could say delivered but shows shipped", []projections.Row{at("shop", delivered), at("erp", shipped), at("wms", shipped)}, false},
		{"delivered, erp behind", []projections.Row{at("shop", delivered), at("erp", confirmed)}, false},
		{"delivered, a return under way", []projections.Row{at("shop", retReq), at("carrier", delivered), at("erp", shipped)}, false},
		{"delivered, a system with a record but no state", []projections.Row{at("shop", delivered), at("wms", none)}, false},
		{"delivered, a system that only acknowledged", []projections.Row{at("shop", delivered), at("erp", shipped), noRecord("wms")}, true},
		{"returned everywhere that can say it", []projections.Row{at("shop", returned), at("erp", returned), at("carrier", delivered)}, true},
		{"returned, erp still delivered-ish", []projections.Row{at("shop", returned), at("erp", shipped)}, false},
		{"returned, erp at return_requested", []projections.Row{at("shop", returned), at("erp", retReq)}, false},
		{"returned beats delivered: wms must say returned", []projections.Row{at("shop", returned), at("wms", delivered)}, false},
		{"cancelled everywhere", []projections.Row{at("shop", cancelled), at("erp", cancelled), at("wms", cancelled)}, true},
		{"cancelled, a system with no record reflects it", []projections.Row{at("shop", cancelled), noRecord("erp")}, true},
		{"cancelled, erp still pending", []projections.Row{at("shop", cancelled), at("erp", pending)}, false},
		{"cancelled, the carrier cannot say cancelled", []projections.Row{at("shop", cancelled), at("erp", cancelled), at("carrier", shipped)}, true},
		{"cancelled beats delivered: shop must say cancelled", []projections.Row{at("erp", cancelled), at("shop", delivered)}, false},
		{"cancelled beats returned", []projections.Row{at("erp", cancelled), at("shop", returned)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := closedOrder(tc.rows, tables); got != tc.want {
				t.Fatalf("closedOrder = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReconcileJudgesClosedOrders: a delivered order is closed by the
// systems that have a record of it, but a flow target with no record is
// still drift the sweep finds (shop -> erp and carrier -> erp); its healthy
// twin (the ERP shows shipped) raises nothing.
func TestReconcileJudgesClosedOrders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		erp    bool
		closed bool
		want   int
	}{
		{"erp never heard of it", false, true, 2},
		{"healthy twin: erp shows shipped", true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTimeline(t)
			tl.event(0, 0, "shop", map[string]string{"order": "D-1", "field": "fulfillment_status"}, "fulfilled", "")
			tl.event(time.Second, time.Second, "carrier", map[string]string{"order": "D-1", "field": "status"}, "delivered", "")
			tl.event(time.Second, time.Second, "wms", map[string]string{"order": "D-1", "field": "status"}, "delivered", "")
			if tc.erp {
				tl.event(time.Second, time.Second, "erp", map[string]string{"order": "D-1", "field": "status"}, "Billed", "")
			}
			tl.event(2*time.Second, 2*time.Second, "shop", map[string]string{"order": "D-1", "field": "shipment_status"}, "delivered", "")
			rows, err := tl.store.Rows("D-1")
			if err != nil {
				t.Fatal(err)
			}
			b := tl.store.NewBatch()
			defer b.Close()
			v, err := tl.engine.ReconcileOrder(b, "D-1", rows, t0.Add(time.Hour), true)
			if err != nil || v.Closed != tc.closed || v.Raised != tc.want {
				t.Fatalf("%+v %v, want closed %v and %d raised", v, err, tc.closed, tc.want)
			}
		})
	}
}

func TestTimeToDetect(t *testing.T) {
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	mk := func(onset, received, detected time.Duration, hasReceived bool) *Mismatch {
		m := &Mismatch{OnsetNanos: base.Add(onset).UnixNano(), DetectedNanos: base.Add(detected).UnixNano()}
		m.Source = &Side{System: "shop"}
		if hasReceived {
			m.Source.ReceivedAt = base.Add(received).Format(time.RFC3339Nano)
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		m       *Mismatch
		want    time.Duration
		outcome TTDOutcome
	}{
		{"onset before detection", mk(0, time.Second, time.Minute, true), time.Minute, TTDMeasured},
		{"no received time", mk(0, 0, time.Minute, false), time.Minute, TTDMeasured},
		// The source's clock runs an hour ahead: the onset is bounded by
		// when the log received the event.
		{"onset an hour ahead, bounded by received_at", mk(time.Hour, 10*time.Second, 2*time.Minute+45*time.Second, true), 2*time.Minute + 35*time.Second, TTDMeasured},
		{"onset after detection, no received time", mk(time.Hour, 0, time.Minute, false), 0, TTDSkewed},
		{"onset and received after detection", mk(time.Hour, 2*time.Minute, time.Minute, true), 0, TTDSkewed},
		{"no onset", &Mismatch{DetectedNanos: base.UnixNano()}, 0, TTDNoOnset},
		{"detected at the onset", mk(time.Minute, time.Minute, time.Minute, true), 0, TTDMeasured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, outcome := TimeToDetect(tc.m)
			if d != tc.want || outcome != tc.outcome {
				t.Fatalf("TimeToDetect = %v, %d; want %v, %d", d, outcome, tc.want, tc.outcome)
			}
			if d < 0 {
				t.Fatalf("negative time to detect %v", d)
			}
		})
	}
}
