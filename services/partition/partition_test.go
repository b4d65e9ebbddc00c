package partition

import (
	"errors"
	"slices"
	"testing"

	"github.com/driftwatch/driftwatch/events"
)

func TestNilSetOwnsEveryOrder(t *testing.T) {
	var s *Set
	if !s.Owns("A-1") || !s.OwnsPartition(0) || s.N() != 1 || !slices.Equal(s.Owned(), []int{0}) {
		t.Fatal("a nil set must own every order, as the one instance does")
	}
	s.Hold() // never blocks
	s.Done()
}

func TestChangeSaysWhatMovesAndKeepsTheSetOnFailure(t *testing.T) {
	s := NewSet(8)
	if s.Owns("A-1") || len(s.Owned()) != 0 {
		t.Fatal("a new set owns nothing")
	}
	var gained, lost []int
	record := func(g, l []int) error { gained, lost = g, l; return nil }
	if err := s.Change([]int{1, 2, 3}, record); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gained, []int{1, 2, 3}) || len(lost) != 0 || !slices.Equal(s.Owned(), []int{1, 2, 3}) {
		t.Fatalf("gained %v lost %v owned %v", gained, lost, s.Owned())
	}
	if err := s.Change([]int{3, 4}, record); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gained, []int{4}) || !slices.Equal(lost, []int{1, 2}) {
		t.Fatalf("gained %v lost %v", gained, lost)
	}
	// A change that fails (a catch-up cut short) leaves the set as it was.
	boom := errors.New("boom")
	if err := s.Change([]int{0}, func(_, _ []int) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if !slices.Equal(s.Owned(), []int{3, 4}) {
		t.Fatalf("after a failed change the set is %v", s.Owned())
	}
	// No change, no call.
	called := false
	if err := s.Change([]int{4, 3}, func(_, _ []int) error { called = true; return nil }); err != nil || called {
		t.Fatal("an unchanged set must not run the change")
	}
	for _, order := range []string{"A-1", "B-2", "C-3", "D-4"} {
		p := events.Partition(order, 8)
		if s.Owns(order) != (p == 3 || p == 4) {
			t.Fatalf("%s (partition %d): Owns %v", order, p, s.Owns(order))
		}
	}
}
