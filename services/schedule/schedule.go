// Package schedule runs a service's periodic work (the alert policy's
// rounds, the reconciliation sweeps): one ticker loop for every service
// that needs one. The loop runs on its caller's goroutine, so whoever owns
// the service's lifecycle (the app) owns the loop too.
package schedule

import (
	"context"
	"time"
)

// Every runs fn every period until ctx ends, the first time at once when
// immediately is true (else after one period). An error fn returns is
// handed to onErr, unless ctx has ended. It returns when ctx ends and fn
// has returned.
func Every(ctx context.Context, period time.Duration, immediately bool, fn func(ctx context.Context) error, onErr func(error)) {
	run := func() {
		if err := fn(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
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
}
