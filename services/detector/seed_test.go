package detector_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestSeedPatternsOnExampleConfig runs deploy/driftwatch.example.yaml as
// shipped (real platform tables and vocabularies, real SLAs of minutes):
// the events are dated an hour back, so every SLA has passed and each flow
// is judged once its events have settled. Each of the five classic
// patterns must fire exactly once, on its order, and each order's healthy
// twin (the same story with the target keeping up) must stay silent.
func TestSeedPatternsOnExampleConfig(t *testing.T) {
	cfg, err := config.LoadFile("../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := apptest.Start(t, cfg, "")
	sub := subscribeAlerts(t, env)
	pub, err := events.NewPublisher(env.NC, events.WithSystems(cfg.Known))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var batch [][]byte
	n := 0
	// step is one event of an order's story, minutes after the story began.
	type step struct {
		minute         int
		system, status string
		field          string
	}
	story := func(order string, steps ...step) {
		for _, st := range steps {
			n++
			ev := map[string]any{"event_id": fmt.Sprintf("s%d", n), "order_id": order, "system": st.system, "status": st.status,
				"occurred_at": base.Add(time.Duration(st.minute) * time.Minute).In(time.FixedZone("", -5*3600)).Format(time.RFC3339)}
			if st.field != "" {
				ev["status_field"] = st.field
			}
			data, _ := json.Marshal(ev)
			batch = append(batch, data)
		}
	}
	// Each pattern: the drifting order and its healthy twin.
	story("ONA-1", step{0, "shop", "unfulfilled", "fulfillment_status"})
	story("ONA-TWIN", step{0, "shop", "unfulfilled", "fulfillment_status"}, step{1, "erp", "Pending Fulfillment", ""}, step{2, "wms", "confirmed", ""})

	story("SNR-1", step{0, "amazon", "Unshipped", ""}, step{1, "erp", "Pending Fulfillment", ""}, step{2, "wms", "confirmed", ""},
		step{20, "amazon", "Shipped", ""})
	story("SNR-TWIN", step{0, "amazon", "Unshipped", ""}, step{1, "erp", "Pending Fulfillment", ""}, step{2, "wms", "confirmed", ""},
		step{20, "amazon", "Shipped", ""}, step{21, "erp", "Billed", ""}, step{22, "wms", "shipped", ""})

	story("RNR-1", step{0, "shop", "fulfilled", "fulfillment_status"}, step{1, "erp", "Billed", ""}, step{2, "wms", "shipped", ""},
		step{30, "shop", "REQUESTED", "return.status"})
	story("RNR-TWIN", step{0, "shop", "fulfilled", "fulfillment_status"}, step{1, "erp", "Billed", ""}, step{2, "wms", "shipped", ""},
		step{30, "shop", "REQUESTED", "return.status"}, step{31, "erp", "Pending Receipt", "return_authorization_status"},
		step{32, "wms", "return_requested", ""})

	story("CNP-1", step{0, "shop", "unfulfilled", "fulfillment_status"}, step{1, "erp", "Pending Fulfillment", ""}, step{2, "wms", "confirmed", ""},
		step{10, "shop", "customer", "cancel_reason"})
	story("CNP-TWIN", step{0, "shop", "unfulfilled", "fulfillment_status"}, step{1, "erp", "Pending Fulfillment", ""}, step{2, "wms", "confirmed", ""},
		step{10, "shop", "customer", "cancel_reason"}, step{11, "erp", "Cancelled", ""}, step{12, "wms", "cancelled", ""})

	story("PWO-1", step{0, "stripe", "succeeded", ""})
	story("PWO-TWIN", step{0, "stripe", "succeeded", ""}, step{1, "erp", "Pending Fulfillment", ""}, step{2, "wms", "confirmed", ""})

	publishAccepted(t, pub, batch)
	want := map[string]int{
		"ONA-1 " + detector.OrderNotAcknowledged: 1,
		"SNR-1 " + detector.ShipmentNotReflected: 1,
		"RNR-1 " + detector.ReturnNotReflected:   1,
		"CNP-1 " + detector.CancelNotPropagated:  1,
		"PWO-1 " + detector.PaymentWithoutOrder:  1,
	}
	apptest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		got := sub.pairs(detector.StateOpen)
		for k := range want {
			if got[k] == 0 {
				return fmt.Errorf("missing %s (have %v)", k, got)
			}
		}
		return nil
	})
	env.WaitSettled(t, 30*time.Second)
	got := sub.pairs(detector.StateOpen)
	var diff []string
	for k, c := range got {
		if c != want[k] {
			diff = append(diff, fmt.Sprintf("%s: %d alerts, want %d", k, c, want[k]))
		}
	}
	for k := range want {
		if got[k] == 0 {
			diff = append(diff, k+": missing")
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Fatalf("alerts differ from the seed patterns (twins must be silent):\n%s", strings.Join(diff, "\n"))
	}
	// The return's alert names the record the ERP keeps returns on.
	status, body := env.Do(t, "GET", "/v1/orders/RNR-1/replay", "", "")
	if status != 200 || !strings.Contains(body, detector.ReturnNotReflected) {
		t.Fatalf("replay of RNR-1: %d %s", status, body)
	}
}
