package detector

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestTimeToDetectNeverNegative plays random order histories through the
// engine, with source clocks skewed hours behind and ahead (beyond
// max_future_skew too), out of order, with manual edits, and judges them
// all: no mismatch the engine stores has an onset after its detection, so
// time to detect is never negative nor skewed. DRIFTWATCH_PROPERTY_SEED
// replays a seed.
func TestTimeToDetectNeverNegative(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DRIFTWATCH_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (DRIFTWATCH_PROPERTY_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	statuses := map[string][][2]string{
		"shop":    {{"unfulfilled", "fulfillment_status"}, {"fulfilled", "fulfillment_status"}, {"customer", "cancel_reason"}, {"paid", "financial_status"}, {"refunded", "financial_status"}, {"REQUESTED", "return.status"}},
		"amazon":  {{"Unshipped", ""}, {"Shipped", ""}, {"Canceled", ""}},
		"erp":     {{"Pending Fulfillment", ""}, {"Billed", ""}, {"Cancelled", ""}, {"Pending Receipt", "return_authorization_status"}},
		"wms":     {{"confirmed", ""}, {"shipped", ""}, {"delivered", ""}, {"paid", ""}},
		"stripe":  {{"requires_capture", ""}, {"succeeded", ""}},
		"carrier": {{"in_transit", ""}, {"delivered", ""}, {"return_to_sender", ""}},
	}
	systems := []string{"shop", "amazon", "erp", "wms", "stripe", "carrier"}
	skews := []time.Duration{0, 0, 0, -5 * time.Hour, -90 * time.Minute, 30 * time.Second, 3 * time.Minute, 2 * time.Hour}
	for round := range 4 {
		tl := newTimeline(t)
		recv := time.Duration(0)
		for o := range 40 {
			order := fmt.Sprintf("P-%d-%d", round, o)
			for range 1 + rng.IntN(6) {
				sys := systems[rng.IntN(len(systems))]
				st := statuses[sys][rng.IntN(len(statuses[sys]))]
				recv += time.Duration(rng.IntN(3000)) * time.Millisecond
				at := recv + skews[rng.IntN(len(skews))] - time.Duration(rng.IntN(10))*time.Second
				kv := map[string]string{"order": order}
				if st[1] != "" {
					kv["field"] = st[1]
				}
				if rng.IntN(8) == 0 {
					kv["actor"] = "manual"
				}
				tl.event(at, recv, sys, kv, st[0], "")
			}
		}
		tl.judge(t0.Add(recv + time.Hour))
		n := 0
		if err := ScanMismatches(tl.store, Filter{}, func(m *Mismatch) error {
			n++
			d, outcome := TimeToDetect(m)
			if outcome != TTDMeasured || d < 0 || m.OnsetNanos > m.DetectedNanos {
				return fmt.Errorf("%s %s on %s: time to detect %v (%d): onset %s, detected %s, source %+v",
					m.AlertID, m.Pattern, m.OrderID, d, outcome, m.OnsetAt, m.DetectedAt, m.Source)
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if n == 0 {
			t.Fatalf("round %d raised nothing: the histories test nothing", round)
		}
	}
}
