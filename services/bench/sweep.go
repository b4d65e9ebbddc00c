package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/app"
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
	MemoryLimitMB  int     `json:"memory_limit_mb"`
	// Serve on the same store afterwards: driftwatch with every service
	// running over the 1M orders while ingesting, sweeping and answering
	// the gate; resident memory at the end and at its peak.
	ServeRSSMiB     float64 `json:"serve_rss_mib"`
	ServePeakRSSMiB float64 `json:"serve_peak_rss_mib"`
	ServeHeapMiB    float64 `json:"serve_heap_mib"`
	ServeSweepSecs  float64 `json:"serve_sweep_seconds"`
}

// SweepOptions configures Sweep.
type SweepOptions struct {
	Orders int
	// LimitMB, when 0 or more, replaces memory.limit_mb for the server phase.
	LimitMB int
	// Dir, when set, keeps the loaded store there and skips the server
	// phase (which adds orders to it); a later run with the same Dir and
	// Orders sweeps it again without loading.
	Dir   string
	Log   func(string, ...any)
	Phase PhaseFunc // called around the timed sweep ("sweep")
}

// Sweep loads opts.Orders orders x 5 systems straight into a store through
// the projection state machine (no NATS: this measures the sweep, not
// ingest), then runs one reconciliation sweep and samples the heap while it
// runs, then runs the server on the same store and measures its memory.
// One order in a hundred drifts (the ERP never confirmed it).
func Sweep(ctx context.Context, opts SweepOptions) (*SweepResult, error) {
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(Config, "always")))
	if err != nil {
		return nil, err
	}
	if opts.LimitMB >= 0 {
		cfg.Memory.LimitMB = opts.LimitMB
	}
	dir := opts.Dir
	reuse := false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "driftwatch-sweep-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if _, err := os.Stat(filepath.Join(dir, app.StoreDir)); err == nil {
		reuse = true
	}
	res, err := loadAndSweep(ctx, cfg, dir, opts, reuse)
	if err != nil || opts.Dir != "" {
		return res, err
	}
	// The loader's store is closed and unreferenced: what follows is the
	// server's memory.
	if err := serveMemory(ctx, cfg, dir, res, opts.Log); err != nil {
		return nil, err
	}
	return res, nil
}

// load writes orders x 5 systems straight into store through the projection
// state machine (nothing when reuse: it holds them already).
func load(store *projections.Store, cfg *config.Config, orders int, reuse bool, log func(string, ...any)) (*SweepResult, error) {
	applier := projector.NewApplier(cfg)
	res := &SweepResult{Orders: orders}
	if reuse {
		for i := 0; i < orders; i++ {
			res.Rows += len(sweepOrderEvents(i))
		}
		log("sweep: reusing the loaded store")
		return res, nil
	}
	start := time.Now()
	old := time.Now().Add(-48 * time.Hour)
	at := old.UTC().Format(time.RFC3339)
	tx := store.NewTx(false)
	seq := uint64(0)
	for i := 0; i < orders; i++ {
		id := fmt.Sprintf("S-%08d", i)
		for _, e := range sweepOrderEvents(i) {
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
	if err := store.Flush(); err != nil {
		return nil, err
	}
	res.LoadSeconds = time.Since(start).Seconds()
	log("sweep: loaded %d orders (%d rows) in %.1fs", orders, res.Rows, res.LoadSeconds)
	return res, nil
}

// sweepOrderEvents is the (system, status, status field) of each event of
// the sweep's order i: five systems agreeing, or, one order in a hundred,
// the storefront alone (the ERP never confirmed it).
func sweepOrderEvents(i int) [][3]string {
	if i%100 == 0 {
		return sweepEvents[:1]
	}
	return sweepEvents
}

var sweepEvents = [][3]string{{"shop", "fulfilled", "fulfillment_status"}, {"erp", "Billed", "status"}, {"wms", "shipped", "status"}, {"stripe", "succeeded", "payment_intent.status"}, {"carrier", "in_transit", "status"}}

// loadAndSweep loads the store straight through the projection state
// machine and times one sweep over it.
func loadAndSweep(ctx context.Context, cfg *config.Config, dir string, opts SweepOptions, reuse bool) (*SweepResult, error) {
	orders, log := opts.Orders, opts.Log
	store, err := projections.Open(filepath.Join(dir, app.StoreDir), projections.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	res, err := load(store, cfg, orders, reuse, log)
	if err != nil {
		return nil, err
	}
	// A store that has been serving for a while is not compacting the
	// bulk it was just loaded with, nor loading its key filters: wait for
	// the filters, and (up to a minute) until no compaction has run for
	// half a second, so the sweep is timed alone, as the PostgreSQL query
	// it is compared with.
	store.WaitFilters()
	settle(store)

	eng, err := detector.NewEngine(cfg, store)
	if err != nil {
		return nil, err
	}
	det, err := detector.New(detector.Options{Store: store, Engine: eng})
	if err != nil {
		return nil, err
	}
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
	opts.Phase.call("sweep", true)
	t0 := time.Now()
	rep, err := rec.Run(ctx)
	opts.Phase.call("sweep", false)
	close(done)
	if err != nil {
		return nil, err
	}
	res.SweepSeconds = time.Since(t0).Seconds()
	res.OrdersPerSec = float64(rep.Orders) / res.SweepSeconds
	res.OpenMismatches = rep.OpenMismatches
	res.MaxHeapMiB = round(float64(maxHeap.Load()) / (1 << 20))
	res.RSSMiB = procStatusMiB("VmRSS:")
	res.StoreMiB = round(float64(dirSize(filepath.Join(dir, app.StoreDir))) / (1 << 20))
	log("sweep: %d orders in %.2fs (%.0f orders/s), %d mismatches, heap max %.0f MiB", rep.Orders, res.SweepSeconds, res.OrdersPerSec, rep.OpenMismatches, res.MaxHeapMiB)
	return res, nil
}

// serveMemory runs driftwatch (every service, embedded NATS) on the loaded
// store: it ingests 10,000 new orders, sweeps every order and answers gate
// requests, then reads the process's resident memory. The loader's garbage
// is returned to the OS first and the peak is reset, so the figures are
// the server's.
func serveMemory(ctx context.Context, cfg *config.Config, dir string, res *SweepResult, log func(string, ...any)) error {
	app.ApplyMemoryLimit(cfg) // as driftwatch serve does
	res.MemoryLimitMB = cfg.Memory.LimitMB
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
	a, err := app.New(app.Options{Config: cfg, DataDir: dir, NATSListen: "127.0.0.1:-1", Logger: zerolog.Nop(),
		Services: []string{app.ServiceProjector, app.ServiceDetector, app.ServiceGate, app.ServiceReconcile}})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Stop(stop)
	}()
	nc, err := nats.Connect(a.Broker.ClientURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	payloads, subjects := NewWorkload(3).Payloads(10000)
	if err := publishAll(ctx, js, payloads, func(i int) string { return subjects[i] }, true); err != nil {
		return err
	}
	payloads, subjects = nil, nil
	if err := waitApplied(ctx, a); err != nil {
		return err
	}
	t0 := time.Now()
	rep, err := a.Reconcile.Run(ctx)
	if err != nil {
		return err
	}
	res.ServeSweepSecs = time.Since(t0).Seconds()
	for i := 0; i < 20000; i++ {
		req := fmt.Sprintf(`{"event":{"event_id":"m%d","order_id":"S-%08d","system":"shop","status":"fulfilled","status_field":"fulfillment_status","occurred_at":"2026-11-27T10:00:00Z"},"target":"erp"}`, i, (i*7919)%res.Orders)
		if _, err := nc.Request(events.ValidateSubject, []byte(req), 5*time.Second); err != nil {
			return err
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.ServeHeapMiB = round(float64(ms.HeapInuse) / (1 << 20))
	if os.Getenv("DRIFTWATCH_BENCH_DEBUG") != "" {
		log("memstats: sys %d MiB, heap sys %d idle %d released %d inuse %d, stacks %d, other %d", ms.Sys>>20, ms.HeapSys>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.HeapInuse>>20, ms.StackSys>>20, (ms.OtherSys+ms.GCSys+ms.MSpanSys+ms.MCacheSys+ms.BuckHashSys)>>20)
	}
	res.ServeRSSMiB = procStatusMiB("VmRSS:")
	res.ServePeakRSSMiB = procStatusMiB("VmHWM:")
	log("serve on %d orders: sweep %.2fs over %d orders, RSS %.0f MiB (peak %.0f MiB), Go heap in use %.0f MiB", res.Orders, res.ServeSweepSecs, rep.Orders, res.ServeRSSMiB, res.ServePeakRSSMiB, res.ServeHeapMiB)
	return nil
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

// settle waits (up to a minute) until the store has run no compaction for
// half a second, then collects garbage, so that what is timed next does
// not share the machine with the previous step's leftovers.
func settle(store *projections.Store) {
	for wait, idle := time.Now(), 0; idle < 5 && time.Since(wait) < time.Minute; time.Sleep(100 * time.Millisecond) {
		idle++
		if store.Metrics().Compact.NumInProgress > 0 {
			idle = 0
		}
	}
	runtime.GC()
}
