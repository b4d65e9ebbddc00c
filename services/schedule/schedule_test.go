package schedule

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestEvery: the job runs at once when asked, then every period; its
// errors reach onErr; Stop cancels a running job and waits for it.
func TestEvery(t *testing.T) {
	var runs, errs atomic.Int32
	started := make(chan struct{}, 100)
	l := Every(5*time.Millisecond, true, func(ctx context.Context) error {
		runs.Add(1)
		started <- struct{}{}
		if runs.Load() == 3 {
			<-ctx.Done() // a long job: Stop must cancel it and wait
			return ctx.Err()
		}
		return errors.New("round failed")
	}, func(error) { errs.Add(1) })
	for range 3 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d runs", runs.Load())
		}
	}
	l.Stop()
	if runs.Load() != 3 || errs.Load() != 2 {
		t.Fatalf("%d runs, %d errors: want 3 and 2 (a stopping job's error is not one)", runs.Load(), errs.Load())
	}
}
