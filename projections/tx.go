package projections

import (
	"errors"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Tx is one batch of applied deliveries: the Pebble batch that will be
// committed with the consumer's checkpoint, plus the rows and ledger entries
// it wrote, so later deliveries of the same batch read them without the
// cost of an indexed batch. Committed rows go to the store's row cache:
// the per-event read of a system's current row is then a map lookup.
//
// A Tx that is closed without commit leaves no trace: the cache only ever
// holds committed rows (or, for a scratch store, rows published on purpose).
// A Tx must be committed with CommitTx, which also feeds the ledger filter.
type Tx struct {
	store *Store
	B     *pebble.Batch
	rows  map[string]txRow
	seen  map[string]struct{}
}

// NewTx starts a batch. indexed batches also answer reads of any key they
// wrote (the detector and the replay need that; the projector does not).
func (s *Store) NewTx(indexed bool) *Tx {
	b := s.db.NewBatch()
	if indexed {
		b = s.db.NewIndexedBatch()
	}
	return &Tx{store: s, B: b, rows: map[string]txRow{}, seen: map[string]struct{}{}}
}

// Close discards an uncommitted Tx.
func (tx *Tx) Close() { _ = tx.B.Close() }

// CommitTx commits the batch (durably when sync) and publishes its rows to
// the cache.
func (s *Store) CommitTx(tx *Tx, sync bool) error {
	s.rowsVersion.Add(1)      // before the rows can be seen
	defer s.rowsLanded.Add(1) // after they are in the cache (or the commit failed)
	opts := pebble.NoSync
	if sync {
		opts = s.durable
	}
	if err := s.db.Apply(tx.B, opts); err != nil {
		tx.Close()
		return err
	}
	tx.Close()
	tx.PublishRows()
	for k := range tx.seen {
		s.seen.addString(k)
	}
	return nil
}

// RowsVersion counts the commits that may change rows, each counted before
// it lands: the same value at two moments means no commit started in
// between.
func (s *Store) RowsVersion() uint64 { return s.rowsVersion.Load() }

// RowsSettled returns RowsVersion and whether every commit it counts has
// landed (its rows in Pebble and the cache). When settled, rows read after
// this call are the current ones for as long as RowsVersion still returns
// v: a sweep judges with the rows it scanned, and a read fills the row
// cache, only then.
func (s *Store) RowsSettled() (v uint64, settled bool) {
	v = s.rowsVersion.Load() // first: a commit counted here and not landed shows below
	return v, s.rowsLanded.Load() == v
}

// PublishRows puts the Tx's rows in the cache now (a scratch store that
// reads them before commit). Outside CommitTx it is for a store nobody
// else reads meanwhile: a concurrent Store.Row that misses the cache could
// put Pebble's older row back over one of these.
func (tx *Tx) PublishRows() {
	for k, r := range tx.rows {
		tx.store.cache.put(k, r.enc)
		tx.store.rowed.addString(k)
	}
}

// txRow is a row the Tx wrote, decoded for later reads in the same Tx and
// encoded once for both the batch and the cache.
type txRow struct {
	row Row
	enc []byte
}

func (tx *Tx) reader() reader {
	if tx.B.Indexed() {
		return tx.B
	}
	return tx.store.db
}

// Row reads a system's row of an order as this Tx sees it.
func (tx *Tx) Row(orderID, system string) (Row, error) {
	k := rowKey(orderID, system)
	if r, ok := tx.rows[string(k)]; ok {
		return r.row, nil
	}
	if row, known, err := tx.store.knownRow(k); known {
		return row, err
	}
	return readRow(tx.reader(), orderID, system)
}

func (tx *Tx) putRow(r *Row) error {
	k := rowKey(r.OrderID, r.System)
	enc := r.encode()
	tx.rows[string(k)] = txRow{row: *r, enc: enc}
	return tx.B.Set(k, enc, nil)
}

func (tx *Tx) seenBefore(key []byte) (bool, error) {
	if _, ok := tx.seen[string(key)]; ok {
		return true, nil
	}
	if !tx.store.seen.mayContain(key) {
		return false, nil // definitely never committed (through CommitTx)
	}
	_, err := get(tx.reader(), key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (tx *Tx) markSeen(key []byte, seq uint64) error {
	tx.seen[string(key)] = struct{}{}
	return tx.B.Set(key, appendSeq(nil, seq), nil)
}

// rowCacheShards is how many independently locked parts the row cache has.
const rowCacheShards = 64

// rowCache is a bounded, sharded cache of committed rows (encoded, a few
// hundred bytes each) by row key.
type rowCache struct {
	perShard int
	shards   [rowCacheShards]struct { // by shard(key)
		mu sync.Mutex
		m  map[string][]byte
	}
}

func newRowCache(total int) *rowCache {
	c := &rowCache{perShard: max(total/rowCacheShards, 16)}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]byte)
	}
	return c
}

// shard is FNV-1a of the key (inline: no hasher or byte-slice copy per
// lookup).
func shard[K string | []byte](k K) int {
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		h = (h ^ uint32(k[i])) * 16777619
	}
	return int(h % rowCacheShards)
}

// get returns the cached encoding of a row. Cached encodings are never
// modified, so rows decoded from them may share their bytes.
func (c *rowCache) get(k []byte) ([]byte, bool) {
	s := &c.shards[shard(k)]
	s.mu.Lock()
	r, ok := s.m[string(k)]
	s.mu.Unlock()
	return r, ok
}

func (c *rowCache) put(k string, r []byte) {
	c.putIf(k, r, nil)
}

// putIf puts r unless ok, called with the shard locked, says no.
func (c *rowCache) putIf(k string, r []byte, ok func() bool) {
	s := &c.shards[shard(k)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok != nil && !ok() {
		return
	}
	if _, found := s.m[k]; !found && len(s.m) >= c.perShard {
		for old := range s.m { // evict an arbitrary entry
			delete(s.m, old)
			break
		}
	}
	s.m[k] = r
}
