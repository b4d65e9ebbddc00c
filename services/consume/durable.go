package consume

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/services/broker"
)

// Durable is the whole life of one durable consumer of the log, the same
// for every reader (each projector worker, the detector):
//
//   - it is created at the reader's checkpoint + 1: the reader's store is
//     the authority on what was applied, and a consumer left over from an
//     earlier run may have delivered messages that were never applied
//     (with AckAll a later acknowledgement would cover them), so it is
//     never reused as it is;
//   - it is read in sessions of in-order batches (Reader), each applied by
//     Apply, which commits and acknowledges;
//   - a failed session drops what it delivered after the last applied
//     batch; after Retry, Recover decides whether the reader can go on,
//     and the consumer is created again at the checkpoint + 1, so messages
//     are always applied in stream order.
//
// The consumer's state lives in memory on the server (it is recreated from
// the checkpoint on every start and every failed session). Consumer is safe
// to call from any goroutine while Run runs.
type Durable struct {
	Stream      jetstream.Stream
	Name        string
	Description string
	Filter      string
	// Filters, when set, are the consumer's subjects instead of Filter
	// (JetStream's FilterSubjects).
	Filters []string
	// FiltersAt, when set, gives the consumer's subjects at each
	// creation instead of Filter and Filters (a reader whose subjects
	// follow what it owns); its error fails the creation. Apply returns
	// ErrResubscribe when they have changed.
	FiltersAt func(ctx context.Context) ([]string, error)
	// Moved, with FiltersAt, gives a channel closed when its subjects
	// may change: taken before FiltersAt at each creation, it ends the
	// session (ErrResubscribe) once closed, even while nothing arrives.
	Moved func() <-chan struct{}
	moved <-chan struct{} // the current consumer's (Run's goroutine)
	// Idle, when set, runs in the session's goroutine (never beside
	// Apply) after IdleAfter without a delivery; an error ends the
	// session as Apply's does.
	Idle      func(ctx context.Context) error
	IdleAfter time.Duration
	// MaxBatch is the most messages a batch holds.
	MaxBatch int
	// Checkpoint is the last stream sequence the reader applied.
	Checkpoint func() uint64
	// Apply applies one batch in order, commits it and acknowledges it; an
	// error ends the session.
	Apply func(ctx context.Context, batch []Msg) error
	// Recover runs after a failed session, before the consumer is created
	// again. A non-nil error stops Run with it: a failure the reader
	// cannot go on from (nil: resume at the checkpoint).
	Recover func(ctx context.Context, err error) error
	// OnFailure is told of each failed session and each failed creation
	// (to log them).
	OnFailure func(err error)
	// Retry is the pause after a failure (default 1s).
	Retry time.Duration
	// InactiveThreshold, when set, lets the server delete the consumer
	// after that long without a reader: an instance of a cluster that
	// never comes back leaves none behind (Create makes it again from the
	// checkpoint).
	InactiveThreshold time.Duration

	// cons is the current consumer: replaced by Run after a failed
	// session while status requests read it.
	cons atomic.Pointer[jetstream.Consumer]
}

// Consumer is the current consumer (nil before Create).
func (d *Durable) Consumer() jetstream.Consumer {
	if c := d.cons.Load(); c != nil {
		return *c
	}
	return nil
}

// Create deletes the consumer if it exists and creates it to deliver from
// the checkpoint + 1.
func (d *Durable) Create(ctx context.Context) error {
	cfg := jetstream.ConsumerConfig{
		Durable:        d.Name,
		Description:    d.Description,
		FilterSubject:  d.Filter,
		FilterSubjects: d.Filters,
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        5 * time.Minute,
		MaxAckPending:  20000,
		MaxDeliver:     -1,
		MemoryStorage:  true,
		DeliverPolicy:  jetstream.DeliverAllPolicy,

		InactiveThreshold: d.InactiveThreshold,
	}
	if d.FiltersAt != nil {
		if d.Moved != nil {
			d.moved = d.Moved()
		}
		filters, err := d.FiltersAt(ctx)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", d.Name, err)
		}
		cfg.FilterSubjects = filters
	}
	if len(cfg.FilterSubjects) > 0 {
		cfg.FilterSubject = ""
	}
	if len(cfg.FilterSubjects) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = cfg.FilterSubjects[0], nil
	}
	if ckpt := d.Checkpoint(); ckpt > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, ckpt+1
	}
	// Both requests are asked again when left unanswered, as a cluster's
	// meta leader may leave them when other clients change it at once.
	if err := broker.RetryUnanswered(ctx, func(ctx context.Context) error {
		if err := d.Stream.DeleteConsumer(ctx, d.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reset consumer %s: %w", d.Name, err)
	}
	var cons jetstream.Consumer
	if err := broker.RetryUnanswered(ctx, func(ctx context.Context) error {
		var err error
		cons, err = d.Stream.CreateOrUpdateConsumer(ctx, cfg)
		return err
	}); err != nil {
		return fmt.Errorf("create consumer %s: %w", d.Name, err)
	}
	d.cons.Store(&cons)
	return nil
}

// ErrResubscribe, returned by Apply without applying its batch, ends the
// session so that the consumer is created again at the checkpoint with
// its subjects as FiltersAt gives them now.
var ErrResubscribe = errors.New("consume: the consumer's subjects changed")

// Run reads sessions until ctx ends (nil) or Recover refuses to go on (its
// error). Create must have succeeded first.
func (d *Durable) Run(ctx context.Context) error {
	retry := d.Retry
	if retry <= 0 {
		retry = time.Second
	}
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(retry):
			return true
		}
	}
	for {
		err := d.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, ErrResubscribe) {
			d.told(err)
			if !pause() {
				return nil
			}
			if d.Recover != nil {
				if err := d.Recover(ctx, err); err != nil {
					return err
				}
			}
		}
		for {
			err := d.Create(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrLogGap) {
				return err // events are gone: going on would hide them
			}
			d.told(err)
			if !pause() {
				return nil
			}
		}
	}
}

func (d *Durable) told(err error) {
	if d.OnFailure != nil {
		d.OnFailure(err)
	}
}

// session is one subscription and its consume-apply loop.
func (d *Durable) session(ctx context.Context) error {
	r, err := Open(d.Consumer(), d.MaxBatch)
	if err != nil {
		return fmt.Errorf("consume %s: %w", d.Name, err)
	}
	defer r.Stop()
	// The session's reads end when the subjects move; Apply runs on ctx.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if moved := d.moved; moved != nil {
		go func() {
			select {
			case <-moved:
				cancel()
			case <-sctx.Done():
			}
		}()
	}
	batch := make([]Msg, 0, d.MaxBatch)
	for {
		batch, err = d.next(sctx, r, batch)
		if errors.Is(err, errIdle) {
			if err := d.Idle(ctx); err != nil {
				return err
			}
			continue
		}
		if len(batch) > 0 {
			// Apply what arrived in order, even when a gap follows it.
			if aerr := d.Apply(ctx, batch); aerr != nil {
				return aerr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if sctx.Err() != nil {
				return ErrResubscribe
			}
			return err
		}
	}
}

// errIdle is next's answer when IdleAfter passed without a delivery.
var errIdle = errors.New("consume: idle")

// next is the next batch, or errIdle when Idle is set and nothing arrived
// for IdleAfter.
func (d *Durable) next(ctx context.Context, r *Reader, batch []Msg) ([]Msg, error) {
	if d.Idle == nil || d.IdleAfter <= 0 {
		return r.Batch(ctx, batch)
	}
	wait, cancel := context.WithTimeout(ctx, d.IdleAfter)
	defer cancel()
	batch, err := r.Batch(wait, batch)
	if len(batch) == 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return batch, errIdle
	}
	return batch, err
}

// InstanceName is the JetStream name of the consumer whose checkpoint is
// name, for instance of a cluster: each instance reads the log with its
// own consumers ("" names the one instance of the default deployment,
// whose consumers keep the plain names).
func InstanceName(name, instance string) string {
	if instance == "" {
		return name
	}
	return name + "_" + instance
}

// InstanceInactive is how long an instance's consumers outlive it without
// a reader (Durable.InactiveThreshold): a day; for ever (0) for the one
// instance of the default deployment.
func InstanceInactive(instance string) time.Duration {
	if instance == "" {
		return 0
	}
	return 24 * time.Hour
}
