package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

// SweepResult is the figure of a reconciliation sweep over a large store.
type SweepResult struct {
	Orders         int     `json:"orders"`
	Rows           int     `json:"rows"`
	LoadSeconds    float64 `json:"load_seconds"`
	SweepSeconds   float64 `json:"sweep_seconds"`
	OrdersPerSec   float64 `json:"orders_per_sec"`
	OpenMismatches int     `json:"open_mismatches"`
	MaxHeapMiB     float64 `json:"max_heap_during_sweep_mib"`
	RSSMiB         float64 `json:"rss_after_mib"`
	StoreMiB       float64 `json:"store_mib"`
}

// Sweep loads orders x 5 systems straight into a store through the
// projection state machine (no NATS: this measures the sweep, not ingest),
// then runs one reconciliation sweep and samples the heap while it runs.
// One order in a hundred drifts (the ERP never confirmed it).
func Sweep(ctx context.Context, orders int, log func(string, ...any)) (*SweepResult, error) {
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(Config, "always")))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "driftwatch-sweep-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := projections.Open(dir, projections.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	applier := projector.NewApplier(cfg)
	res := &SweepResult{Orders: orders}
	start := time.Now()
	old := time.Now().Add(-48 * time.Hour)
	at := old.UTC().Format(time.RFC3339)
	tx := store.NewTx(false)
	seq := uint64(0)
	for i := 0; i < orders; i++ {
		id := fmt.Sprintf("S-%08d", i)
		evs := [][3]string{{"shop", "fulfilled", "fulfillment_status"}, {"erp", "Billed", "status"}, {"wms", "shipped", "status"}, {"stripe", "succeeded", "payment_intent.status"}, {"carrier", "in_transit", "status"}}
		if i%100 == 0 {
			evs = evs[:1] // the ERP never confirmed it
		}
		for _, e := range evs {
			seq++
			data := []byte(`{"event_id":"` + fmt.Sprint(seq) + `","order_id":"` + id + `","system":"` + e[0] + `","status":"` + e[1] + `","status_field":"` + e[2] + `","occurred_at":"` + at + `"}`)
			if _, err := applier.Apply(tx, projections.Delivery{Subject: "driftwatch.in." + e[0], Data: data, Seq: seq, Received: old}); err != nil {
				return nil, err
			}
			res.Rows++
		}
		if i%5000 == 4999 {
			if err := store.CommitTx(tx, false); err != nil {
				return nil, err
			}
			tx = store.NewTx(false)
		}
	}
	if err := store.CommitTx(tx, true); err != nil {
		return nil, err
	}
	if err := store.DB().Flush(); err != nil {
		return nil, err
	}
	res.LoadSeconds = time.Since(start).Seconds()
	log("sweep: loaded %d orders (%d rows) in %.1fs", orders, res.Rows, res.LoadSeconds)
	runtime.GC()

	eng, err := detector.NewEngine(cfg, store)
	if err != nil {
		return nil, err
	}
	det := detector.New(detector.Options{Store: store, Engine: eng})
	rec := reconcile.New(reconcile.Options{Store: store, Detector: det, Every: 24 * time.Hour, Logger: zerolog.Nop()})
	var maxHeap atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > maxHeap.Load() {
				maxHeap.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	rep, err := rec.Run(ctx)
	close(done)
	if err != nil {
		return nil, err
	}
	res.SweepSeconds = time.Since(t0).Seconds()
	res.OrdersPerSec = float64(rep.Orders) / res.SweepSeconds
	res.OpenMismatches = rep.OpenMismatches
	res.MaxHeapMiB = round(float64(maxHeap.Load()) / (1 << 20))
	res.RSSMiB = procStatusMiB("VmRSS:")
	res.StoreMiB = round(float64(dirSize(dir)) / (1 << 20))
	log("sweep: %d orders in %.2fs (%.0f orders/s), %d mismatches, heap max %.0f MiB", rep.Orders, res.SweepSeconds, res.OrdersPerSec, rep.OpenMismatches, res.MaxHeapMiB)
	return res, nil
}

func dirSize(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			n += info.Size()
		}
	}
	return n
}
