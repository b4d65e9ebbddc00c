package projections

import (
	"hash/maphash"
	"sync/atomic"
)

// keyFilter is an in-memory Bloom filter over the keys of one prefix that
// only the projection Tx writes: the ledger (every (system, event_id) ever
// applied) and the rows. A definite "absent" skips the Pebble lookup that
// would otherwise run for every new event id and for the first event of
// every (order, system); a "maybe" falls back to it. It holds committed keys
// only: loaded from the store after open, and fed by each committed Tx.
// Until the load is done (ready) it answers "maybe". Keys are never
// deleted under these prefixes, so it never goes stale.
type keyFilter struct {
	bits  []atomic.Uint64 // set with atomic Or, read with Load: no lock
	k     uint32
	seed  maphash.Seed // the filter lives in memory only: any seed will do
	ready atomic.Bool
}

func newKeyFilter(expected int) *keyFilter {
	m := max(expected*10, 1<<16) // 10 bits a key: ~1% false positives
	return &keyFilter{bits: make([]atomic.Uint64, (m+63)/64), k: 7, seed: maphash.MakeSeed()}
}

func split(v uint64) (uint32, uint32) { return uint32(v), uint32(v>>32) | 1 }

func (f *keyFilter) add(key []byte) { f.set(split(maphash.Bytes(f.seed, key))) }

func (f *keyFilter) addString(key string) { f.set(split(maphash.String(f.seed, key))) }

func (f *keyFilter) set(h1, h2 uint32) {
	n := uint32(len(f.bits) * 64)
	for i := uint32(0); i < f.k; i++ {
		bit := (h1 + i*h2) % n
		f.bits[bit/64].Or(1 << (bit % 64))
	}
}

func (f *keyFilter) mayContain(key []byte) bool {
	if !f.ready.Load() {
		return true
	}
	h1, h2 := split(maphash.Bytes(f.seed, key))
	n := uint32(len(f.bits) * 64)
	for i := uint32(0); i < f.k; i++ {
		bit := (h1 + i*h2) % n
		if f.bits[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
