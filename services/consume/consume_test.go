package consume

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/services/broker"
)

// TestReaderDeliversEverythingInOrder reads a stream through a durable pull
// consumer on the embedded server (file storage) and checks every message
// arrives once, in stream order, with its metadata, in batches no larger
// than the maximum.
func TestReaderDeliversEverythingInOrder(t *testing.T) {
	b, err := broker.Start(broker.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", SyncInterval: time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	const n, max = 5000, 100
	for i := 0; i < n; i++ {
		if _, err := b.JS.PublishAsync(fmt.Sprintf("t.%d", i%3), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-b.JS.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publish did not complete")
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(cons, max)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	var got uint64
	batch := make([]Msg, 0, max)
	for got < n {
		batch, err = r.Batch(ctx, batch)
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if len(batch) == 0 || len(batch) > max {
			t.Fatalf("batch of %d messages (max %d)", len(batch), max)
		}
		for _, m := range batch {
			got++
			if m.Meta.Sequence.Stream != got || string(m.Data()) != fmt.Sprint(got-1) {
				t.Fatalf("message %d: stream sequence %d, data %q", got, m.Meta.Sequence.Stream, m.Data())
			}
		}
		if err := batch[len(batch)-1].Ack(); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing more: Batch waits until the context ends.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if batch, err = r.Batch(short, batch); !errors.Is(err, context.DeadlineExceeded) || len(batch) != 0 {
		t.Fatalf("after the last message: %d messages, %v", len(batch), err)
	}
}

// TestTakeRefusesAGap checks the contiguity check on consumer sequences:
// a jump ends the batch with ErrGap, and an iterator error is passed on.
func TestTakeRefusesAGap(t *testing.T) {
	r := &Reader{}
	d := func(cons uint64) delivery {
		return delivery{m: Msg{Meta: &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Consumer: cons, Stream: cons}}}}
	}
	for _, c := range []uint64{1, 2, 3} {
		if err := r.take(d(c)); err != nil {
			t.Fatalf("delivery %d: %v", c, err)
		}
	}
	if err := r.take(d(5)); !errors.Is(err, ErrGap) {
		t.Fatalf("delivery 5 after 3: %v, want ErrGap", err)
	}
	boom := errors.New("boom")
	if err := r.take(delivery{err: boom}); !errors.Is(err, boom) {
		t.Fatalf("iterator error: %v", err)
	}
}
