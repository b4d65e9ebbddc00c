// Package reconcile catches the drift that never produced an event: a
// scheduled (and on-demand) sweep compares every order across all systems
// along every flow, with event-time awareness, opening what is overdue
// (detected_by reconcile) and resolving what agrees again; each run
// produces a report (rates, patterns, system shares, oldest unresolved,
// time to detect and to resolve, value at risk), stored, published on
// driftwatch.reports.reconcile and served by GET /v1/reconcile/latest.
// Snapshot imports (snapshot.go) turn a platform's export into kind
// snapshot events in the log.
//
// A sweep streams the projections in key order and holds one order's rows
// at a time; memory stays bounded whatever the number of orders. It keeps
// only the ids of the orders it reconciles (those with an overdue flow or
// open mismatches), which the report needs to count every order in
// mismatch among the active orders. An order the sweep counted active
// that falls into mismatch before the report is summed counts twice:
// the active orders may be overcounted by the few such orders (the rate
// reads lower), never undercounted (the rate never exceeds 1).
//
// # The report's figures
//
// The period is from reconcile.every before the run started to the run's
// end (consecutive scheduled runs overlap by a sweep's duration, never
// leave a gap).
//
//   - An order is closed when it reached a closing state that every system
//     with a record of it agrees on, as far as its platform can say so
//     (detector: closedOrder). open_orders counts the orders with rows that
//     are not closed.
//   - An order is active in the period when it is not closed, or one of its
//     systems' rows took an event received in the period (an order closed
//     during the period was active in it), or it has an overdue flow or an
//     open mismatch (an order only the gate saw, with no rows, included).
//     A row shows the received time of the events that set its current
//     fulfilment, payment and overall status, so a late event older than
//     the row's state, or an acknowledgement, does not by itself make an
//     order active.
//   - mismatch_rate is orders_in_mismatch / active_orders: every order with
//     an open mismatch is active, so the rate is at most 1 by construction.
//   - Time to detect follows detector.TimeToDetect; skewed mismatches are
//     counted apart, never averaged.
//   - Value at risk counts each order in mismatch once per currency, with
//     the largest amount in that currency that any of its systems' rows or
//     its open mismatches carries.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/schedule"
)

// Options configures the reconciler.
type Options struct {
	Store    *projections.Store
	Detector *detector.Detector
	JS       jetstream.JetStream // nil: reports are not published
	Every    time.Duration
	Metrics  *Metrics
	Logger   zerolog.Logger
	Now      func() time.Time
	// OnReport, when set, is called with each finished report (the alert
	// policy evaluates its thresholds on it).
	OnReport func(*Report)
	// ChunkOrders is how many orders are read per chunk (default 2000).
	ChunkOrders int
	// ReconcileBatch is how many orders needing a change a checker gathers
	// before reconciling them in one commit (default 500). It is checked
	// after each chunk, so a commit may hold up to ReconcileBatch +
	// ChunkOrders - 1 orders.
	ReconcileBatch int
}

// Reconciler runs sweeps.
type Reconciler struct {
	opts Options
	mu   sync.Mutex // one sweep at a time
}

// New returns a reconciler.
func New(opts Options) *Reconciler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReconcileBatch == 0 {
		opts.ReconcileBatch = 500
	}
	if opts.ChunkOrders == 0 {
		opts.ChunkOrders = 2000
	}
	return &Reconciler{opts: opts}
}

// Schedule runs a sweep every opts.Every until ctx ends (and one at once
// when one is due, see dueAtStart). A failed sweep is logged; the next
// one runs on time.
func (r *Reconciler) Schedule(ctx context.Context) error {
	schedule.Every(ctx, r.opts.Every, r.dueAtStart(), func(ctx context.Context) error {
		_, err := r.Run(ctx)
		return err
	}, func(err error) {
		r.opts.Logger.Error().Err(err).Msg("scheduled reconciliation failed")
	})
	return nil
}

// dueAtStart reports whether a sweep runs at once on Start: the latest
// report is older than a period (one was missed while driftwatch was
// down), or was written before reports counted active orders (the live
// mismatch rate has no denominator until the next sweep). A store without
// any report waits for the schedule, as before.
func (r *Reconciler) dueAtStart() bool {
	rep, err := Latest(r.opts.Store)
	if err != nil {
		return false
	}
	end := parseNanos(rep.PeriodEnd)
	return (rep.ActiveOrders == 0 && rep.Orders > 0) || r.opts.Now().UnixNano()-end > int64(r.opts.Every)
}

// Run sweeps every order now and returns the report.
func (r *Reconciler) Run(ctx context.Context) (*Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.opts.Now()
	from := start.Add(-r.opts.Every)
	rep := &Report{ID: start.UTC().Format("20060102T150405.000Z"), StartedAt: fmtTime(start)}
	if err := r.sweep(ctx, rep, from); err != nil {
		return nil, fmt.Errorf("reconcile sweep: %w", err)
	}
	end := r.opts.Now()
	// Every mismatch is stamped and committed under the detector's lock:
	// taking it once after end is read means every mismatch detected
	// before end (the detector and this reconciler read the same clock) is
	// stored by the time Summarise reads them. The alert
	// policy's live rate relies on it (a mismatch detected before a
	// report's end is counted in that report).
	if err := r.opts.Detector.Update(func(*pebble.Batch, *detector.Engine, time.Time) error { return nil }); err != nil {
		return nil, err
	}
	if err := Summarise(r.opts.Store, rep, from, end); err != nil {
		return nil, err
	}
	rep.FinishedAt = fmtTime(end)
	rep.DurationMillis = end.Sub(start).Milliseconds()
	r.opts.Metrics.swept(end.Sub(start))
	if err := Save(r.opts.Store, rep); err != nil {
		return nil, err
	}
	if r.opts.JS != nil {
		data, _ := json.Marshal(rep.Summary())
		if _, err := r.opts.JS.Publish(ctx, events.ReportsSubject, data); err != nil {
			r.opts.Logger.Warn().Err(err).Msg("publishing the reconciliation report failed")
		}
	}
	if r.opts.OnReport != nil {
		r.opts.OnReport(rep)
	}
	r.opts.Logger.Info().Int("orders", rep.Orders).Int("active_orders", rep.ActiveOrders).Int("opened", rep.Opened).
		Int("open_mismatches", rep.OpenMismatches).Int64("duration_ms", rep.DurationMillis).Msg("reconciliation finished")
	return rep, nil
}

// orderRows is one order's projections as the sweep read them.
type orderRows struct {
	order string
	rows  []projections.Row
	open  bool // had open mismatches when checked
}

// lastReceived is the latest received time (Unix ns) among the events that
// set the rows' current states.
func lastReceived(rows []projections.Row) int64 {
	var last int64
	for i := range rows {
		r := &rows[i]
		last = max(last, r.Last.Received, r.Fulfilment.Received, r.Payment.Received)
	}
	return last
}

// checkWorkers is how many goroutines check orders while one reads the
// store; each gathers at least Options.ReconcileBatch orders that need a
// change (or the last ones) before reconciling them in one commit.
const checkWorkers = 2

// sweep reads every order's rows in key order (one goroutine) and checks
// them (checkWorkers goroutines, outside the detector's lock: most orders
// need nothing). Orders that need a change (an overdue unmet flow, open
// mismatches that may now agree) are reconciled in batches under the lock,
// through Detector.Update, exactly as before the check. from is the
// period's start, for counting the active orders.
func (r *Reconciler) sweep(ctx context.Context, rep *Report, from time.Time) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chunks := make(chan *projections.RawChunk, 2*checkWorkers)
	// Read before the scan's snapshot is taken: while no commit was in
	// flight then and the version is unchanged, the scanned rows are the
	// current ones.
	rowsVersion, settled := r.opts.Store.RowsSettled()
	scannedCurrent := func() bool { return settled && r.opts.Store.RowsVersion() == rowsVersion }
	var mu sync.Mutex // guards rep's counters
	var wg sync.WaitGroup
	rep.reconciled = map[string]struct{}{}
	for range checkWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.check(ctx, chunks, scannedCurrent, from.UnixNano(), rep, &mu); err != nil {
				cancel(err)
				for range chunks { // let the reader finish
				}
			}
		}()
	}
	orders := 0
	err := r.opts.Store.ScanOrdersRaw(r.opts.ChunkOrders, func(chunk *projections.RawChunk) error {
		orders += len(chunk.Orders)
		select {
		case chunks <- chunk:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(chunks)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && err == nil {
		err = cause
	}
	rep.Orders = orders
	return err
}

// check checks the orders of each chunk and reconciles those that need it,
// counting the open and the active orders (active since from, Unix ns).
// Every order kept for reconciling is active and its id is recorded in
// rep.reconciled, so Summarise counts each order in mismatch as active once.
// A chunk's bytes are reused once released: the rows checked share them and
// are dropped; the IDs and rows of the orders kept for reconciling are copied.
func (r *Reconciler) check(ctx context.Context, chunks <-chan *projections.RawChunk, scannedCurrent func() bool, from int64, rep *Report, mu *sync.Mutex) error {
	e := r.opts.Detector.Engine()
	var act []orderRows
	var scratch []projections.Row
	// reconcile reconciles the orders kept so far under the detector's
	// lock, in one durable commit: gathered over chunks, up to
	// Options.ReconcileBatch orders, so a sweep that raises many mismatches does
	// not fsync once per chunk while holding the lock.
	reconcile := func() error {
		if len(act) == 0 {
			return nil
		}
		opened := 0
		err := r.opts.Detector.Update(func(b *pebble.Batch, e *detector.Engine, now time.Time) error {
			current := scannedCurrent() // no row changed since the scan
			for _, o := range act {
				v, err := e.ReconcileOrder(b, o.order, o.rows, now, current)
				if err != nil {
					return err
				}
				opened += v.Raised
				if !o.open {
					continue // what was just raised disagrees by construction
				}
				if err := e.ResolveAgreedOrder(b, o.order, now); err != nil {
					return err
				}
			}
			return nil
		})
		mu.Lock()
		if err == nil {
			rep.Opened += opened
		}
		for _, o := range act {
			rep.reconciled[o.order] = struct{}{}
		}
		mu.Unlock()
		act = act[:0]
		return err
	}
	for chunk := range chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw := chunk.Orders
		open, active, inFlight := 0, 0, 0
		now := r.opts.Detector.Now() // the clock Update judges by
		for i := range raw {
			if !e.Owns(raw[i].OrderID) {
				continue // another instance's order: its sweep checks it
			}
			rows, err := raw[i].Rows(scratch[:0], true) // checked, then dropped
			if err != nil {
				return err
			}
			scratch = rows
			v, overdue, hasOpen := e.CheckOrder(raw[i].OrderID, rows, now)
			if !v.Closed {
				open++
			}
			if !v.Closed || overdue || hasOpen || lastReceived(rows) >= from {
				active++
			}
			inFlight += v.InFlight
			if overdue || hasOpen {
				kept, err := raw[i].Rows(nil, false) // kept: copies
				if err != nil {
					return err
				}
				act = append(act, orderRows{order: strings.Clone(raw[i].OrderID), rows: kept, open: hasOpen})
			}
		}
		chunk.Release()
		mu.Lock()
		rep.OpenOrders += open
		rep.ActiveOrders += active
		rep.InFlight += inFlight
		mu.Unlock()
		if len(act) >= r.opts.ReconcileBatch {
			if err := reconcile(); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return reconcile()
}

var keyLatest = []byte(projections.PrefixReports + "latest")

// Save stores the report as the latest and in the history.
func Save(s *projections.Store, rep *Report) error {
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	b := s.NewWriteBatch()
	_ = b.Set(keyLatest, data, nil)
	_ = b.Set([]byte(projections.PrefixReports+"h/"+rep.ID), data, nil)
	return s.Commit(b)
}

// ErrNoReport means no reconciliation has run yet.
var ErrNoReport = errors.New("reconcile: no report yet")

// Latest reads the last report.
func Latest(s *projections.Store) (*Report, error) {
	v, closer, err := s.Get(keyLatest)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNoReport
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	var rep Report
	if err := json.Unmarshal(v, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

func fmtTime(t time.Time) string { return projections.FormatTime(t.UnixNano()) }

// Stat is a mean and a 90th percentile over Count samples, in seconds.
type Stat struct {
	Count       int     `json:"count"`
	MeanSeconds float64 `json:"mean_seconds"`
	P90Seconds  float64 `json:"p90_seconds"`
}

func stat(samples []float64) Stat {
	if len(samples) == 0 {
		return Stat{}
	}
	sort.Float64s(samples)
	sum := 0.0
	for _, s := range samples {
		sum += s
	}
	idx := (len(samples)*9+9)/10 - 1 // nearest rank
	return Stat{Count: len(samples), MeanSeconds: round3(sum / float64(len(samples))), P90Seconds: round3(samples[idx])}
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}
