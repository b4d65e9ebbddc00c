package projections

import (
	"hash/fnv"
	"sync"
)

// keyFilter is an in-memory Bloom filter over the keys of one prefix that
// only the projection Tx writes: the ledger (every (system, event_id) ever
// applied) and the rows. A definite "absent" skips the Pebble lookup that
// would otherwise run for every new event id and for the first event of
// every (order, system); a "maybe" falls back to it. It holds committed keys
// only: built from the store at open, and fed by each committed Tx. Keys
// are never deleted under these prefixes, so it never goes stale.
type keyFilter struct {
	mu   sync.RWMutex
	bits []uint64
	k    uint32
}

func newKeyFilter(expected int) *keyFilter {
	m := max(expected*10, 1<<16) // 10 bits a key: ~1% false positives
	return &keyFilter{bits: make([]uint64, (m+63)/64), k: 7}
}

func (f *keyFilter) hashes(key []byte) (uint32, uint32) {
	h := fnv.New64a()
	h.Write(key)
	v := h.Sum64()
	return uint32(v), uint32(v>>32) | 1
}

func (f *keyFilter) add(key []byte) {
	h1, h2 := f.hashes(key)
	n := uint32(len(f.bits) * 64)
	f.mu.Lock()
	for i := uint32(0); i < f.k; i++ {
		bit := (h1 + i*h2) % n
		f.bits[bit/64] |= 1 << (bit % 64)
	}
	f.mu.Unlock()
}

func (f *keyFilter) mayContain(key []byte) bool {
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
