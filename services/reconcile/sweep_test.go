package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// testStore opens a store in a temporary folder and a detector engine on it.
func testStore(t *testing.T, cfg *config.Config) (*projections.Store, *detector.Engine) {
	t.Helper()
	store, err := projections.Open(t.TempDir(), projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	eng, err := detector.NewEngine(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return store, eng
}

// TestSweepInSmallChunksAndBatches sweeps a store loaded straight through
// the projection state machine with chunks of 7 orders and batches of 3,
// so chunks are released and reused, and kept orders are reconciled in
// batches gathered across chunks: every order that drifted (the ERP never
// confirmed it) is raised, no other, and a second sweep finds the same
// open mismatches as repeats: it opens none, and its report says so.
func TestSweepInSmallChunksAndBatches(t *testing.T) {
	cfg, err := config.Parse("sweep.yaml", []byte(config.SixSystems+"flows:\n  - {from: shop, to: erp, sla: 5m, dimensions: [fulfilment]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	store, eng := testStore(t, cfg)
	applier := projector.NewApplier(cfg)
	old := time.Now().Add(-48 * time.Hour)
	tx := store.NewTx(false)
	seq := uint64(0)
	apply := func(order, system, status, field string) {
		seq++
		data := fmt.Sprintf(`{"event_id":"%d","order_id":"%s","system":"%s","status":"%s","status_field":"%s","occurred_at":"%s"}`,
			seq, order, system, status, field, old.UTC().Format(time.RFC3339))
		if _, err := applier.Apply(tx, projections.Delivery{Subject: "driftwatch.in." + system, Data: []byte(data), Seq: seq, Received: old}); err != nil {
			t.Fatal(err)
		}
	}
	drifted := map[string]bool{}
	for i := 0; i < 100; i++ {
		order := fmt.Sprintf("S-%03d", i)
		apply(order, "shop", "fulfilled", "fulfillment_status")
		if i%4 == 0 {
			drifted[order] = true
			continue
		}
		apply(order, "erp", "Pending Billing", "status")
	}
	if err := store.CommitTx(tx, true); err != nil {
		t.Fatal(err)
	}
	det := newDetector(t, store, eng)
	rec := New(Options{Store: store, Detector: det, Every: time.Hour, Logger: zerolog.Nop(), ChunkOrders: 7, ReconcileBatch: 3})
	rep, err := rec.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orders != 100 || rep.Opened != len(drifted) || rep.Raised != rep.Opened || rep.OpenMismatches != len(drifted) {
		t.Fatalf("first sweep: %d orders, %d opened (raised %d), %d open (want 100 and %d)", rep.Orders, rep.Opened, rep.Raised, rep.OpenMismatches, len(drifted))
	}
	for i := 0; i < 100; i++ {
		order := fmt.Sprintf("S-%03d", i)
		_, err := detector.GetMismatch(store, detector.AlertID(order, detector.OrderNotAcknowledged, "shop", "erp"))
		if raised := err == nil; raised != drifted[order] {
			t.Fatalf("%s: raised %v, drifted %v", order, raised, drifted[order])
		}
	}
	rep, err = rec.Run(context.Background())
	if err != nil || rep.Orders != 100 || rep.Opened != 0 || rep.Raised != 0 || rep.OpenMismatches != len(drifted) || rep.OrdersInMismatch != len(drifted) {
		t.Fatalf("second sweep: %+v %v", rep, err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !regexp.MustCompile(`(?m)^opened by this run +0$`).MatchString(text.String()) {
		t.Fatalf("second sweep's text report:\n%s", text.String())
	}
	m, err := detector.GetMismatch(store, detector.AlertID("S-000", detector.OrderNotAcknowledged, "shop", "erp"))
	if err != nil || m.Occurrences != 2 {
		t.Fatalf("S-000 after two sweeps: %+v %v, want 2 occurrences", m, err)
	}
}
