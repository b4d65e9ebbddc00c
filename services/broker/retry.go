package broker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// apiAttempt bounds one JetStream API request of RetryUnanswered. A
// replicated stream's creation is answered well within it on a healthy
// cluster (200–400 ms for every stream and bucket of an instance's start
// on the test cluster); one that is slower is asked again, which is
// harmless since the requests repeated are idempotent.
const apiAttempt = 2 * time.Second

// apiAttempts is how many times RetryUnanswered asks.
const apiAttempts = 8

// RetryUnanswered runs the JetStream API request fn until it is answered,
// each attempt within apiAttempt, at most eight times and never past ctx.
// On a JetStream cluster, clients changing the cluster's assignments at
// once (instances of driftwatch starting together, creating the same
// replicated streams and buckets, or their consumers) may wait in vain
// for the meta leader's reply, though their requests took effect (nats-
// server issue 3677); asked again, they are answered. Between attempts it
// waits up to half a second, at random, so that clients that raced once
// do not race again in step. fn must be safe to repeat (create-or-update,
// a delete that tolerates "not found", a read).
func RetryUnanswered(ctx context.Context, fn func(ctx context.Context) error) error {
	var err error
	for range apiAttempts {
		attempt, cancel := context.WithTimeout(ctx, apiAttempt)
		err = fn(attempt)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(rand.N(500 * time.Millisecond)):
		}
	}
	return err
}

// unanswered reports whether err is a request that timed out.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// OpenStream looks up the stream name, asking again when the request is
// left unanswered (RetryUnanswered): at a start, another instance may be
// creating or updating that stream at the same moment.
func OpenStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := RetryUnanswered(ctx, func(ctx context.Context) error {
		var err error
		st, err = js.Stream(ctx, name)
		return err
	})
	return st, err
}
