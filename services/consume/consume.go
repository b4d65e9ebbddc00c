// Package consume reads a durable JetStream consumer in batches, strictly in
// delivery order, for the projector and the detector. It refuses gaps:
// every delivery carries a consumer sequence one above the previous one, so
// a message lost on the way (a client buffer overflow, a missed heartbeat)
// shows as a jump, and the reader stops instead of letting a later
// acknowledgement (AckAll) cover a message that was never applied.
package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrGap means a delivery was skipped: the caller must resume from its
// checkpoint with a fresh consumer.
var ErrGap = errors.New("consume: a delivery is missing")

// Reader batches a consumer's messages.
type Reader struct {
	it       jetstream.MessagesContext
	max      int
	lastCons uint64
}

// Prefetch is how many batches the reader keeps requested from the server.
// With one batch outstanding, a consumer that reads the whole stream (the
// detector) waited on the next pull for most of a burst and fell seconds
// behind; with eight it keeps up (measured: end to end 20k -> 31k events/s,
// detection p99 6.4 s -> 1.3 s in the 242k-event bench). The cost is
// memory: eight batches of messages per consumer.
const Prefetch = 8

// Open starts reading cons in batches of at most max messages, keeping
// Prefetch batches requested.
func Open(cons jetstream.Consumer, max int) (*Reader, error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(Prefetch * max))
	if err != nil {
		return nil, err
	}
	return &Reader{it: it, max: max}, nil
}

// Stop ends the subscription.
func (r *Reader) Stop() { r.it.Stop() }

// Batch waits for a message, then takes what else is already buffered, up to
// the maximum, and checks the deliveries are contiguous.
func (r *Reader) Batch(ctx context.Context, buf []jetstream.Msg) ([]jetstream.Msg, error) {
	buf = buf[:0]
	m, err := r.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		return buf, err
	}
	if err := r.check(m); err != nil {
		return buf, err
	}
	buf = append(buf, m)
	for len(buf) < r.max {
		m, err := r.it.Next(jetstream.NextMaxWait(200 * time.Microsecond))
		if err != nil {
			break // nothing more buffered right now
		}
		if err := r.check(m); err != nil {
			return buf, err
		}
		buf = append(buf, m)
	}
	return buf, nil
}

func (r *Reader) check(m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	seq := meta.Sequence.Consumer
	if r.lastCons != 0 && seq != r.lastCons+1 {
		return fmt.Errorf("%w: delivery %d after %d", ErrGap, seq, r.lastCons)
	}
	r.lastCons = seq
	return nil
}
