package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/projector"
)

// timeCeiling times what JetStream alone allows for driftwatch's
// topology, on the same payloads and storage settings: each message
// published asynchronously with its Nats-Msg-Id (as "raw with msg ids"
// does), and read by as many durable consumers as driftwatch runs, with
// the same settings and the same reader (consume.Reader, batches of
// projector.MaxBatch, acknowledging the last message of each batch), doing
// nothing with the messages: one over the whole stream, as the one pass
// is, or (perSystem) one per system, filtered on its subject, and one over
// the whole stream, as the projectors and the detector are in separate
// processes. The rate is messages over the time from the first publish
// until every consumer has read and acknowledged all of its messages: the
// bound, on this machine, for a pipeline of this shape fed by this
// publisher. consumers is how many read it.
func timeCeiling(ctx context.Context, js jetstream.JetStream, payloads [][]byte, subject func(prefix string) func(int) string, perSystem bool) (rate float64, consumers int, err error) {
	st, prefix, drop, err := plainStream(ctx, js, "BENCH_CEILING", false)
	if err != nil {
		return 0, 0, err
	}
	defer drop()

	// How many messages each consumer reads (one filter per subject, and
	// the whole stream): the stream drops the workload's duplicates, which
	// carry the same message id.
	perSubject := map[string]int{}
	toPlain := subject(prefix)
	ids := make(map[string]bool, len(payloads))
	for i, p := range payloads {
		if id := idOf(p); !ids[id] {
			ids[id] = true
			perSubject[toPlain(i)]++
		}
	}
	var filters []string
	if perSystem {
		for s := range perSubject {
			filters = append(filters, s)
		}
		sort.Strings(filters)
	}
	perSubject[prefix+">"] = len(ids)
	filters = append(filters, prefix+">")

	// The first reader to fail stops the others; every reader has ended
	// when this returns.
	readCtx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait()
	}()
	for i, filter := range filters {
		cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: fmt.Sprintf("ceiling-%d", i),
			FilterSubject: filter, AckPolicy: jetstream.AckAllPolicy, AckWait: 5 * time.Minute,
			MaxAckPending: 20000, MemoryStorage: true, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return 0, 0, err
		}
		r, err := consume.Open(cons, projector.MaxBatch)
		if err != nil {
			return 0, 0, err
		}
		wg.Add(1)
		go func(want int) {
			defer wg.Done()
			defer r.Stop()
			if err := readAll(readCtx, r, want); err != nil {
				cancel(err)
			}
		}(perSubject[filter])
	}
	start := time.Now()
	if err := publishAll(readCtx, js, payloads, toPlain, true); err != nil {
		return 0, 0, errors.Join(err, context.Cause(readCtx))
	}
	wg.Wait()
	if err := context.Cause(readCtx); err != nil {
		return 0, 0, err
	}
	return float64(len(payloads)) / time.Since(start).Seconds(), len(filters), nil
}

// readAll reads want messages in batches, acknowledging the last of each.
func readAll(ctx context.Context, r *consume.Reader, want int) error {
	buf := make([]consume.Msg, 0, projector.MaxBatch)
	for got := 0; got < want; {
		msgs, err := r.Batch(ctx, buf)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return errors.New("bench: an empty batch")
		}
		got += len(msgs)
		if err := msgs[len(msgs)-1].Ack(); err != nil {
			return err
		}
	}
	return nil
}
