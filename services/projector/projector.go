// Package projector is the NATS shell around projections.Applier. It reads
// the log in one of two shapes:
//
//   - the one pass (Options.Judge, the default when the detector runs in
//     the same process): one durable consumer (dw-pass, filter
//     driftwatch.in.>) delivers each event once; each batch is applied to
//     every system's projection and judged by the detector in one Pebble
//     batch, with every system's checkpoint and the detector's. An
//     instance of a cluster filters it on the subjects of the partitions
//     it owns (the events stream stores each event under its partition)
//     and re-creates it from its checkpoint when they change;
//   - one durable consumer per configured system (filter
//     driftwatch.in.<system>), when this process runs no detector (a
//     process that serves only the gate), or beside the detector's own
//     consumer, as earlier versions read it (the load tool compares the
//     two).
//
// Either applies each batch of messages to the Pebble store with the
// checkpoints in the same batch, commits it durably, and only then
// acknowledges the batch (AckAll on its last message). Invalid events are dead-lettered with their reason and counted;
// they never block a consumer. A sentry dead-letters events published on the
// subject of a system the configuration does not know.
//
// Invariants:
//   - a message is acknowledged only after the batch holding its effect and
//     the checkpoint >= its sequence is durable;
//   - a message at or below the checkpoint is skipped (redelivery);
//   - the store remembers the identity (creation time) of the stream it was
//     built from; a recreated stream, or a stream whose last sequence is
//     below a checkpoint, stops the projector with a loud error rather than
//     silently skipping or re-applying.
package projector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/partition"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// ErrStreamChanged means the events stream is not the one the store was
// built from (recreated or truncated below a checkpoint).
var ErrStreamChanged = errors.New("projector: events stream changed under the store")

// ConsumerPrefix names the per-system durable consumers: dw-proj-<system>.
const ConsumerPrefix = "dw-proj-"

// MaxBatch is the most messages applied in one Pebble batch.
const MaxBatch = 1000

// Options configures the projector.
type Options struct {
	JS      jetstream.JetStream
	Store   *projections.Store
	Applier *projections.Applier
	Systems []string
	Logger  zerolog.Logger
	// Counted, when set, counts each committed batch's outcomes (stage
	// "projector").
	Counted *telemetry.EventCounter
	// OnBatch, when set, is called after each committed batch with the
	// system and the outcomes (the detector's hand-over, the alert
	// policy's arrivals, tests). It must not block,
	// and must copy what it keeps: the slice is reused for the next batch.
	OnBatch func(system string, outcomes []projections.Outcome)
	// SentryEvery is how often the sentry looks for subjects of unknown
	// systems (default 5s).
	SentryEvery time.Duration
	// Tracing, when enabled, makes a span per applied event, child of the
	// trace context in its headers.
	Tracing *telemetry.Tracing
	// Instance, when set, is appended to the durable consumers' names
	// (dw-proj-<system>_<instance>): each instance of a cluster reads the
	// whole log with its own consumers. Checkpoints keep the plain names.
	Instance string
	// Owned, when set, is the partitions this instance owns: the one
	// pass reads their subjects alone once the stream routes by
	// partition, the events of other orders that still reach it are
	// passed over (NotOwned outcomes), and each batch holds the set while
	// it changes the store. Nil: every order.
	Owned *partition.Set
	// Judge, when set, makes the projector one pass over the log: one
	// consumer (PassConsumer) reads every subject, projects each event
	// to its system and hands what each batch applied to Judge, which
	// judges it in the same transaction and commits it. Each event is
	// then delivered once, instead of once to its system's consumer and
	// once to the detector's. Nil: one consumer per system.
	Judge Judge
}

// Judge is the detector's part of the one pass (Options.Judge).
type Judge interface {
	// JudgeBatch judges the entries one batch applied (in log order,
	// without those judged before), moves its checkpoint to last in tx,
	// and commits tx durably (or closes it on an error).
	JudgeBatch(tx *projections.Tx, applied []projections.Outcome, last uint64, received time.Time) error
	// Applied is the judge's checkpoint.
	Applied() uint64
}

// PassConsumer is the one durable consumer of the one pass (Options.Judge).
const PassConsumer = "dw-pass"

// Projector runs the one pass, or the per-system consumers, and the sentry.
type Projector struct {
	opts   Options
	log    zerolog.Logger
	stream jetstream.Stream
	// routing is how the events stream names partitions in its subjects
	// (read at Start; every instance of a cluster has the same count).
	routing broker.Routing
	// ownsPartition is Options.Owned's OwnsPartition, kept as a value so
	// that each event's delivery does not make one (nil: every order).
	ownsPartition func(int) bool

	mu      sync.Mutex
	workers map[string]*worker // by consumer name
}

// Validate reports every missing or bad option, each with its field.
func (o *Options) Validate() error {
	var errs []error
	if o.JS == nil {
		errs = append(errs, errors.New("projector: Options.JS is required"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("projector: Options.Store is required"))
	}
	if o.Applier == nil {
		errs = append(errs, errors.New("projector: Options.Applier is required"))
	}
	if len(o.Systems) == 0 {
		errs = append(errs, errors.New("projector: Options.Systems: at least one system is required"))
	}
	if o.SentryEvery < 0 {
		errs = append(errs, fmt.Errorf("projector: Options.SentryEvery: %v is negative", o.SentryEvery))
	}
	return errors.Join(errs...)
}

// New returns a projector, or the options' problems.
func New(opts Options) (*Projector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.SentryEvery == 0 {
		opts.SentryEvery = 5 * time.Second
	}
	return &Projector{opts: opts, log: opts.Logger, workers: map[string]*worker{}}, nil
}

// Start checks the stream's identity and creates (or resumes) a durable
// consumer per system; Run reads them.
func (p *Projector) Start(ctx context.Context) error {
	s, err := broker.OpenStream(ctx, p.opts.JS, events.EventsStream)
	if err != nil {
		return fmt.Errorf("projector: open stream: %w", err)
	}
	p.stream = s
	p.routing = broker.RoutingOf(s.CachedInfo().Config)
	if p.opts.Owned != nil {
		p.ownsPartition = p.opts.Owned.OwnsPartition
	}
	if err := p.checkStream(ctx); err != nil {
		return err
	}
	if p.opts.Judge != nil {
		return p.startPass(ctx)
	}
	for _, sys := range p.opts.Systems {
		if _, err := p.newWorker(ctx, ConsumerPrefix+sys, events.InSubject(sys), sys); err != nil {
			return err
		}
	}
	return nil
}

// routes reports whether the event at seq is stored under its partition
// of this instance's count (Routes).
func (p *Projector) routes(seq uint64) bool {
	return p.opts.Owned != nil && Routes(p.routing, p.opts.Owned.N(), seq)
}

// readsOwnedAlone reports whether the one pass, reading on from seq and
// owning owned partitions, reads their subjects alone: the stream routes
// from seq on, and it owns some but not all partitions (owning every one,
// a single filter on every subject is cheaper than one per partition).
func (p *Projector) readsOwnedAlone(seq uint64, owned int) bool {
	return p.routes(seq) && owned < p.opts.Owned.N()
}

// Routes reports whether the events stream stores the event at seq under
// its partition of n (the stream routes by partition with that count from
// a sequence at or before seq).
func Routes(r broker.Routing, n int, seq uint64) bool {
	return r.Partitions == n && r.Partitions > 0 && seq >= r.From
}

// Route sets d's Route from its subject when the stream routes the event
// by partition of d.Partitions (Routes).
func Route(d *projections.Delivery, r broker.Routing) {
	if Routes(r, d.Partitions, d.Seq) {
		d.Route, d.Routed = events.PartitionFromSubject(d.Subject)
	}
}

// delivery is m, at seq, for the Applier: with this instance's
// partitions, and the partition its subject names when it is routed.
func (p *Projector) delivery(m consume.Msg, seq uint64) projections.Delivery {
	d := projections.Delivery{Subject: m.Subject(), Data: m.Data(), Seq: seq, Received: m.Meta.Timestamp}
	if p.opts.Owned != nil {
		d.Owns, d.Partitions = p.ownsPartition, p.opts.Owned.N()
		Route(&d, p.routing)
	}
	return d
}

// knownSubject reports whether subject is one of a configured system's
// (events.SystemSubjects), as the stream stores them.
func (p *Projector) knownSubject(subject string) bool {
	sys, ok := events.SystemFromSubject(subject)
	if !ok || !p.opts.Applier.Known(sys) {
		return false
	}
	if subject == events.InSubject(sys) {
		return true
	}
	_, ok = events.PartitionFromSubject(subject)
	return ok
}

// Run reads every consumer (and the sentry's) until ctx ends, then returns
// nil; or until one consumer cannot go on (a recreated or truncated
// stream, a store that cannot be written), then stops the others and
// returns its error. It is never only logged: the projections would stop
// following the log, and the detector, which waits for them, with them.
func (p *Projector) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	p.mu.Lock()
	for _, w := range p.workers {
		if w.dur != nil { // not a system read by the one pass
			p.runWorker(g, gctx, w)
		}
	}
	p.mu.Unlock()
	g.Go(func() error { return p.sentry(gctx) })
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// runWorker runs w's consumer in g; its error, unless g is stopping, stops g.
func (p *Projector) runWorker(g *errgroup.Group, ctx context.Context, w *worker) {
	g.Go(func() error {
		if err := w.dur.Run(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("projector consumer %s: %w", w.name, err)
		}
		return nil
	})
}

// checkStream compares the stream's identity and last sequence with what
// the store was built from.
func (p *Projector) checkStream(ctx context.Context) error {
	// The checkpoints are read before the stream's state: while serving,
	// the consumers apply on between the two reads, and a checkpoint read
	// after the stream's last sequence could be above it without anything
	// being lost. Read first, each checkpoint is at most the last sequence
	// the stream had then, which only grows.
	stored, err := p.opts.Store.StreamID()
	if err != nil {
		return err
	}
	ckpts, err := p.opts.Store.Checkpoints()
	if err != nil {
		return err
	}
	info, err := p.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("projector: stream info: %w", err)
	}
	id := info.Created.UTC().Format(time.RFC3339Nano)
	var maxCkpt uint64
	for _, c := range ckpts {
		maxCkpt = max(maxCkpt, c)
	}
	if stored != "" && stored != id {
		return fmt.Errorf("%w: the store was built from stream %s created %s, the stream now was created %s; rebuild the projections (driftwatch rebuild) or restore the stream", ErrStreamChanged, events.EventsStream, stored, id)
	}
	if info.State.LastSeq < maxCkpt {
		return fmt.Errorf("%w: stream %s ends at sequence %d but the store has applied up to %d; the stream lost data: rebuild the projections or restore the stream", ErrStreamChanged, events.EventsStream, info.State.LastSeq, maxCkpt)
	}
	if stored == "" {
		return p.opts.Store.SetStreamID(id)
	}
	return nil
}

// worker is one durable consumer and its apply loop.
type worker struct {
	name, filter, system string
	// marks (the sentry's worker only) are, per subject it watches, the
	// last sequence dead-lettered (its checkpoint key SentryName(subject)):
	// the one consumer reads every unknown subject, resumes at the lowest
	// mark and skips what each subject has already had dead-lettered.
	marks map[string]uint64
	dur   *consume.Durable // its consumer's life; Consumer() is safe from Status
	// pass (a system's worker) is the one pass that reads the system
	// instead of a consumer of its own; bySubject (the one pass's
	// worker) are the systems' workers by subject, and judged is the
	// judge's checkpoint when the pass started.
	pass      *worker
	bySubject map[string]*worker
	judged    uint64
	// filtered (the one pass's worker) says its consumer reads the bare
	// subjects and the owned partitions' alone (passFilters), chosen by
	// the partition.Set's version; else it reads every subject. Set at
	// each creation of the consumer, read by its batches (one goroutine).
	filtered atomic.Bool
	version  atomic.Uint64
	subjects atomic.Pointer[string] // its consumer's filters, for the status
	// retainedAt is when a filtered pass last checked the log still held
	// what followed its checkpoint (checkRetained).
	retainedAt time.Time
	// judge and whose (the one pass's worker; reused by each batch) are
	// the outcomes handed to the judge, and the system's worker of each
	// of outcomes.
	judge        []projections.Outcome
	whose        []*worker
	passedOver   atomic.Uint64         // the one pass: other instances' events delivered here
	applied      atomic.Uint64         // checkpoint
	outcomes     []projections.Outcome // reused by each batch (the worker's goroutine only)
	deadLettered atomic.Uint64
	duplicates   atomic.Uint64
}

// newWorker creates (or resumes) the durable consumer name on filter at its
// checkpoint, and registers its worker.
func (p *Projector) newWorker(ctx context.Context, name, filter, system string) (*worker, error) {
	ckpt, err := p.opts.Store.Checkpoint(name)
	if err != nil {
		return nil, err
	}
	w := &worker{name: name, filter: filter, system: system}
	w.applied.Store(ckpt)
	return w, p.startWorker(ctx, w, events.SystemSubjects(system))
}

// newSentryWorker creates the one consumer that dead-letters the events of
// every subject in unknown (subjects of no configured system), resuming
// at the lowest of their marks.
func (p *Projector) newSentryWorker(ctx context.Context, unknown []string) (*worker, error) {
	w := &worker{name: SentryConsumer, filter: strings.Join(unknown, " "), marks: make(map[string]uint64, len(unknown))}
	low := uint64(math.MaxUint64)
	for _, subj := range unknown {
		m, err := p.opts.Store.Checkpoint(SentryName(subj))
		if err != nil {
			return nil, err
		}
		w.marks[subj] = m
		low = min(low, m)
	}
	w.applied.Store(low)
	return w, p.startWorker(ctx, w, unknown)
}

// startWorker creates w's consumer (on filters, when set, else on
// w.filter) and registers w.
func (p *Projector) startWorker(ctx context.Context, w *worker, filters []string) error {
	name := w.name
	w.dur = &consume.Durable{
		Stream: p.stream, Name: consume.InstanceName(name, p.opts.Instance), InactiveThreshold: consume.InstanceInactive(p.opts.Instance), Description: "driftwatch projector for " + w.filter, Filter: w.filter, Filters: filters, MaxBatch: MaxBatch,
		Checkpoint: w.applied.Load,
		Apply: func(ctx context.Context, batch []consume.Msg) error {
			if w.bySubject != nil {
				return p.applyPass(ctx, w, batch)
			}
			return p.applyBatch(ctx, w, batch)
		},
		Recover: func(ctx context.Context, err error) error {
			if errors.Is(err, consume.ErrLogGap) {
				return err // events are gone: going on would hide them
			}
			// The session may have failed because the stream was
			// deleted, recreated or truncated: resuming at the
			// checkpoint on another stream would skip or misread
			// events. Stop loudly instead.
			if errors.Is(err, ErrStreamChanged) {
				return err
			}
			if err := p.checkStream(ctx); errors.Is(err, ErrStreamChanged) {
				return err
			}
			return nil
		},
		OnFailure: func(err error) {
			p.log.Error().Err(err).Str("consumer", name).Msg("consumer session failed; resuming from the checkpoint")
		},
	}
	if w.bySubject != nil {
		w.dur.FiltersAt, w.dur.Moved = p.passFilters(w), p.opts.Owned.Changed
		w.dur.Idle, w.dur.IdleAfter = func(ctx context.Context) error { return p.idlePass(ctx, w) }, IdleAfter
	}
	if err := w.dur.Create(ctx); err != nil {
		return err
	}
	w.deadLettered.Store(counter(p.opts.Store, name, "dead_lettered"))
	w.duplicates.Store(counter(p.opts.Store, name, "duplicates"))
	p.mu.Lock()
	p.workers[name] = w
	p.mu.Unlock()
	return nil
}

// startPass creates (or resumes) the one pass's consumer, and a worker
// per system that keeps the system's checkpoint and counts. The pass
// starts after the lowest of the systems' checkpoints and the judge's
// (equal once it has run: one batch moves them all), and skips what each
// has already had: a store built by one consumer per system goes on
// where each stopped.
func (p *Projector) startPass(ctx context.Context) error {
	pass := &worker{name: PassConsumer, filter: events.InPrefix + ">", marks: map[string]uint64{},
		bySubject: map[string]*worker{}, judged: p.opts.Judge.Applied()}
	low := pass.judged
	for _, sys := range p.opts.Systems {
		name := ConsumerPrefix + sys
		ckpt, err := p.opts.Store.Checkpoint(name)
		if err != nil {
			return err
		}
		w := &worker{name: name, filter: events.InSubject(sys), system: sys, pass: pass}
		w.applied.Store(ckpt)
		w.deadLettered.Store(counter(p.opts.Store, name, "dead_lettered"))
		w.duplicates.Store(counter(p.opts.Store, name, "duplicates"))
		pass.marks[w.filter] = ckpt
		pass.bySubject[w.filter] = w
		low = min(low, ckpt)
		p.mu.Lock()
		p.workers[name] = w
		p.mu.Unlock()
	}
	pass.applied.Store(low)
	return p.startWorker(ctx, pass, nil)
}

// passFilters gives the one pass's subjects at each creation of its
// consumer: every subject (driftwatch.in.>), until the stream routes by
// partition with this instance's count from the checkpoint on; then the
// subjects without a partition (driftwatch.in.*), which every instance
// reads, and the owned partitions' (driftwatch.in.*.<p>). Other
// instances' events are then never delivered here. The gap check of
// every batch needs every subject; a filtered consumer is checked at
// creation instead: the log must still hold the event after the
// checkpoint.
func (p *Projector) passFilters(pass *worker) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		owned, version := p.opts.Owned.Snapshot()
		ckpt := pass.applied.Load()
		if !p.readsOwnedAlone(ckpt+1, len(owned)) {
			pass.filtered.Store(false)
			pass.subjects.Store(nil)
			return []string{events.InPrefix + ">"}, nil
		}
		if err := p.checkRetained(ctx, ckpt); err != nil {
			return nil, err
		}
		filters := make([]string, 0, len(owned)+1)
		filters = append(filters, events.InPrefix+"*")
		for _, q := range owned {
			filters = append(filters, events.InPrefix+"*."+strconv.Itoa(q))
		}
		pass.version.Store(version)
		pass.filtered.Store(true)
		shown := strings.Join(filters, " ")
		pass.subjects.Store(&shown)
		return filters, nil
	}
}

// IdleAfter is how long the one pass, reading its partitions' subjects
// alone, waits without a delivery before it moves its checkpoints over
// the others' events (idlePass).
const IdleAfter = time.Second

// idlePass moves the checkpoints of a pass that reads its partitions'
// subjects alone to the log's last sequence, when everything the server
// holds for it is applied: with no event of its own, its checkpoints
// would stay behind while the others' events go on, and the detector's
// progress (which a take-over waits for) and the log's retention (which
// passFilters checks at creation) are measured against them.
func (p *Projector) idlePass(ctx context.Context, pass *worker) error {
	if !pass.filtered.Load() {
		return nil // reading every subject, its checkpoint is the log's
	}
	// The log's end first: every event of ours up to it is then either
	// pending, unacknowledged, or applied.
	si, err := p.stream.Info(ctx)
	if err != nil {
		return nil // asked again after the next idle wait
	}
	last := si.State.LastSeq
	if last <= pass.applied.Load() {
		return nil
	}
	if caught, err := p.caughtUp(ctx, pass); err != nil || !caught {
		return nil
	}
	p.opts.Owned.Hold()
	defer p.opts.Owned.Done()
	if p.stale(pass) {
		return consume.ErrResubscribe
	}
	tx := p.opts.Store.NewTx(true)
	for _, w := range pass.bySubject {
		if err := projections.SetCheckpoint(tx.B, w.name, last); err != nil {
			tx.Close()
			return err
		}
	}
	if err := p.opts.Judge.JudgeBatch(tx, nil, last, time.Time{}); err != nil {
		return err
	}
	for _, w := range pass.bySubject {
		w.applied.Store(last)
	}
	pass.applied.Store(last)
	return nil
}

// checkRetained returns ErrLogGap when the log no longer holds the event
// after last, the checkpoint of a pass that reads its partitions' subjects
// alone (its sequences skip the others' events, so a hole cannot be told
// from them): the events between were removed before they were read.
func (p *Projector) checkRetained(ctx context.Context, last uint64) error {
	info, err := p.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	if first := info.State.FirstSeq; last > 0 && first > last+1 {
		return consume.CheckContiguous(last, first)
	}
	return nil
}

// systemOf is the worker of the configured system whose subject this is
// (driftwatch.in.<system>, or .<partition> after it), nil for another
// subject (the sentry's).
func (pass *worker) systemOf(subject string) *worker {
	if w := pass.bySubject[subject]; w != nil {
		return w
	}
	if _, ok := events.PartitionFromSubject(subject); !ok {
		return nil
	}
	return pass.bySubject[subject[:strings.LastIndexByte(subject, '.')]]
}

// applyPass applies one batch of the one pass: each event of a
// configured system is projected to its system (unless that system had
// it already) and, once applied, handed to the judge (unless it had it
// already); events on other subjects are the sentry's. Every system's
// checkpoint and the judge's move to the batch's last sequence in the
// transaction the judge commits.
func (p *Projector) applyPass(ctx context.Context, pass *worker, msgs []consume.Msg) error {
	p.opts.Owned.Hold()
	defer p.opts.Owned.Done()
	if p.stale(pass) {
		// Delivered by the partitions owned before: a partition gained
		// since has its events after the checkpoint left out.
		return consume.ErrResubscribe
	}
	ckpt := pass.applied.Load()
	if pass.filtered.Load() && msgs[len(msgs)-1].Meta.Sequence.Stream > ckpt+1 && time.Since(pass.retainedAt) >= time.Second {
		// At most once a second: events skipped here are others'
		// unless the log's retention removed them first.
		if err := p.checkRetained(ctx, ckpt); err != nil {
			return err
		}
		pass.retainedAt = time.Now()
	}
	// Indexed: the judge reads what the batch wrote.
	tx := p.opts.Store.NewTx(true)
	handed := false
	defer func() {
		if !handed {
			tx.Close()
		}
	}()
	outcomes, judge, whose := pass.outcomes[:0], pass.judge[:0], pass.whose[:0]
	defer func() { pass.outcomes, pass.judge, pass.whose = outcomes[:0], judge[:0], whose[:0] }()
	var spans spanList
	defer func() { spans.end() }()
	last := ckpt
	var received time.Time
	for _, m := range msgs {
		meta := m.Meta
		seq := meta.Sequence.Stream
		if seq <= last {
			continue // redelivered
		}
		// Reading every subject, a hole means events were purged or
		// deleted before they were projected and judged.
		if !pass.filtered.Load() {
			if err := consume.CheckContiguous(last, seq); err != nil {
				return err
			}
		}
		last, received = seq, meta.Timestamp
		w := pass.systemOf(m.Subject())
		if w == nil {
			continue // a subject of no configured system: the sentry's
		}
		if seq <= pass.marks[w.filter] {
			if seq > pass.judged {
				// Projected before the pass began, not judged yet.
				out, ok, err := p.projected(tx, seq)
				if err != nil {
					return err
				}
				if ok {
					judge = append(judge, out)
				}
			}
			continue
		}
		if p.opts.Tracing.Enabled() {
			_, span := p.opts.Tracing.StartFromNATS(ctx, "driftwatch.project", m.Headers(), attribute.String("system", w.system), attribute.Int64("seq", int64(seq)))
			spans = append(spans, span)
		}
		out, err := p.opts.Applier.Apply(tx, p.delivery(m, seq))
		if err != nil {
			return err
		}
		if out.Result == projections.Rejected {
			if err := p.deadLetter(ctx, w, m.Subject(), m.Data(), out, seq); err != nil {
				return err
			}
		}
		outcomes, whose = append(outcomes, out), append(whose, w)
		if out.Result == projections.NotOwned {
			pass.passedOver.Add(1)
		}
		if seq > pass.judged {
			switch out.Result {
			case projections.Applied, projections.Late, projections.Acked:
				judge = append(judge, out)
				if p.opts.Tracing.Enabled() { // as the detector's own consumer traces it
					_, span := p.opts.Tracing.StartFromNATS(ctx, "driftwatch.detect", m.Headers(), attribute.Int64("seq", int64(seq)))
					spans = append(spans, span)
				}
			}
		}
	}
	if last == ckpt {
		return p.ack(ctx, pass, msgs)
	}
	counts := make(map[*worker][2]uint64, len(pass.bySubject)) // dead-lettered, duplicates
	for i, w := range whose {
		c := counts[w]
		switch outcomes[i].Result {
		case projections.Rejected:
			c[0]++
		case projections.Duplicate:
			c[1]++
		}
		counts[w] = c
	}
	for _, w := range pass.bySubject {
		if err := projections.SetCheckpoint(tx.B, w.name, last); err != nil {
			return err
		}
		if err := addCounts(tx, w.name, counts[w][0], counts[w][1]); err != nil {
			return err
		}
	}
	handed = true
	if err := p.opts.Judge.JudgeBatch(tx, judge, last, received); err != nil {
		return err
	}
	// As applyBatch does, per system: counted and handed over before the
	// checkpoint is published.
	for _, w := range pass.bySubject {
		sys := w.outcomes[:0] // the system's worker's, reused by each batch
		for i := range outcomes {
			if whose[i] == w {
				sys = append(sys, outcomes[i])
			}
		}
		countOutcomes(p.opts.Counted, w.system, sys)
		if p.opts.OnBatch != nil && len(sys) > 0 {
			p.opts.OnBatch(w.system, sys)
		}
		w.outcomes = sys[:0]
		w.applied.Store(last)
		w.deadLettered.Add(counts[w][0])
		w.duplicates.Add(counts[w][1])
	}
	pass.applied.Store(last)
	if err := p.ack(ctx, pass, msgs); err != nil {
		return err
	}
	if !pass.filtered.Load() && p.readsOwnedAlone(last+1, len(p.opts.Owned.Owned())) {
		return consume.ErrResubscribe // from here on, the owned partitions' alone
	}
	return nil
}

// projected reads back the entry the event at seq applied before the one
// pass began, for the judge (ok false: it applied none, or it belongs to
// another instance's order).
func (p *Projector) projected(tx *projections.Tx, seq uint64) (projections.Outcome, bool, error) {
	order, err := p.opts.Store.OrderOfSeq(seq)
	if errors.Is(err, projections.ErrNotFound) {
		return projections.Outcome{}, false, nil // rejected or a duplicate
	}
	if err != nil || !p.opts.Owned.Owns(order) {
		return projections.Outcome{}, false, err
	}
	entry, err := projections.ReadEntry(tx.B, order, seq)
	if err != nil {
		return projections.Outcome{}, false, fmt.Errorf("order index %s/%d: %w", order, seq, err)
	}
	return projections.Outcome{Result: projections.Applied, Event: events.Event{OrderID: order, System: entry.System}, Entry: entry}, true, nil
}

// spanList is the trace spans of a batch, ended when it is done.
type spanList []trace.Span

func (l spanList) end() {
	for _, s := range l {
		s.End()
	}
}

func counter(s *projections.Store, consumer, name string) uint64 {
	n, _ := s.Counter(consumer, name)
	return n
}

// applyBatch applies msgs in one Pebble batch, commits it durably and acks.
func (p *Projector) applyBatch(ctx context.Context, w *worker, msgs []consume.Msg) error {
	p.opts.Owned.Hold()
	defer p.opts.Owned.Done()
	ckpt := w.applied.Load()
	tx := p.opts.Store.NewTx(false)
	committed := false
	defer func() {
		if !committed {
			tx.Close()
		}
	}()
	outcomes := w.outcomes[:0]
	defer func() { w.outcomes = outcomes[:0] }()
	var dead, dups uint64
	var spans spanList
	defer func() { spans.end() }()
	last := ckpt
	for _, m := range msgs {
		meta := m.Meta
		seq := meta.Sequence.Stream
		if seq <= last || (w.marks != nil && seq <= w.marks[m.Subject()]) {
			continue // redelivered, or already dead-lettered: already applied
		}
		if p.opts.Tracing.Enabled() {
			_, span := p.opts.Tracing.StartFromNATS(ctx, "driftwatch.project", m.Headers(), attribute.String("system", w.system), attribute.Int64("seq", int64(seq)))
			spans = append(spans, span)
		}
		var out projections.Outcome
		if w.system == "" {
			out = projections.Outcome{Result: projections.Rejected, Err: unknownSubjectError(m.Subject())}
		} else {
			var err error
			out, err = p.opts.Applier.Apply(tx, p.delivery(m, seq))
			if err != nil {
				return err
			}
		}
		switch out.Result {
		case projections.Rejected:
			if err := p.deadLetter(ctx, w, m.Subject(), m.Data(), out, seq); err != nil {
				return err
			}
			dead++
		case projections.Duplicate:
			dups++
		}
		outcomes = append(outcomes, out)
		last = seq
	}
	var marks map[string]uint64 // the sentry's, moved by this batch
	if last != ckpt && w.marks != nil {
		marks = map[string]uint64{}
		for _, m := range msgs {
			if seq := m.Meta.Sequence.Stream; seq > w.marks[m.Subject()] {
				marks[m.Subject()] = seq
			}
		}
		for subj, seq := range marks {
			if err := projections.SetCheckpoint(tx.B, SentryName(subj), seq); err != nil {
				return err
			}
		}
	}
	if last != ckpt {
		if err := projections.SetCheckpoint(tx.B, w.name, last); err != nil {
			return err
		}
		if err := addCounts(tx, w.name, dead, dups); err != nil {
			return err
		}
		committed = true
		if err := p.opts.Store.CommitTx(tx, true); err != nil {
			return err
		}
		countOutcomes(p.opts.Counted, w.system, outcomes)
		// OnBatch runs before the checkpoint is published: whoever waits
		// for the checkpoint (the detector) finds the outcomes handed over.
		if p.opts.OnBatch != nil && len(outcomes) > 0 {
			p.opts.OnBatch(w.system, outcomes)
		}
		w.applied.Store(last)
		maps.Copy(w.marks, marks)
		w.deadLettered.Add(dead)
		w.duplicates.Add(dups)
	}
	return p.ack(ctx, w, msgs)
}

// ack acknowledges a batch of w's consumer once its effect is durable.
// AckAll: acknowledging the last message acknowledges the batch.
func (p *Projector) ack(ctx context.Context, w *worker, msgs []consume.Msg) error {
	if err := msgs[len(msgs)-1].Ack(); err != nil && ctx.Err() == nil {
		p.log.Warn().Err(err).Str("consumer", w.name).Msg("ack failed; the batch will be redelivered and skipped")
	}
	return nil
}

// deadLetter keeps a rejected event in the dead-letter stream, under its
// system (w's, else the event's or its subject's), and logs why.
func (p *Projector) deadLetter(ctx context.Context, w *worker, subject string, data []byte, out projections.Outcome, seq uint64) error {
	sys := out.Event.System
	if w.system != "" {
		sys = w.system
	} else if s, ok := events.SystemFromSubject(subject); ok {
		sys = s
	}
	if err := DeadLetter(ctx, p.opts.JS, sys, data, out.Err, seq); err != nil {
		return err
	}
	p.log.Warn().Str("consumer", w.name).Uint64("seq", seq).Str("code", events.ErrorCode(out.Err)).Str("reason", out.Err.Error()).Msg("event dead-lettered")
	return nil
}

// addCounts adds a batch's dead-lettered events and duplicates to the
// consumer's stored counts.
func addCounts(tx *projections.Tx, consumer string, dead, dups uint64) error {
	if dead > 0 {
		if err := projections.AddCounter(tx, consumer, "dead_lettered", dead); err != nil {
			return err
		}
	}
	if dups > 0 {
		return projections.AddCounter(tx, consumer, "duplicates", dups)
	}
	return nil
}

// DeadLetter keeps the log's event seq, of system, in the dead-letter
// stream with its reason. Its message id is the log sequence: whoever
// dead-letters it again (a redelivery, the next owner of its partition)
// is dropped by JetStream within the stream's window.
func DeadLetter(ctx context.Context, js jetstream.JetStream, system string, data []byte, reason error, seq uint64) error {
	dl := events.DeadLetterMsg(system, data, reason)
	dl.Header.Set(events.HeaderMsgID, fmt.Sprintf("log:%d", seq))
	dl.Header.Set("Driftwatch-Log-Seq", fmt.Sprint(seq))
	if _, err := js.PublishMsg(ctx, dl, jetstream.WithExpectStream(events.DLQStream)); err != nil {
		return fmt.Errorf("dead-letter log seq %d: %w", seq, err)
	}
	return nil
}

func unknownSubjectError(subject string) error {
	ve := &events.ValidationError{}
	if sys, ok := events.SystemFromSubject(subject); ok {
		ve.Add("system", events.CodeUnknownSystem, fmt.Sprintf("%q (from subject %s) is not a configured system", sys, subject))
	} else {
		ve.Add("system", events.CodeSubjectMismatch, fmt.Sprintf("subject %s is not driftwatch.in.<system>", subject))
	}
	return ve
}

// sentry checks the stream's identity, and looks for subjects of unknown
// systems in the stream: one consumer (SentryConsumer) dead-letters the
// events of all of them, created again on the grown set of subjects when
// a new one appears. However many junk subjects arrive, they cost one
// consumer.
func (p *Projector) sentry(ctx context.Context) error {
	if err := p.dropOldSentries(ctx); err != nil {
		p.log.Warn().Err(err).Msg("sentry: removing the per-subject consumers of earlier versions failed")
	}
	var watching []string
	var run struct {
		cancel context.CancelFunc
		done   chan error
	}
	stop := func() error {
		if run.cancel == nil {
			return nil
		}
		run.cancel()
		err := <-run.done
		run.cancel = nil
		return err
	}
	defer stop()
	tick := time.NewTicker(p.opts.SentryEvery)
	defer tick.Stop()
	for {
		// The stream's identity is checked while serving too: a stream
		// recreated or truncated under a consumer that keeps reading
		// must not be followed silently.
		if err := p.checkStream(ctx); errors.Is(err, ErrStreamChanged) {
			return err
		}
		info, err := p.stream.Info(ctx, jetstream.WithSubjectFilter(events.InPrefix+">"))
		if err == nil {
			var unknown []string
			for subj := range info.State.Subjects {
				if !p.knownSubject(subj) && !slices.Contains(watching, subj) {
					unknown = append(unknown, subj)
				}
			}
			if len(unknown) > 0 {
				if err := stop(); err != nil {
					return err
				}
				all := slices.Sorted(slices.Values(append(slices.Clone(watching), unknown...)))
				w, err := p.newSentryWorker(ctx, all)
				if err != nil {
					p.log.Error().Err(err).Strs("subjects", unknown).Msg("sentry consumer failed to start")
				} else {
					watching = all
					wctx, cancel := context.WithCancel(ctx)
					run.cancel, run.done = cancel, make(chan error, 1)
					go func() {
						err := w.dur.Run(wctx)
						if wctx.Err() != nil {
							err = nil
						}
						run.done <- err
					}()
					p.log.Warn().Strs("subjects", unknown).Msg("events on subjects of unknown systems; dead-lettering them")
				}
			}
		} else if ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("sentry: stream info failed")
		}
		var done chan error
		if run.cancel != nil {
			done = run.done
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			run.cancel = nil
			if err != nil {
				return fmt.Errorf("projector consumer %s: %w", SentryConsumer, err)
			}
		case <-tick.C:
		}
	}
}

// dropOldSentries deletes the per-subject sentry consumers earlier
// versions made (dw-sentry-<hash>); their checkpoints stay, as the marks of
// the one sentry consumer.
func (p *Projector) dropOldSentries(ctx context.Context) error {
	names := p.stream.ConsumerNames(ctx)
	var old []string
	for name := range names.Name() {
		if strings.HasPrefix(name, SentryConsumer+"-") {
			old = append(old, name)
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, name := range old {
		if err := p.stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
	}
	return nil
}

// countOutcomes counts a committed batch's outcomes per result.
func countOutcomes(c *telemetry.EventCounter, system string, outcomes []projections.Outcome) {
	if c == nil {
		return
	}
	var counts [projections.NotOwned + 1]int64
	for i := range outcomes {
		counts[outcomes[i].Result]++
	}
	for r := projections.Applied; r <= projections.Rejected; r++ {
		c.Add(system, r.String(), counts[r])
	}
}

// SentryConsumer is the durable consumer that dead-letters the events on
// subjects of no configured system.
const SentryConsumer = "dw-sentry"

// SentryName is the checkpoint key of subject, a subject of no configured
// system: the last of its events the sentry dead-lettered. (Earlier
// versions named a consumer per subject so.)
func SentryName(subject string) string {
	h := fnv.New64a()
	h.Write([]byte(subject))
	return fmt.Sprintf("dw-sentry-%016x", h.Sum64())
}

// NewApplier builds the projection state machine for a configuration.
func NewApplier(cfg *config.Config) *projections.Applier {
	tables := make(map[string]*mapping.Table, len(cfg.Systems))
	for _, s := range cfg.Systems {
		t, _ := cfg.Mappings.Table(s.Platform) // validated at load
		tables[s.ID] = t
	}
	return projections.NewApplier(tables, cfg.Detect.MaxFutureSkew.D(), cfg.Zones())
}

// Status reports every consumer's applied sequence and pending count.
func (p *Projector) Status(ctx context.Context) []consume.Status {
	p.mu.Lock()
	ws := make([]*worker, 0, len(p.workers))
	for _, w := range p.workers {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	sort.Slice(ws, func(i, j int) bool { return ws[i].name < ws[j].name })
	out := make([]consume.Status, 0, len(ws))
	pending := map[*worker]uint64{} // by the worker whose consumer it is
	for _, w := range ws {
		st := consume.Status{Name: w.name, System: w.system, Filter: w.filter, AppliedSeq: w.applied.Load(),
			DeadLettered: w.deadLettered.Load(), Duplicates: w.duplicates.Load()}
		if w.system != "" {
			// What is read of the system: its bare subject and, where
			// the stream routes by partition, its partitions' subjects.
			st.Filter = strings.Join(events.SystemSubjects(w.system), " ")
		}
		if f := w.subjects.Load(); f != nil {
			st.Filter = *f // the one pass reading its partitions alone
		}
		if w.dur != nil && w.dur.Name != w.name {
			st.Durable = w.dur.Name
		}
		// A system read by the one pass reports what the pass still has
		// to deliver; its counts are the system's own (the pass's entry
		// counts nothing twice).
		reader := w
		if w.pass != nil {
			reader = w.pass
		}
		n, ok := pending[reader]
		if !ok {
			n = p.pending(ctx, reader)
			pending[reader] = n
		}
		st.Pending = n
		out = append(out, st)
	}
	return out
}

// pending is what the server still has to deliver to w's consumer.
func (p *Projector) pending(ctx context.Context, w *worker) uint64 {
	if w.dur == nil {
		return 0
	}
	cons := w.dur.Consumer()
	if cons == nil {
		return 0
	}
	info, err := cons.Info(ctx)
	if err != nil || p.stale(w) {
		// Between two consumers, or the pass about to read again after
		// a change of partitions: at most the rest of the log.
		si, err := p.stream.Info(ctx)
		if err != nil {
			return 0
		}
		return si.State.LastSeq - min(si.State.LastSeq, w.applied.Load())
	}
	return info.NumPending + uint64(info.NumAckPending)
}

// stale reports whether w (the one pass) reads the partitions that were
// owned before the last change of ownership: it reads again from its
// checkpoint (consume.ErrResubscribe) before it applies anything more.
func (p *Projector) stale(w *worker) bool {
	return w.filtered.Load() && p.opts.Owned.Version() != w.version.Load()
}

// PassedOver is how many events of other instances' orders the one pass
// was delivered since it started: those published without the order in
// their subject (or before the stream routed by partition), which every
// instance reads.
func (p *Projector) PassedOver() uint64 {
	w := p.passWorker()
	if w == nil {
		return 0
	}
	return w.passedOver.Load()
}

// CaughtUp reports whether the one pass has applied every event the
// server holds for it: its consumer has nothing left to deliver and
// nothing unacknowledged (an error: it cannot tell, or it is not running).
func (p *Projector) CaughtUp(ctx context.Context) (bool, error) {
	w := p.passWorker()
	if w == nil || w.dur == nil || w.dur.Consumer() == nil {
		return false, errors.New("projector: the one pass is not running")
	}
	return p.caughtUp(ctx, w)
}

// caughtUp is CaughtUp for w, the one pass's running worker.
func (p *Projector) caughtUp(ctx context.Context, w *worker) (bool, error) {
	if p.stale(w) {
		return false, nil
	}
	info, err := w.dur.Consumer().Info(ctx)
	if err != nil {
		return false, err
	}
	return info.NumPending == 0 && info.NumAckPending == 0 && !p.stale(w), nil
}

// Pending is what the server still has to deliver to the one pass
// (detector.Pass); 0 without it.
func (p *Projector) Pending(ctx context.Context) uint64 {
	w := p.passWorker()
	if w == nil {
		return 0
	}
	return p.pending(ctx, w)
}

// passWorker is the one pass's worker (nil: the projector reads with a
// consumer per system).
func (p *Projector) passWorker() *worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers[PassConsumer]
}

// Applied returns each system's checkpoint (for lag checks).
func (p *Projector) Applied() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.workers))
	for _, w := range p.workers {
		if w.system != "" {
			out[w.system] = w.applied.Load()
		}
	}
	return out
}

// AppliedOf returns one system's checkpoint (0 for an unknown system).
func (p *Projector) AppliedOf(system string) uint64 {
	p.mu.Lock()
	w := p.workers[ConsumerPrefix+system]
	p.mu.Unlock()
	if w == nil {
		return 0
	}
	return w.applied.Load()
}
