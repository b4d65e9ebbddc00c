package projections

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// cached reports whether the row cache holds the row key of (order, system).
func cached(s *Store, order, system string) bool {
	_, ok := s.cache.get(rowKey(order, system))
	return ok
}

// evict drops the row key of (order, system) from the row cache.
func evict(s *Store, order, system string) {
	k := string(rowKey(order, system))
	sh := &s.cache.shards[shard(k)]
	sh.mu.Lock()
	delete(sh.m, k)
	sh.mu.Unlock()
}

func commitRow(t testing.TB, s *Store, order string, events uint64) {
	t.Helper()
	tx := s.NewTx(false)
	if err := tx.putRow(&Row{OrderID: order, System: "erp", Events: events}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitTx(tx, false); err != nil {
		t.Fatal(err)
	}
}

// TestRowReadFillsCache: a row read from Pebble is cached for the next
// read, but not while a commit is in flight, whose rows could be newer.
func TestRowReadFillsCache(t *testing.T) {
	s := openStore(t)
	commitRow(t, s, "o1", 3)
	commitRow(t, s, "o2", 5)
	evict(s, "o1", "erp")
	r, err := s.Row("o1", "erp")
	if err != nil || r.Events != 3 {
		t.Fatalf("Row(o1) = %+v, %v; want 3 events", r, err)
	}
	if !cached(s, "o1", "erp") {
		t.Fatal("a row read from Pebble was not cached")
	}

	// A commit that has started and not landed: no fill.
	evict(s, "o2", "erp")
	s.rowsVersion.Add(1)
	if _, settled := s.RowsSettled(); settled {
		t.Fatal("RowsSettled with a commit in flight")
	}
	r, err = s.Row("o2", "erp")
	if err != nil || r.Events != 5 {
		t.Fatalf("Row(o2) = %+v, %v; want 5 events", r, err)
	}
	if cached(s, "o2", "erp") {
		t.Fatal("a row read during a commit was cached")
	}
	s.rowsLanded.Add(1)
	if v, settled := s.RowsSettled(); !settled || v != s.RowsVersion() {
		t.Fatalf("RowsSettled = %d, %v after the commit landed", v, settled)
	}
	if _, err := s.Row("o2", "erp"); err != nil || !cached(s, "o2", "erp") {
		t.Fatalf("after the commit landed the read did not fill the cache (%v)", err)
	}
}

// TestRowFillRacingCommits makes commits land at the worst moment, between
// a read from Pebble and the cache fill: one that starts and lands there,
// and one that had started before the read. The read returns the row it
// saw, and the cache ends up with the committed row, never the older one.
func TestRowFillRacingCommits(t *testing.T) {
	s := openStore(t)
	commitRow(t, s, "o", 1)

	// One commit starts and lands during the read.
	evict(s, "o", "erp")
	s.afterRowRead = func() { commitRow(t, s, "o", 2) }
	r, err := s.Row("o", "erp")
	s.afterRowRead = nil
	if err != nil || r.Events != 1 {
		t.Fatalf("Row during the commit = %d events (%v), want the 1 it read", r.Events, err)
	}
	if r, _ := s.Row("o", "erp"); r.Events != 2 {
		t.Fatalf("after the commit the cache holds version %d, want 2", r.Events)
	}

	// A commit that has started before the read (counted) applies, caches
	// its row and lands during the read.
	evict(s, "o", "erp")
	s.rowsVersion.Add(1)
	s.afterRowRead = func() {
		tx := s.NewTx(false)
		if err := tx.putRow(&Row{OrderID: "o", System: "erp", Events: 3}); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Apply(tx.B, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		tx.Close()
		tx.PublishRows()
		s.rowsLanded.Add(1)
	}
	r, err = s.Row("o", "erp")
	s.afterRowRead = nil
	if err != nil || r.Events != 2 {
		t.Fatalf("Row during the commit = %d events (%v), want the 2 it read", r.Events, err)
	}
	if r, _ := s.Row("o", "erp"); r.Events != 3 {
		t.Fatalf("after the commit the cache holds version %d, want 3", r.Events)
	}
}

// TestRowFillNeverStale commits ever newer versions of one row while
// readers keep evicting and re-reading it: a read must return at least the
// version whose commit had returned when it began. A fill that raced a
// commit would leave an older row in the cache, and later reads would
// return it.
func TestRowFillNeverStale(t *testing.T) {
	s := openStore(t)
	const versions = 3000
	commitRow(t, s, "o", 1)
	var committed atomic.Uint64
	committed.Store(1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	read := func(evictFirst bool) error {
		if evictFirst {
			evict(s, "o", "erp")
		}
		want := committed.Load()
		r, err := s.Row("o", "erp")
		if err != nil {
			return err
		}
		if r.Events < want {
			return fmt.Errorf("read version %d after version %d was committed (evicted first: %v)", r.Events, want, evictFirst)
		}
		return nil
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := read(i%2 == 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for v := uint64(2); v <= versions; v++ {
		commitRow(t, s, "o", v)
		committed.Store(v)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := read(false); err != nil {
		t.Fatal(err)
	}
}
