package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/projections"
)

// handRolledEvent is what the hand-rolled pipeline decodes of each event,
// with encoding/json: every field of the envelope.
type handRolledEvent struct {
	EventID     string          `json:"event_id"`
	OrderID     string          `json:"order_id"`
	System      string          `json:"system"`
	Kind        string          `json:"kind"`
	Status      string          `json:"status"`
	StatusField string          `json:"status_field"`
	OccurredAt  time.Time       `json:"occurred_at"`
	Actor       string          `json:"actor"`
	AckOf       string          `json:"ack_of"`
	ExternalRef string          `json:"external_ref"`
	Attributes  json.RawMessage `json:"attributes"`
}

// handRolledFetch is the hand-rolled pipeline's fetch size.
const handRolledFetch = 500

// timeHandRolled times the reference pipeline of the performance issue, the
// one a team would write by hand, on the same payloads and stream storage
// settings: publish asynchronously to a plain stream (as the raw baseline
// does) while a durable pull consumer fetches 500 at a time, decodes each
// event with encoding/json, writes one Pebble key per event (order and
// system) to a Pebble with its default options, commits one unsynced batch
// per fetch, then acknowledges each message. It does no mapping, no
// deduplication, no projections, no detection and no index. The rate is
// events over the time from the first publish until the last batch is
// committed and acknowledged. With msgIDs each message carries its
// Nats-Msg-Id, as driftwatch's events do, and the stream drops the
// workload's duplicates (the pipeline then reads one copy of each).
//
// With storeWrites (the store floor) the pipeline writes, instead of its
// one key, what driftwatch's store receives for an event, to a Pebble
// opened with driftwatch's options (storeWriter); it implies msgIDs.
func timeHandRolled(ctx context.Context, js jetstream.JetStream, dir string, payloads [][]byte, subject func(prefix string) func(int) string, msgIDs, storeWrites bool) (float64, error) {
	name := "BENCH_HANDROLLED"
	msgIDs = msgIDs || storeWrites
	if msgIDs {
		name += "_IDS"
	}
	opts := &pebble.Options{Logger: quietPebble{}}
	write := func(b *pebble.Batch, ev *handRolledEvent, m jetstream.Msg) error {
		return b.Set([]byte(ev.OrderID+"/"+ev.System), m.Data(), nil)
	}
	if storeWrites {
		name = "BENCH_STORE_FLOOR"
		opts = projections.PebbleOptions(projections.Options{})
		defer opts.Cache.Unref()
		opts.Logger = quietPebble{}
		write = newStoreWriter().write
	}
	st, prefix, drop, err := plainStream(ctx, js, name, false)
	if err != nil {
		return 0, err
	}
	defer drop()
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "handrolled",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 4 * handRolledFetch})
	if err != nil {
		return 0, err
	}
	db, err := pebble.Open(filepath.Join(dir, strings.ToLower(name)), opts)
	if err != nil {
		return 0, err
	}
	defer db.Close()

	// The consumer stops before db closes (defers run last first).
	consumeCtx, cancel := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	n := len(payloads)
	if msgIDs {
		ids := make(map[string]bool, n)
		for _, p := range payloads {
			ids[idOf(p)] = true
		}
		n = len(ids)
	}
	go func() { consumed <- consumeHandRolled(consumeCtx, cons, db, n, write) }()
	start := time.Now()
	if err := publishAll(ctx, js, payloads, subject(prefix), msgIDs); err != nil {
		cancel()
		<-consumed
		return 0, err
	}
	err = <-consumed
	cancel()
	if err != nil {
		return 0, err
	}
	return float64(len(payloads)) / time.Since(start).Seconds(), nil
}

// consumeHandRolled is the hand-rolled pipeline's consumer loop: it
// writes each event with write; it returns once n messages are committed
// and acknowledged.
func consumeHandRolled(ctx context.Context, cons jetstream.Consumer, db *pebble.DB, n int, write func(*pebble.Batch, *handRolledEvent, jetstream.Msg) error) error {
	var ev handRolledEvent
	msgs := make([]jetstream.Msg, 0, handRolledFetch)
	for done := 0; done < n; {
		// Never ask for more than is left: a fetch short of its count
		// waits out its expiry, a second added to the clock.
		batch, err := cons.Fetch(min(handRolledFetch, n-done), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		msgs = msgs[:0]
		b := db.NewBatch()
		for m := range batch.Messages() {
			ev = handRolledEvent{}
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				b.Close()
				return fmt.Errorf("bench: hand-rolled pipeline: %w", err)
			}
			if err := write(b, &ev, m); err != nil {
				b.Close()
				return err
			}
			msgs = append(msgs, m)
		}
		// A fetch that expires short of its count ends without an error.
		if err := batch.Error(); err != nil {
			b.Close()
			return err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			b.Close()
			return err
		}
		b.Close()
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				return err
			}
		}
		done += len(msgs)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// storeWriter writes, for each event, keys of the sizes driftwatch's
// store receives per event in the bench's workload (BENCHMARKS.md, "Where
// the CPU goes"): its row rewritten (163 bytes), its order index entry
// (162), an expectation set (147) and the order's previous one deleted
// (47), its ledger entry (27) and its sequence index entry (19). It reads
// nothing and decides nothing: what persisting driftwatch's state costs,
// without driftwatch's logic.
type storeWriter struct {
	pad  []byte
	prev map[string][]byte // each order's last expectation key
	seq  uint64
}

func newStoreWriter() *storeWriter {
	return &storeWriter{pad: make([]byte, 256), prev: map[string][]byte{}}
}

func (w *storeWriter) write(b *pebble.Batch, ev *handRolledEvent, _ jetstream.Msg) error {
	w.seq++
	seq := binary.BigEndian.AppendUint64(nil, w.seq)
	// value pads key+value to size bytes.
	value := func(key []byte, size int) []byte { return w.pad[:max(size-len(key), 0)] }
	row := []byte("r\x00" + ev.OrderID + "\x00" + ev.System)
	index := append([]byte("o\x00"+ev.OrderID+"\x00"), seq...)
	expect := append(append([]byte("x\x00"), seq...), "\x00"+ev.OrderID+"\x00"+ev.System+"\x00"+ev.Status...)
	ledger := []byte("l\x00" + ev.EventID)
	bySeq := append([]byte("s\x00"), seq...)
	for _, kv := range []struct {
		key  []byte
		size int
	}{{row, 163}, {index, 162}, {expect, 147}, {ledger, 27}, {bySeq, 19}} {
		if err := b.Set(kv.key, value(kv.key, kv.size), nil); err != nil {
			return err
		}
	}
	if old := w.prev[ev.OrderID]; old != nil {
		if err := b.Delete(old, nil); err != nil {
			return err
		}
	}
	w.prev[ev.OrderID] = expect
	return nil
}

// quietPebble keeps Pebble's informational lines out of the bench's output.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Errorf(string, ...any)          {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
