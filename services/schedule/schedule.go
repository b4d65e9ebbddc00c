// Package schedule runs a service's periodic work (the alert policy's
// rounds, the reconciliation sweeps) on a goroutine that the returned Loop
// owns and stops: one ticker loop for every service that needs one.
package schedule

import (
	"context"
	"time"
)

// Loop is one periodic job.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Every runs fn every period until Stop, the first time at once when
// immediately is true (else after one period). An error fn returns is
// handed to onErr, unless the loop is stopping.
func Every(period time.Duration, immediately bool, fn func(ctx context.Context) error, onErr func(error)) *Loop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{cancel: cancel, done: make(chan struct{})}
	run := func() {
		if err := fn(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
	go func() {
		defer close(l.done)
		if immediately {
			run()
		}
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				run()
			}
		}
	}()
	return l
}

// Stop cancels the job's context and waits for a running fn to return.
func (l *Loop) Stop() {
	if l == nil {
		return
	}
	l.cancel()
	<-l.done
}
