// Package partition says which partitions of the order space this
// driftwatch instance owns. Orders are split into N partitions by
// events.Partition (a hash of order_id); several instances on one JetStream
// cluster each own a set of them and keep those orders' projections,
// expectations and mismatches in their own store (services/cluster moves
// the ownership).
//
// The projector, the detector and reconciliation ask a *Set whether an
// order is theirs, and hold it shared (Hold) while they change the store,
// so that a change of ownership (Change) sees the consumers' checkpoints
// standing still. A nil *Set owns every order and never blocks: the one
// instance of the default deployment.
package partition

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/driftwatch/driftwatch/events"
)

// Set is the partitions one instance owns, out of N.
type Set struct {
	n     int
	owned atomic.Pointer[[]bool] // indexed by partition
	mu    sync.RWMutex           // shared: a batch changing state; exclusive: a change of ownership
	// version counts the changes of ownership (written under mu held
	// exclusively).
	version atomic.Uint64
	// changed is closed, and replaced, at each change of ownership.
	changed atomic.Pointer[chan struct{}]
}

// NewSet returns a set of n partitions that owns none yet.
func NewSet(n int) *Set {
	s := &Set{n: max(n, 1)}
	owned := make([]bool, s.n)
	s.owned.Store(&owned)
	changed := make(chan struct{})
	s.changed.Store(&changed)
	return s
}

// N is the number of partitions (1 for a nil set).
func (s *Set) N() int {
	if s == nil {
		return 1
	}
	return s.n
}

// Owns reports whether orderID's partition is owned.
func (s *Set) Owns(orderID string) bool {
	if s == nil {
		return true
	}
	return (*s.owned.Load())[events.Partition(orderID, s.n)]
}

// OwnsPartition reports whether partition p is owned.
func (s *Set) OwnsPartition(p int) bool {
	if s == nil {
		return true
	}
	owned := *s.owned.Load()
	return p >= 0 && p < len(owned) && owned[p]
}

// Owned lists the owned partitions in order.
func (s *Set) Owned() []int {
	if s == nil {
		return []int{0}
	}
	var out []int
	for p, ok := range *s.owned.Load() {
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// Version counts the changes of ownership: a reader that chose what it
// reads by the owned partitions (a consumer filtered on them) compares it,
// holding the set, with the version it chose by, and reads again when it
// moved. 0 for a nil set.
func (s *Set) Version() uint64 {
	if s == nil {
		return 0
	}
	return s.version.Load()
}

// Changed returns a channel closed at the next change of ownership (nil,
// never closed, for a nil set).
func (s *Set) Changed() <-chan struct{} {
	if s == nil {
		return nil
	}
	return *s.changed.Load()
}

// Snapshot returns the owned partitions and the Version they are of, read
// together.
func (s *Set) Snapshot() ([]int, uint64) {
	if s == nil {
		return []int{0}, 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.Owned(), s.version.Load()
}

// Hold is taken (shared) around a batch that reads ownership and changes
// the store, and given back with Done. Never hold it while waiting for
// another holder's progress: a waiting Change blocks new holders.
func (s *Set) Hold() {
	if s != nil {
		s.mu.RLock()
	}
}

// Done gives back a Hold.
func (s *Set) Done() {
	if s != nil {
		s.mu.RUnlock()
	}
}

// Change runs fn with no batch in progress (every Hold given back, new
// ones waiting), then sets the owned partitions to owned if fn succeeded.
// fn receives the partitions it gains and the ones it loses.
func (s *Set) Change(owned []int, fn func(gained, lost []int) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.owned.Load()
	next := make([]bool, s.n)
	for _, p := range owned {
		if p >= 0 && p < s.n {
			next[p] = true
		}
	}
	var gained, lost []int
	for p := range s.n {
		switch {
		case next[p] && !old[p]:
			gained = append(gained, p)
		case !next[p] && old[p]:
			lost = append(lost, p)
		}
	}
	if len(gained) == 0 && len(lost) == 0 {
		return nil
	}
	if err := fn(slices.Clip(gained), slices.Clip(lost)); err != nil {
		return err
	}
	s.owned.Store(&next)
	s.version.Add(1)
	changed := make(chan struct{})
	close(*s.changed.Swap(&changed))
	return nil
}
