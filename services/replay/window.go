package replay

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// judgeEvery is how often (in log time) the replay judges due
// expectations: the live detector's tick.
const judgeEvery = 100 * time.Millisecond

// WindowOptions configures a dry-run replay of detection.
type WindowOptions struct {
	JS     jetstream.JetStream
	Config *config.Config
	// Since and Until bound the events (by received time) that detection
	// runs on; every earlier event is still applied to the scratch
	// projections so the window starts from the true state.
	Since, Until time.Time
	// FromSeq, when set, starts detection at this stream sequence instead
	// of Since (a sample of the last N events).
	FromSeq uint64
	// System keeps only mismatches involving it.
	System   string
	Progress func(done, total uint64)
}

// WindowResult is what the dry run found.
type WindowResult struct {
	Events     uint64               `json:"events"`   // log messages read
	Detected   uint64               `json:"detected"` // events detection ran on
	Mismatches []*detector.Mismatch `json:"mismatches"`
}

// Window replays the log into a scratch store and re-runs detection over
// the window: each event is applied, then judged expectations are due at
// each event's received time, exactly as the live detector would judge
// them; at the end everything due by Until is judged. Nothing is
// published: alerts stay in the scratch store's outbox, which is deleted.
func Window(ctx context.Context, o WindowOptions) (*WindowResult, error) {
	dir, err := os.MkdirTemp("", "driftwatch-replay-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := projections.Open(dir, projections.Options{CacheSize: 16 << 20})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	eng, err := detector.NewEngine(o.Config, store)
	if err != nil {
		return nil, err
	}
	applier := projector.NewApplier(o.Config)
	stream, err := o.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("replay: open stream: %w", err)
	}
	routing := broker.RoutingOf(stream.CachedInfo().Config)
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	res := &WindowResult{}
	last := info.State.LastSeq
	if o.Until.IsZero() {
		o.Until = time.Now()
	}
	inWindow := func(seq uint64, recv time.Time) bool {
		if o.FromSeq > 0 {
			return seq >= o.FromSeq && !recv.After(o.Until)
		}
		return !recv.Before(o.Since) && !recv.After(o.Until)
	}
	tx := store.NewTx(true)
	b := tx.B
	n := 0
	var lastJudge time.Time
	commit := func() error {
		if err := store.CommitTx(tx, false); err != nil {
			return err
		}
		tx = store.NewTx(true)
		b = tx.B
		n = 0
		return nil
	}
	if last > 0 {
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.InPrefix + ">"}})
		if err != nil {
			return nil, err
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(4096))
		if err != nil {
			return nil, err
		}
		defer it.Stop()
		for seq := uint64(0); seq < last; {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				b.Close()
				return nil, fmt.Errorf("replay: read log: %w", err)
			}
			meta, err := msg.Metadata()
			if err != nil {
				b.Close()
				return nil, err
			}
			seq = meta.Sequence.Stream
			res.Events++
			if meta.Timestamp.After(o.Until) {
				break
			}
			detect := inWindow(seq, meta.Timestamp)
			// Judge as the live detector's ticker does: every 100ms of
			// log time, before the event that crosses the mark.
			if detect && meta.Timestamp.Sub(lastJudge) >= judgeEvery {
				if _, err := eng.JudgeDue(b, meta.Timestamp, meta.Timestamp, 1<<30); err != nil {
					b.Close()
					return nil, err
				}
				lastJudge = meta.Timestamp
			}
			d := projections.Delivery{Subject: msg.Subject(), Data: msg.Data(), Seq: seq, Received: meta.Timestamp, Partitions: routing.Partitions}
			projector.Route(&d, routing) // rejected as the live pass rejects it
			out, err := applier.Apply(tx, d)
			if err != nil {
				b.Close()
				return nil, err
			}
			tx.PublishRows() // the engine reads them before the commit
			if detect && (out.Result == projections.Applied || out.Result == projections.Late || out.Result == projections.Acked) {
				res.Detected++
				if err := eng.OnEntry(b, out.Event.OrderID, out.Entry, meta.Timestamp); err != nil {
					b.Close()
					return nil, err
				}
			}
			if n++; n >= 1000 {
				if err := commit(); err != nil {
					return nil, err
				}
				if o.Progress != nil {
					o.Progress(seq, last)
				}
			}
		}
	}
	end := o.Until
	if now := time.Now(); end.After(now) {
		end = now
	}
	if _, err := eng.JudgeDue(b, end, end, 1<<30); err != nil {
		b.Close()
		return nil, err
	}
	if err := store.CommitTx(tx, true); err != nil {
		return nil, err
	}
	if o.Progress != nil {
		o.Progress(last, last)
	}
	err = detector.ScanMismatches(store, detector.Filter{System: o.System}, func(m *detector.Mismatch) error {
		res.Mismatches = append(res.Mismatches, m)
		return nil
	})
	return res, err
}
