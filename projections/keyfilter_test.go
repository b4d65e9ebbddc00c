package projections

import (
	"errors"
	"fmt"
	"testing"
)

// TestFiltersAfterReopen writes rows and ledger keys, reopens the store and
// checks that lookups are right both before and after the filters are
// loaded in the background, and that the loaded filters rule out absent
// keys.
func TestFiltersAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a := testApplier(t)
	tx := s.NewTx(false)
	for i := 0; i < 200; i++ {
		body := fmt.Sprintf(`{"event_id":"e%d","order_id":"O%d","system":"shop","status":"paid","occurred_at":"2026-11-27T10:00:00Z"}`, i, i)
		if _, err := a.Apply(tx, Delivery{Subject: "driftwatch.in.shop", Data: []byte(body), Seq: uint64(i + 1), Received: recv0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitTx(tx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(when string) {
		for i := 0; i < 200; i += 7 {
			if _, err := s.Row(fmt.Sprintf("O%d", i), "shop"); err != nil {
				t.Fatalf("%s: row of O%d: %v", when, i, err)
			}
		}
		if _, err := s.Row("nope", "shop"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: absent row: %v", when, err)
		}
		tx := s.NewTx(false)
		defer tx.Close()
		if seen, err := tx.seenBefore(seenKey("shop", "e3")); err != nil || !seen {
			t.Fatalf("%s: ledger lost e3: %v %v", when, seen, err)
		}
	}
	check("right after open")
	s.WaitFilters()
	if !s.seen.ready.Load() || !s.rowed.ready.Load() {
		t.Fatal("the filter load ended without making the filters answer")
	}
	check("with the filters loaded")
	ruledOut := 0
	for i := 0; i < 10; i++ {
		if !s.rowed.mayContain(rowKey(fmt.Sprintf("absent-%d", i), "shop")) {
			ruledOut++
		}
	}
	if ruledOut == 0 { // ~1% false positives: all ten is ~1e-20
		t.Fatal("the loaded row filter rules out no absent key")
	}
}
