package projections

import (
	"hash/fnv"
	"sync"
)

// seenFilter is an in-memory Bloom filter over the ledger's keys (every
// (system, event_id) ever applied). A definite "not seen" skips the Pebble
// lookup that would otherwise run for every event; a "maybe" falls back to
// it. It holds committed keys only: built from the ledger at open, and fed
// by each committed Tx.
type seenFilter struct {
	mu   sync.RWMutex
	bits []uint64
	k    uint32
}

func newSeenFilter(expected int) *seenFilter {
	m := max(expected*10, 1<<16) // 10 bits a key: ~1% false positives
	return &seenFilter{bits: make([]uint64, (m+63)/64), k: 7}
}

func (f *seenFilter) hashes(key []byte) (uint32, uint32) {
	h := fnv.New64a()
	h.Write(key)
	v := h.Sum64()
	return uint32(v), uint32(v>>32) | 1
}

func (f *seenFilter) add(key []byte) {
	h1, h2 := f.hashes(key)
	n := uint32(len(f.bits) * 64)
	f.mu.Lock()
	for i := uint32(0); i < f.k; i++ {
		bit := (h1 + i*h2) % n
		f.bits[bit/64] |= 1 << (bit % 64)
	}
	f.mu.Unlock()
}

func (f *seenFilter) mayContain(key []byte) bool {
	h1, h2 := f.hashes(key)
	n := uint32(len(f.bits) * 64)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i := uint32(0); i < f.k; i++ {
		bit := (h1 + i*h2) % n
		if f.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
