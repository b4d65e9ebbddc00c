// Package rebuild rebuilds the projections from the log: it reads
// DRIFTWATCH_EVENTS from the first message with an ordered consumer, applies
// every message to a fresh Pebble store with the same Applier the projector
// uses, sets each consumer's checkpoint to the last sequence of its subject,
// and leaves the store ready to swap in. Because values hold only what comes
// from the log, the result equals incremental processing byte for byte.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/projector"
)

// Stats summarises a rebuild.
type Stats struct {
	Events       uint64        `json:"events"`
	Applied      uint64        `json:"applied"`
	Late         uint64        `json:"late"`
	Acks         uint64        `json:"acks"`
	Duplicates   uint64        `json:"duplicates"`
	Rejected     uint64        `json:"rejected"`
	LastSeq      uint64        `json:"last_seq"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	EventsPerSec float64       `json:"events_per_sec"`
}

// Options configures a rebuild.
type Options struct {
	JS      jetstream.JetStream
	Applier *projections.Applier
	// Dir is the fresh store's folder; it must not exist yet.
	Dir string
	// Progress, when set, is called with (events done, events total) now
	// and then.
	Progress func(done, total uint64)
	// BatchSize is the number of events per Pebble batch (default 2000).
	BatchSize int
}

// Build reads the whole log into a fresh store at opts.Dir.
func Build(ctx context.Context, opts Options) (Stats, error) {
	var st Stats
	start := time.Now()
	if _, err := os.Stat(opts.Dir); err == nil {
		return st, fmt.Errorf("rebuild: %s already exists", opts.Dir)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 2000
	}
	stream, err := opts.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		return st, fmt.Errorf("rebuild: open stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return st, err
	}
	last := info.State.LastSeq
	total := info.State.Msgs
	store, err := projections.Open(opts.Dir, projections.Options{})
	if err != nil {
		return st, err
	}
	defer store.Close()
	if err := store.SetStreamID(info.Created.UTC().Format(time.RFC3339Nano)); err != nil {
		return st, err
	}
	ckpts := map[string]uint64{}
	if last > 0 {
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.InPrefix + ">"}})
		if err != nil {
			return st, fmt.Errorf("rebuild: ordered consumer: %w", err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(4096))
		if err != nil {
			return st, err
		}
		defer it.Stop()
		b := store.NewTx(false)
		inBatch := 0
		commit := func() error {
			for name, seq := range ckpts {
				if err := projections.SetCheckpoint(b.B, name, seq); err != nil {
					return err
				}
			}
			// NoSync: the final flush makes the whole store durable.
			if err := store.CommitTx(b, false); err != nil {
				return err
			}
			b = store.NewTx(false)
			inBatch = 0
			return nil
		}
		for st.LastSeq < last {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				b.Close()
				return st, fmt.Errorf("rebuild: read log at %d: %w", st.LastSeq, err)
			}
			meta, err := msg.Metadata()
			if err != nil {
				b.Close()
				return st, err
			}
			seq := meta.Sequence.Stream
			out, err := opts.Applier.Apply(b, projections.Delivery{Subject: msg.Subject(), Data: msg.Data(), Seq: seq, Received: meta.Timestamp})
			if err != nil {
				b.Close()
				return st, err
			}
			st.Events++
			switch out.Result {
			case projections.Applied:
				st.Applied++
			case projections.Late:
				st.Late++
			case projections.Acked:
				st.Acks++
			case projections.Duplicate:
				st.Duplicates++
			case projections.Rejected:
				st.Rejected++
			}
			if sys, ok := events.SystemFromSubject(msg.Subject()); ok && opts.Applier.Known(sys) {
				ckpts[projector.ConsumerPrefix+sys] = seq
			} else {
				ckpts[projector.SentryName(msg.Subject())] = seq
			}
			st.LastSeq = seq
			inBatch++
			if inBatch >= opts.BatchSize {
				if err := commit(); err != nil {
					return st, err
				}
				if opts.Progress != nil {
					opts.Progress(st.Events, total)
				}
			}
		}
		if err := commit(); err != nil {
			return st, err
		}
		b.Close()
	}
	if err := store.DB().Flush(); err != nil {
		return st, fmt.Errorf("rebuild: flush: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(st.Events, total)
	}
	st.Elapsed = time.Since(start)
	if s := st.Elapsed.Seconds(); s > 0 {
		st.EventsPerSec = float64(st.Events) / s
	}
	return st, nil
}

// Swap replaces the store at live with the rebuilt one at fresh. The old
// store is kept as live + ".old" until the swap succeeded, then removed.
// Nothing may have live open.
func Swap(live, fresh string) error {
	old := live + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	hadLive := true
	if err := os.Rename(live, old); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rebuild: move old store aside: %w", err)
		}
		hadLive = false
	}
	if err := os.Rename(fresh, live); err != nil {
		if hadLive {
			_ = os.Rename(old, live)
		}
		return fmt.Errorf("rebuild: swap in the new store: %w", err)
	}
	if err := syncDir(filepath.Dir(live)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
