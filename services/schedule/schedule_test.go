package schedule

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestEvery: the job runs at once when asked, then every period; its
// errors reach onErr; ending the context cancels a running job and Every
// returns once it has.
func TestEvery(t *testing.T) {
	var runs, errs atomic.Int32
	started := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, 5*time.Millisecond, true, func(ctx context.Context) error {
			runs.Add(1)
			started <- struct{}{}
			if runs.Load() == 3 {
				<-ctx.Done() // a long job: the end of ctx must cancel it
				return ctx.Err()
			}
			return errors.New("round failed")
		}, func(error) { errs.Add(1) })
	}()
	for range 3 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d runs", runs.Load())
		}
	}
	cancel()
	<-done
	if runs.Load() != 3 || errs.Load() != 2 {
		t.Fatalf("%d runs, %d errors: want 3 and 2 (a stopping job's error is not one)", runs.Load(), errs.Load())
	}
}
