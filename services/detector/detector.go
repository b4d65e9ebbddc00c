package detector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/partition"
	"github.com/driftwatch/driftwatch/services/schedule"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// ConsumerName is the detector's durable consumer.
const ConsumerName = "dw-detector"

// ErrLogGap means events vanished from the log before the detector read
// them (a purge, a deleted message): detection cannot go on as if they had
// never been sent.
var ErrLogGap = consume.ErrLogGap

// AppliedFunc reports each system's projector checkpoint.
type AppliedFunc func(system string) uint64

// Options configures the detector shell.
type Options struct {
	JS      jetstream.JetStream
	Store   *projections.Store
	Engine  *Engine
	Applied AppliedFunc
	Logger  zerolog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TickEvery is how often due expectations are judged (default 100ms).
	TickEvery time.Duration
	// OnPublished, when set, is called after an alert was published, with
	// the alert's outbox entry (the notifier, tests). It must not block.
	OnPublished func(e OutboxEntry)
	// Metrics, when set, records committed alerts, open expectations and
	// published alerts (NewMetrics).
	Metrics *Metrics
	// Tracing, when enabled, makes a span per event detected.
	Tracing *telemetry.Tracing
	// Instance, when set, is appended to the durable consumer's name
	// (consume.InstanceName); the checkpoint keeps the plain name.
	Instance string
	// Owned, when set, is the partitions this instance owns: only their
	// orders are judged (the engine is told too, Engine.SetOwned), and
	// each batch holds the set while it changes the store. Nil: every
	// order.
	Owned *partition.Set
	// Pass, when set, is the projector's one pass over the log, which
	// hands each batch it applied to JudgeBatch: the detector then has
	// no consumer of its own (Applied is not needed).
	Pass Pass
}

// Pass is the one consumer that both projects and judges the log, as the
// detector's status sees it.
type Pass interface {
	// Pending is what the server still has to deliver to it.
	Pending(ctx context.Context) uint64
	// CaughtUp reports whether it has applied every event the server
	// holds for it (it may read some subjects only).
	CaughtUp(ctx context.Context) (bool, error)
}

// Detector runs the detection consumer, the judgement ticker and the
// outbox publisher.
type Detector struct {
	opts   Options
	log    zerolog.Logger
	stream jetstream.Stream
	dur    *consume.Durable // its consumer's life; Consumer() is safe from Status

	// mu serialises every read-modify-write of the detector's keys (the
	// consumer, the ticker and the API's resolve use separate batches).
	mu sync.Mutex

	applied      atomic.Uint64 // checkpoint
	lastReceived atomic.Int64  // received time of the last processed message
	judgedTo     atomic.Int64  // the watermark of the last complete Tick (Unix ns)
	outboxWake   chan struct{}

	// hints are the projector's outcomes by sequence, handed over in
	// process so the detector does not read back what was just written.
	// Bounded; a missing hint falls back to the store.
	hintMu sync.Mutex
	hints  map[uint64]hint

	// lastExpiry is when gate flags were last checked for expiry (owned
	// by the tick loop).
	lastExpiry time.Time
}

// expiryEvery is how often the tick loop expires gate flags.
const expiryEvery = time.Minute

// hint is what the projector applied at one sequence.
type hint struct {
	order string // "" when nothing was applied (rejected, duplicate)
	entry projections.Entry
}

// maxHints bounds the hints kept for the detector.
const maxHints = 50000

// Hint hands the projector's committed outcomes to the detector.
func (d *Detector) Hint(outcomes []projections.Outcome) {
	d.hintMu.Lock()
	defer d.hintMu.Unlock()
	if d.hints == nil {
		d.hints = make(map[uint64]hint, 4096)
	}
	for i := range outcomes {
		o := &outcomes[i]
		if len(d.hints) >= maxHints {
			return
		}
		switch o.Result {
		case projections.Applied, projections.Late, projections.Acked:
			d.hints[o.Entry.Seq] = hint{order: o.Event.OrderID, entry: o.Entry}
		case projections.NotOwned:
			d.hints[o.Entry.Seq] = hint{} // another instance's order: nothing to detect here
		}
	}
}

// ForgetHints drops every hint: after a change of ownership, a "not
// owned" hint may be about an order that is now this instance's.
func (d *Detector) ForgetHints() {
	d.hintMu.Lock()
	d.hints = nil
	d.hintMu.Unlock()
}

func (d *Detector) takeHint(seq uint64) (hint, bool) {
	d.hintMu.Lock()
	defer d.hintMu.Unlock()
	h, ok := d.hints[seq]
	if ok {
		delete(d.hints, seq)
	}
	return h, ok
}

// Validate reports every missing or bad option, each with its field. JS
// and Applied are needed only to Start (a detector that only records and
// resolves, as reconciliation's tests use it, runs without them).
func (o *Options) Validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("detector: Options.Store is required"))
	}
	if o.Engine == nil {
		errs = append(errs, errors.New("detector: Options.Engine is required"))
	}
	if o.TickEvery < 0 {
		errs = append(errs, fmt.Errorf("detector: Options.TickEvery: %v is negative", o.TickEvery))
	}
	return errors.Join(errs...)
}

// New returns a detector, or the options' problems.
func New(opts Options) (*Detector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TickEvery == 0 {
		opts.TickEvery = 100 * time.Millisecond
	}
	d := &Detector{opts: opts, log: opts.Logger, outboxWake: make(chan struct{}, 1)}
	var systems []string
	for _, s := range opts.Engine.cfg.Systems {
		systems = append(systems, s.ID)
	}
	if err := opts.Metrics.seed(opts.Store, systems); err != nil {
		return nil, err
	}
	if err := opts.Metrics.observeExpectations(d); err != nil {
		return nil, err
	}
	return d, nil
}

// Start reads the detector's checkpoint and creates (or resumes) its
// durable consumer there, which Run reads; with Options.Pass there is none
// (the pass hands the events over).
func (d *Detector) Start(ctx context.Context) error {
	if d.opts.JS == nil || (d.opts.Applied == nil && d.opts.Pass == nil) {
		return errors.New("detector: Options.JS, and Options.Applied or Options.Pass, are required to start")
	}
	s, err := broker.OpenStream(ctx, d.opts.JS, events.EventsStream)
	if err != nil {
		return fmt.Errorf("detector: open stream: %w", err)
	}
	d.stream = s
	ckpt, err := d.opts.Store.Checkpoint(ConsumerName)
	if err != nil {
		return err
	}
	d.applied.Store(ckpt)
	if d.opts.Pass != nil {
		return nil // fed by the projector's pass (JudgeBatch)
	}
	d.dur = &consume.Durable{
		Stream: s, Name: consume.InstanceName(ConsumerName, d.opts.Instance), InactiveThreshold: consume.InstanceInactive(d.opts.Instance), Description: "driftwatch detector", Filter: events.InPrefix + ">", MaxBatch: maxBatch,
		Checkpoint: d.applied.Load,
		Apply:      d.processBatch,
		Recover: func(ctx context.Context, err error) error {
			if errors.Is(err, ErrLogGap) {
				return err // events are gone: judging on would hide them
			}
			return nil // a failed batch was already forgotten (finish)
		},
		OnFailure: func(err error) {
			d.log.Error().Err(err).Msg("detector session failed; resuming from the checkpoint")
		},
	}
	return d.dur.Create(ctx)
}

// Run reads the log, judges due expectations on every tick (overdue ones
// on the first) and publishes the outbox, until ctx ends (then it returns
// nil) or events are found missing from the log (then it stops and returns
// why: judging on would hide them).
func (d *Detector) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if d.dur != nil {
		g.Go(func() error {
			if err := d.dur.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("detector: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		schedule.Every(gctx, d.opts.TickEvery, true, d.Tick, func(err error) {
			d.log.Error().Err(err).Msg("detector tick failed")
		})
		return nil
	})
	g.Go(func() error {
		d.outboxLoop(gctx)
		return nil
	})
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Engine is the detection engine, for read-only checks outside Update
// (Engine.CheckOrder).
func (d *Detector) Engine() *Engine { return d.opts.Engine }

// Now is the detector's clock.
func (d *Detector) Now() time.Time { return d.opts.Now() }

// JudgedTo is the watermark of the last complete Tick: every
// expectation due by it has been judged (and its alert queued).
func (d *Detector) JudgedTo() time.Time { return time.Unix(0, d.judgedTo.Load()) }

// Applied is the detector's checkpoint.
func (d *Detector) Applied() uint64 { return d.applied.Load() }

const maxBatch = 1000

// waitProjected waits until the projector of system has applied seq.
func (d *Detector) waitProjected(ctx context.Context, system string, seq uint64) error {
	for d.opts.Applied(system) < seq {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

func (d *Detector) processBatch(ctx context.Context, msgs []consume.Msg) error {
	items := make([]item, 0, len(msgs))
	last := d.applied.Load()
	if d.opts.Tracing.Enabled() {
		for _, m := range msgs {
			_, span := d.opts.Tracing.StartFromNATS(ctx, "driftwatch.detect", m.Headers())
			defer span.End()
		}
	}
	for _, m := range msgs {
		meta := m.Meta
		seq := meta.Sequence.Stream
		if seq <= last {
			continue
		}
		// The detector reads every subject: a hole means events were
		// purged or deleted before they were judged.
		if err := consume.CheckContiguous(last, seq); err != nil {
			return err
		}
		sys, _ := events.SystemFromSubject(m.Subject())
		items = append(items, item{seq, sys, meta.Timestamp})
		last = seq
	}
	if len(items) > 0 {
		// The projector must hold each event before the detector reads it.
		for _, it := range items {
			if d.opts.Engine.known(it.system) {
				if err := d.waitProjected(ctx, it.system, it.seq); err != nil {
					return err
				}
			}
		}
		d.opts.Owned.Hold()
		d.mu.Lock()
		err := d.applyItems(items, func(b *pebble.Batch, it item) error {
			if !d.opts.Engine.known(it.system) {
				return nil
			}
			if h, ok := d.takeHint(it.seq); ok {
				if h.order == "" {
					return nil
				}
				return d.opts.Engine.OnEntry(b, h.order, h.entry, d.opts.Now())
			}
			order, err := d.opts.Store.OrderOfSeq(it.seq)
			if errors.Is(err, projections.ErrNotFound) {
				return nil // rejected, duplicate or another's: nothing to detect
			}
			if err != nil {
				return err
			}
			if !d.opts.Owned.Owns(order) {
				return nil // kept from when its partition was this instance's
			}
			entry, err := projections.ReadEntry(b, order, it.seq)
			if err != nil {
				return fmt.Errorf("order index %s/%d: %w", order, it.seq, err)
			}
			return d.opts.Engine.OnEntry(b, order, entry, d.opts.Now())
		}, items[len(items)-1].seq)
		d.mu.Unlock()
		if err != nil {
			d.opts.Owned.Done()
			return err
		}
		// Published before the hold is given back: a change of ownership
		// reads the checkpoint as the store has it.
		d.applied.Store(items[len(items)-1].seq)
		d.opts.Owned.Done()
		d.lastReceived.Store(items[len(items)-1].received.UnixNano())
		d.wakeOutbox()
	}
	if err := msgs[len(msgs)-1].Ack(); err != nil && ctx.Err() == nil {
		d.log.Warn().Err(err).Msg("detector ack failed; the batch will be redelivered and skipped")
	}
	return nil
}

// JudgeBatch is the detector's part of the projector's one pass
// (projector.Options.Judge): it processes the entries one batch applied
// (applied, in log order, without those the detector had already read),
// moves its checkpoint to last, and commits them with the batch's
// projections (UpdateTx). The caller holds the owned partitions
// (Owned.Hold). tx is committed or closed when it returns.
func (d *Detector) JudgeBatch(tx *projections.Tx, applied []projections.Outcome, last uint64, received time.Time) error {
	err := d.UpdateTx(tx, func(e *Engine, now time.Time) error {
		for i := range applied {
			if err := e.OnEntryTx(tx, applied[i].Event.OrderID, applied[i].Entry, now); err != nil {
				return err
			}
		}
		return projections.SetCheckpoint(tx.B, ConsumerName, last)
	})
	if err != nil {
		return err
	}
	d.applied.Store(last)
	if !received.IsZero() { // zero: a pass moving over others' events
		d.lastReceived.Store(received.UnixNano())
	}
	return nil
}

// item is one delivered message the detector has to process.
type item struct {
	seq      uint64
	system   string
	received time.Time
}

// applyItems runs fn for each item in one batch with the checkpoint, and
// commits it durably.
func (d *Detector) applyItems(items []item, fn func(*pebble.Batch, item) error, ckpt uint64) error {
	b := d.opts.Store.NewBatch()
	for _, it := range items {
		if err := fn(b, it); err != nil {
			return d.finish(b, err)
		}
	}
	return d.finish(b, projections.SetCheckpoint(b, ConsumerName, ckpt))
}

// finish ends a batch of the engine's writes (under d.mu): it commits b
// when err is nil, then lets the engine report what the batch queued
// (metrics count committed alerts only: a redelivered batch counts
// nothing twice). When err is set or the commit fails, b is dropped and
// the engine forgets what it counted in it (its open mismatches per order
// are recounted from the store), so nothing of a lost batch outlives it.
func (d *Detector) finish(b *pebble.Batch, err error) error {
	return d.finishWith(func() error { return d.opts.Store.Commit(b) }, func() { b.Close() }, err)
}

// finishWith is finish with the batch's commit and discard given.
func (d *Detector) finishWith(commit func() error, discard func(), err error) error {
	if err == nil {
		err = commit()
	} else {
		discard()
	}
	if err != nil {
		if rerr := d.opts.Engine.Discard(); rerr != nil {
			d.log.Error().Err(rerr).Msg("detector: recount open mismatches failed")
		}
		return err
	}
	d.opts.Metrics.committed(d.opts.Engine.Committed())
	return nil
}

// Watermark is the time up to which every received event has been
// processed: now when the detector has read the whole stream (under the
// one pass: every event the server holds for it), else the received time
// of the last event it processed. now is read before the stream's state.
func (d *Detector) Watermark(ctx context.Context, now time.Time) (time.Time, error) {
	if d.opts.Pass != nil {
		// The pass may read the owned partitions' subjects alone: the
		// stream's last sequence may be another instance's event.
		if caught, err := d.opts.Pass.CaughtUp(ctx); err == nil && caught {
			return now, nil
		}
		return time.Unix(0, d.lastReceived.Load()), nil
	}
	info, err := d.stream.Info(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if d.applied.Load() >= info.State.LastSeq {
		return now, nil
	}
	return time.Unix(0, d.lastReceived.Load()), nil
}

// Tick judges every expectation due by the watermark, and (once a minute)
// expires the gate flags on orders that never reached the log.
func (d *Detector) Tick(ctx context.Context) error {
	now := d.opts.Now()
	if now.Sub(d.lastExpiry) >= expiryEvery {
		d.lastExpiry = now
		if err := d.Update(func(b *pebble.Batch, e *Engine, now time.Time) error {
			_, err := e.ExpireGateFlags(b, now, e.cfg.Detect.GateFlagExpiry.D())
			return err
		}); err != nil {
			return fmt.Errorf("expire gate flags: %w", err)
		}
	}
	// The watermark holds for the partitions owned when it was read: a
	// partition gained meanwhile has events its pass has not read yet.
	owned := d.opts.Owned.Version()
	wm, err := d.Watermark(ctx, now)
	if err != nil {
		return err
	}
	var cursor []byte
	for {
		d.opts.Owned.Hold()
		if d.opts.Owned.Version() != owned {
			d.opts.Owned.Done()
			return nil // the next tick reads it again
		}
		d.mu.Lock()
		b := d.opts.Store.NewBatch()
		n, next, err := d.opts.Engine.JudgeDueAfter(b, wm, now, 2000, cursor)
		if err == nil && n == 0 {
			b.Close()
			d.mu.Unlock()
			d.opts.Owned.Done()
			// Never back: a watermark below an earlier tick's (events
			// arrived that are not read yet) un-judges nothing. Its
			// progress, handed to the next owner of a partition, would
			// have it judge aloud again what was published.
			for w := wm.UnixNano(); ; {
				cur := d.judgedTo.Load()
				if cur >= w || d.judgedTo.CompareAndSwap(cur, w) {
					break
				}
			}
			return nil
		}
		err = d.finish(b, err)
		d.mu.Unlock()
		d.opts.Owned.Done()
		if err != nil {
			return err
		}
		cursor = next
		d.wakeOutbox()
	}
}

// Resolve resolves a mismatch by hand, with a note kept in its audit trail.
func (d *Detector) Resolve(alertID, by, note string) (*Mismatch, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.opts.Store.NewBatch()
	m, err := d.opts.Engine.Resolve(b, alertID, d.opts.Now(), by, note)
	if err != nil {
		_ = d.finish(b, err)
		return m, err
	}
	if err := d.finish(b, nil); err != nil {
		return nil, err
	}
	d.wakeOutbox()
	return m, nil
}

// Assign gives a mismatch to owner ("" unassigns) and republishes its
// record (Engine.Assign); the same owner again changes nothing.
func (d *Detector) Assign(alertID, owner, by, note string) (*Mismatch, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.opts.Store.NewBatch()
	m, changed, err := d.opts.Engine.Assign(b, alertID, d.opts.Now(), owner, by, note)
	if err != nil {
		_ = d.finish(b, err)
		return m, err
	}
	if !changed {
		b.Close()
		return m, nil
	}
	if err := d.finish(b, nil); err != nil {
		return nil, err
	}
	d.wakeOutbox()
	return m, nil
}

// Note adds a note to a mismatch's audit trail (Engine.AddNote).
func (d *Detector) Note(alertID, by, note string) (*Mismatch, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.opts.Store.NewBatch()
	m, err := d.opts.Engine.AddNote(b, alertID, d.opts.Now(), by, note)
	if err != nil {
		_ = d.finish(b, err)
		return m, err
	}
	if err := d.finish(b, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// OpenExpectations counts stored expectations.
func (d *Detector) OpenExpectations() (int, error) {
	n := 0
	err := scanPrefix(d.opts.Store, prefixExp, func(k, _ []byte) error {
		if d.opts.Owned != nil {
			order, _, _ := bytes.Cut(k[len(prefixExp):], []byte{0})
			if !d.opts.Owned.Owns(string(order)) {
				return nil // kept from when its partition was this instance's
			}
		}
		n++
		return nil
	})
	return n, err
}

// Settled reports whether nothing more can be raised from what was read so
// far: every expectation is judged and every alert published. (New events
// can of course unsettle it.)
func (d *Detector) Settled() (bool, error) {
	n, err := d.OpenExpectations()
	if err != nil || n > 0 {
		return false, err
	}
	empty := true
	err = scanPrefix(d.opts.Store, prefixOutbox, func(_, _ []byte) error { empty = false; return nil })
	return empty, err
}

// Status reports the detector consumer's progress in GET /v1/status's
// consumer shape.
func (d *Detector) Status(ctx context.Context) consume.Status {
	st := consume.Status{Name: ConsumerName, Filter: events.InPrefix + ">", AppliedSeq: d.applied.Load()}
	if d.opts.Pass != nil {
		st.Pending = d.opts.Pass.Pending(ctx)
		return st
	}
	if d.dur == nil {
		return st // not started
	}
	if d.dur.Name != st.Name {
		st.Durable = d.dur.Name
	}
	if cons := d.dur.Consumer(); cons != nil {
		if info, err := cons.Info(ctx); err == nil {
			st.Pending = info.NumPending + uint64(info.NumAckPending)
		}
	}
	return st
}

// Update runs fn on a batch under the detector's lock, commits the batch
// durably and wakes the alert publisher. Other services (reconciliation,
// the alert policy) change mismatches through it.
func (d *Detector) Update(fn func(b *pebble.Batch, e *Engine, now time.Time) error) error {
	d.opts.Owned.Hold()
	defer d.opts.Owned.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.opts.Store.NewBatch()
	err := fn(b, d.opts.Engine, d.opts.Now())
	if err == nil && b.Empty() {
		b.Close()
		return nil
	}
	if err := d.finish(b, err); err != nil {
		return err
	}
	d.wakeOutbox()
	return nil
}

// UpdateTx is Update for a projections.Tx (an indexed one): fn's writes
// and the Tx's projections are committed together, durably, and the Tx's
// rows reach the store's row cache. A partition taken over is caught up so
// (services/cluster).
func (d *Detector) UpdateTx(tx *projections.Tx, fn func(e *Engine, now time.Time) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := fn(d.opts.Engine, d.opts.Now())
	if err := d.finishWith(func() error { return d.opts.Store.CommitTx(tx, true) }, tx.Close, err); err != nil {
		return err
	}
	d.wakeOutbox()
	return nil
}

// Record stores mismatches found by other services (the gate,
// reconciliation) in one durable batch and queues their alerts.
func (d *Detector) Record(ms []*Mismatch) error {
	d.opts.Owned.Hold()
	defer d.opts.Owned.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.opts.Store.NewBatch()
	now := d.opts.Now()
	for _, m := range ms {
		if err := d.opts.Engine.Raise(b, m, now); err != nil {
			return d.finish(b, err)
		}
	}
	if err := d.finish(b, nil); err != nil {
		return err
	}
	d.wakeOutbox()
	return nil
}
