package projections

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Prefixes of the services' state in the store (doc.go). A rebuild carries
// them over from the live store as they are.
const (
	PrefixDetector = "x/"
	PrefixPolicy   = "o/"
	PrefixReports  = "r/"
	// PrefixPartitions holds an instance of a cluster's bookkeeping of
	// its partitions (services/cluster). A rebuilt store holds every
	// partition, so a rebuild does not carry it over.
	PrefixPartitions = "t/"
)

// ServicePrefixes lists the services' prefixes.
var ServicePrefixes = []string{PrefixDetector, PrefixPolicy, PrefixReports}

// ConsumerKeys are the prefixes of one consumer's checkpoint and counters,
// for carrying a consumer's progress over to a rebuilt store.
func ConsumerKeys(consumer string) []string {
	return []string{string(prefixCkpt) + consumer, string(prefixCount) + consumer}
}

// FormatVersion is the version of the key layout and value encodings
// described in the package doc. Open refuses a store of another version:
// rebuild it from the log (driftwatch rebuild).
const FormatVersion = 1

// Sentinel errors.
var (
	ErrNotFound      = errors.New("projections: not found")
	ErrFormatVersion = errors.New("projections: store format version mismatch")
)

// Key prefixes (see the package doc).
var (
	keyFormat   = []byte("m/format")
	keyStreamID = []byte("m/stream")
	prefixCkpt  = []byte("c/")
	prefixCount = []byte("n/")
	prefixRow   = []byte("p/")
	prefixEntry = []byte("h/")
	prefixAck   = []byte("k/")
	prefixSeen  = []byte("e/")
	prefixSeq   = []byte("s/")
)

const sep = 0x00

// Store is the Pebble store. Its methods are safe for concurrent use; each
// consumer writes its own keys through its own batches.
type Store struct {
	db    *pebble.DB
	dir   string
	cache *rowCache
	seen  *keyFilter // the ledger's keys
	rowed *keyFilter // the rows' keys
	// durable is the write option of durable commits (pebble.Sync, or
	// NoSync for a store without a WAL).
	durable *pebble.WriteOptions
	// rowsVersion: see RowsVersion. rowsLanded counts the commits that
	// have ended (applied and their rows cached, or failed).
	rowsVersion atomic.Uint64
	rowsLanded  atomic.Uint64
	// afterRowRead, when set (tests only), runs between a row's read from
	// Pebble and its fill of the row cache.
	afterRowRead func()

	// The filters are loaded in the background (loadFilters); Close stops
	// and waits for that.
	stopLoad chan struct{}
	stopOnce sync.Once
	loading  sync.WaitGroup
}

// Options tune the store.
type Options struct {
	// CacheSize is Pebble's block cache in bytes (default 64 MiB).
	CacheSize int64
	// MemTableSize in bytes (default 32 MiB).
	MemTableSize uint64
	// RowCache is how many rows the row cache holds (default 131072, about
	// 40 MiB at most).
	RowCache int
	// DisableWAL skips the write-ahead log: for a store built from scratch
	// that is thrown away if the build fails (rebuild), made durable by a
	// Flush at the end. Nothing written is durable before that Flush.
	DisableWAL bool
	// Lock, when set, is dir's lock, taken by LockDir and held by the
	// caller beyond the store's life (closing the store keeps it held).
	Lock *DirLock
}

// ErrInUse means another process holds the store's directory (a running
// driftwatch serve, a rebuild).
var ErrInUse = errors.New("projections: the store is in use by another process")

// DirLock is a store directory's lock (Pebble's own LOCK file), held
// across steps that must keep every other process out: a rebuild holds
// the live store's and the rebuilt store's until the swap is done.
type DirLock struct{ l *pebble.Lock }

// LockDir takes dir's lock (creating dir when missing). It is ErrInUse
// when another process holds it.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create projection store %s: %w", dir, err)
	}
	l, err := pebble.LockDirectory(dir, vfs.Default)
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		return nil, fmt.Errorf("%w: %s", ErrInUse, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lock projection store %s: %w", dir, err)
	}
	return &DirLock{l: l}, nil
}

// Release releases the lock (after every store opened with it is closed).
func (d *DirLock) Release() error { return d.l.Close() }

// Open opens or creates the store in dir and checks its format version.
func Open(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create projection store %s: %w", dir, err)
	}
	// Durable writes wait for the WAL; without one they cannot (Pebble
	// refuses), and the final Flush is what makes the store durable.
	durable := pebble.Sync
	if o.DisableWAL {
		durable = pebble.NoSync
	}
	opts := PebbleOptions(o)
	defer opts.Cache.Unref()
	if o.Lock != nil {
		opts.Lock = o.Lock.l
	}
	db, err := pebble.Open(dir, opts)
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		return nil, fmt.Errorf("open projection store %s: %w", dir, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open projection store %s: %w", dir, err)
	}
	if o.RowCache == 0 {
		o.RowCache = 1 << 17
	}
	s := &Store{db: db, dir: dir, cache: newRowCache(o.RowCache), seen: newKeyFilter(4 << 20), rowed: newKeyFilter(4 << 20), durable: durable}
	v, closer, err := db.Get(keyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := db.Set(keyFormat, binary.AppendUvarint(nil, FormatVersion), durable); err != nil {
			db.Close()
			return nil, fmt.Errorf("write store format version: %w", err)
		}
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("read store format version: %w", err)
	default:
		ver, _ := binary.Uvarint(v)
		closer.Close()
		if ver != FormatVersion {
			db.Close()
			return nil, fmt.Errorf("%w: %s has format %d, this driftwatch reads %d; run driftwatch rebuild", ErrFormatVersion, dir, ver, FormatVersion)
		}
	}
	s.stopLoad = make(chan struct{})
	s.loading.Add(1)
	go s.loadFilters()
	return s, nil
}

// errStopped ends a filter load when the store closes.
var errStopped = errors.New("projections: store closing")

// loadFilters fills the ledger and row filters from the store, then makes
// them answer: until then every lookup reads Pebble, so opening a store of
// millions of keys is not delayed (a scan of 18M keys takes seconds).
// Keys committed meanwhile are added by CommitTx as always, and a key
// committed before the scan's snapshot is found by the scan.
func (s *Store) loadFilters() {
	defer s.loading.Done()
	for _, f := range []struct {
		prefix []byte
		filter *keyFilter
	}{{prefixSeen, s.seen}, {prefixRow, s.rowed}} {
		err := s.scan(f.prefix, func(k, _ []byte) error {
			select {
			case <-s.stopLoad:
				return errStopped
			default:
			}
			f.filter.add(k)
			return nil
		})
		if err != nil {
			return // the filter stays unloaded: lookups keep reading Pebble
		}
		f.filter.ready.Store(true)
	}
}

// WaitFilters blocks until the background load of the key filters has
// ended, for whoever times work on a store just opened (the sweep bench).
func (s *Store) WaitFilters() { s.loading.Wait() }

// Close closes the store.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stopLoad) })
	s.loading.Wait()
	return s.db.Close()
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// The store owns its Pebble database: other packages read and write their
// own prefixes (doc.go) through these, never through a raw handle.

// Get reads a key (pebble.ErrNotFound when absent); the value is valid
// until the closer is closed.
func (s *Store) Get(key []byte) ([]byte, io.Closer, error) { return s.db.Get(key) }

// Set writes one key durably (as every commit of the store is).
func (s *Store) Set(key, value []byte) error { return s.db.Set(key, value, s.durable) }

// Delete removes one key durably.
func (s *Store) Delete(key []byte) error { return s.db.Delete(key, s.durable) }

// NewIter iterates over the committed state.
func (s *Store) NewIter(o *pebble.IterOptions) (*pebble.Iterator, error) { return s.db.NewIter(o) }

// NewWriteBatch returns a write-only batch, committed with Commit or
// CommitNoSync (cheaper than NewBatch's indexed one when nothing reads it).
func (s *Store) NewWriteBatch() *pebble.Batch { return s.db.NewBatch() }

// CommitNoSync applies a batch without waiting for the disk (for derived
// state whose loss on a power cut costs nothing but a little history),
// then closes it.
func (s *Store) CommitNoSync(b *pebble.Batch) error {
	defer b.Close()
	return s.db.Apply(b, pebble.NoSync)
}

// Flush writes the memtables to disk.
func (s *Store) Flush() error { return s.db.Flush() }

// Metrics are Pebble's own figures (for the load tool).
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }

// NewBatch returns an indexed batch: reads through it see its own writes.
func (s *Store) NewBatch() *pebble.Batch { return s.db.NewIndexedBatch() }

// Commit applies a batch durably (fsync), then closes it.
func (s *Store) Commit(b *pebble.Batch) error {
	defer b.Close()
	if err := s.db.Apply(b, s.durable); err != nil {
		return fmt.Errorf("commit projection batch: %w", err)
	}
	return nil
}

// Reader is what both the DB and an indexed batch offer.
type Reader = reader

// reader is what both the DB and an indexed batch offer.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// get copies the value of key, or returns ErrNotFound.
func get(r reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

func ckptKey(consumer string) []byte { return append(append([]byte(nil), prefixCkpt...), consumer...) }

// Checkpoint is the last stream sequence a consumer applied (0 if none).
func (s *Store) Checkpoint(consumer string) (uint64, error) {
	v, err := get(s.db, ckptKey(consumer))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	seq, _ := binary.Uvarint(v)
	return seq, nil
}

// SetCheckpoint records seq as the consumer's last applied sequence in b.
func SetCheckpoint(b *pebble.Batch, consumer string, seq uint64) error {
	return b.Set(ckptKey(consumer), binary.AppendUvarint(nil, seq), nil)
}

// Checkpoints lists every consumer's checkpoint.
func (s *Store) Checkpoints() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.scan(prefixCkpt, func(k, v []byte) error {
		seq, _ := binary.Uvarint(v)
		out[string(k[len(prefixCkpt):])] = seq
		return nil
	})
	return out, err
}

func counterKey(consumer, name string) []byte {
	k := append(append([]byte(nil), prefixCount...), consumer...)
	k = append(k, '/')
	return append(k, name...)
}

// AddCounter adds delta to a consumer's counter in tx.
func AddCounter(tx *Tx, consumer, name string, delta uint64) error {
	b := tx.B
	key := counterKey(consumer, name)
	cur := uint64(0)
	if v, err := get(tx.reader(), key); err == nil {
		cur, _ = binary.Uvarint(v)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return b.Set(key, binary.AppendUvarint(nil, cur+delta), nil)
}

// Counter reads a consumer's counter.
func (s *Store) Counter(consumer, name string) (uint64, error) {
	v, err := get(s.db, counterKey(consumer, name))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, _ := binary.Uvarint(v)
	return n, nil
}

// StreamID is the creation time of the events stream the store was built
// from ("" for a new store).
func (s *Store) StreamID() (string, error) {
	v, err := get(s.db, keyStreamID)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

// SetStreamID records the events stream's identity.
func (s *Store) SetStreamID(id string) error {
	return s.db.Set(keyStreamID, []byte(id), s.durable)
}

func rowKey(orderID, system string) []byte {
	k := make([]byte, 0, len(prefixRow)+len(orderID)+1+len(system))
	k = append(k, prefixRow...)
	k = append(k, orderID...)
	k = append(k, sep)
	return append(k, system...)
}

func orderPrefix(prefix []byte, orderID string) []byte {
	k := make([]byte, 0, len(prefix)+len(orderID)+1)
	k = append(k, prefix...)
	k = append(k, orderID...)
	return append(k, sep)
}

func entryKey(orderID string, seq uint64) []byte {
	return appendSeq(orderPrefix(prefixEntry, orderID), seq)
}

func ackKey(orderID, system, eventID, ackSystem string) []byte {
	k := orderPrefix(prefixAck, orderID)
	k = append(k, system...)
	k = append(k, sep)
	k = append(k, eventID...)
	k = append(k, sep)
	return append(k, ackSystem...)
}

func seenKey(system, eventID string) []byte {
	k := make([]byte, 0, len(prefixSeen)+len(system)+1+len(eventID))
	k = append(k, prefixSeen...)
	k = append(k, system...)
	k = append(k, sep)
	return append(k, eventID...)
}

// Row reads one system's projection of an order (committed state, from
// the row cache when it holds it).
//
// A row read from Pebble is put in the row cache, so the rows a reader
// keeps asking for (the gate's) stay cached however many others the
// projector writes meanwhile.
func (s *Store) Row(orderID, system string) (Row, error) {
	k := rowKey(orderID, system)
	if row, known, err := s.knownRow(k); known {
		return row, err
	}
	// Read through to Pebble and fill the cache, unless a commit was in
	// flight at any moment of the read: that commit's rows go to the cache
	// as it lands, and an older row put there after them would stay. So
	// the rows must be settled before the read, and no commit may have
	// started when the cache shard is locked to insert.
	version, settled := s.RowsSettled()
	v, err := get(s.db, k)
	if err != nil {
		return Row{}, err
	}
	if s.afterRowRead != nil {
		s.afterRowRead()
	}
	if settled {
		s.cache.putIf(string(k), v, func() bool { return s.rowsVersion.Load() == version })
	}
	return decodeRowShared(v) // get's copy is the row's and the cache's alone
}

// RowThrough reads a row from the row cache, or through r without filling
// the cache (the fill rule is Row's, for reads of the committed state).
func (s *Store) RowThrough(r Reader, orderID, system string) (Row, error) {
	k := rowKey(orderID, system)
	if row, known, err := s.knownRow(k); known {
		return row, err
	}
	return readRow(r, orderID, system)
}

// knownRow answers for the row at k without reading Pebble when it can:
// the row cache holds the committed row, or the key filter says it was
// never committed (ErrNotFound). known is false when Pebble must be read.
func (s *Store) knownRow(k []byte) (row Row, known bool, err error) {
	if v, ok := s.cache.get(k); ok {
		row, err = decodeRowShared(v)
		return row, true, err
	}
	if !s.rowed.mayContain(k) {
		return Row{}, true, ErrNotFound
	}
	return Row{}, false, nil
}

// HasAck reports whether ackSystem acknowledged system's event eventID.
func HasAck(r reader, orderID, system, eventID, ackSystem string) (AckLink, bool, error) {
	v, err := get(r, ackKey(orderID, system, eventID, ackSystem))
	if errors.Is(err, ErrNotFound) {
		return AckLink{}, false, nil
	}
	if err != nil {
		return AckLink{}, false, err
	}
	a, err := decodeAck(v)
	return a, err == nil, err
}

// ReadEntry reads one order index entry through r.
func ReadEntry(r reader, orderID string, seq uint64) (Entry, error) {
	v, err := get(r, entryKey(orderID, seq))
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(v)
}

func readRow(r reader, orderID, system string) (Row, error) {
	v, err := get(r, rowKey(orderID, system))
	if err != nil {
		return Row{}, err
	}
	return decodeRowShared(v) // get's copy is the row's alone
}

// Rows reads every system's projection of an order, by system id.
func (s *Store) Rows(orderID string) ([]Row, error) {
	var rows []Row
	err := s.scan(orderPrefix(prefixRow, orderID), func(k, v []byte) error {
		r, err := decodeRow(v)
		if err != nil {
			return fmt.Errorf("row %q: %w", k, err)
		}
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

func seqKey(seq uint64) []byte { return appendSeq(append([]byte(nil), prefixSeq...), seq) }

// OrderOfSeq returns the order id of the event at a stream sequence, if the
// projector applied it (rejected and duplicate messages have none).
func (s *Store) OrderOfSeq(seq uint64) (string, error) {
	v, err := get(s.db, seqKey(seq))
	if err != nil {
		return "", err
	}
	return string(v), nil
}

// Entry reads one event of the order index.
func (s *Store) Entry(orderID string, seq uint64) (Entry, error) {
	v, err := get(s.db, entryKey(orderID, seq))
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(v)
}

// Timeline reads an order's events in log order.
func (s *Store) Timeline(orderID string) ([]Entry, error) {
	var out []Entry
	err := s.scan(orderPrefix(prefixEntry, orderID), func(k, v []byte) error {
		e, err := decodeEntry(v)
		if err != nil {
			return fmt.Errorf("entry %q: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// Acks reads an order's acknowledgement links.
func (s *Store) Acks(orderID string) ([]AckLink, error) {
	var out []AckLink
	err := s.scan(orderPrefix(prefixAck, orderID), func(k, v []byte) error {
		a, err := decodeAck(v)
		if err != nil {
			return fmt.Errorf("ack %q: %w", k, err)
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// RawOrder is one order's rows, still encoded, as ScanOrdersRaw reads them.
// OrderID and Values share the bytes of their RawChunk.
type RawOrder struct {
	OrderID string
	Values  [][]byte
}

// RawChunk is a chunk of orders read by ScanOrdersRaw. Its orders' IDs and
// values share one buffer, which Release hands to a later chunk: whatever
// must outlive Release (an order ID, a row) has to be copied first
// (strings.Clone, RawOrder.Rows without share).
type RawChunk struct {
	Orders []RawOrder
	buf    []byte
	values [][]byte
}

var rawChunks = sync.Pool{New: func() any { return new(RawChunk) }}

// Release returns the chunk's memory for reuse; nothing read from it
// without copying may be used afterwards.
func (c *RawChunk) Release() { rawChunks.Put(c) }

// Rows decodes the order's rows, appending to dst. With share, their
// strings share the chunk's bytes instead of copying them (no allocation):
// for rows that are looked at and dropped before the chunk is released,
// since its bytes are then reused and such a string would change under
// whoever kept it.
func (o *RawOrder) Rows(dst []Row, share bool) ([]Row, error) {
	for _, v := range o.Values {
		dst = append(dst, Row{})
		if err := decodeRowInto(&dst[len(dst)-1], dec{b: v, alias: share}); err != nil {
			return dst[:len(dst)-1], fmt.Errorf("row of %s: %w", o.OrderID, err)
		}
	}
	return dst, nil
}

// ScanOrdersRaw reads every order's rows in key order without decoding
// them, and calls fn with chunks of up to n orders. The chunk belongs to fn
// until fn, or whoever fn passes it to, calls Release: a sweep decodes
// chunks on other goroutines while this one reads on, and the buffers go
// round instead of being allocated per chunk.
func (s *Store) ScanOrdersRaw(n int, fn func(*RawChunk) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixRow, UpperBound: prefixEnd(prefixRow)})
	if err != nil {
		return err
	}
	defer it.Close()
	// Bytes go to c.buf as they are read (it may move as it grows); the
	// spans say where, and become slices and strings once the chunk is full.
	type span struct{ from, to int }
	var (
		c       = rawChunks.Get().(*RawChunk)
		ids     []span // each order's ID in c.buf
		values  []span // each value in c.buf
		firstOf []int  // each order's first value in values
		curKey  []byte // the current order's key prefix, up to sep
	)
	flush := func() error {
		c.values = c.values[:0]
		for _, sp := range values {
			c.values = append(c.values, c.buf[sp.from:sp.to:sp.to])
		}
		c.Orders = c.Orders[:0]
		for i, sp := range ids {
			end := len(values)
			if i+1 < len(ids) {
				end = firstOf[i+1]
			}
			var id string
			if sp.to > sp.from {
				id = unsafe.String(&c.buf[sp.from], sp.to-sp.from)
			}
			c.Orders = append(c.Orders, RawOrder{OrderID: id, Values: c.values[firstOf[i]:end:end]})
		}
		full := c
		c = rawChunks.Get().(*RawChunk)
		c.buf, ids, values, firstOf = c.buf[:0], ids[:0], values[:0], firstOf[:0]
		return fn(full)
	}
	c.buf = c.buf[:0]
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		i := bytes.IndexByte(k[len(prefixRow):], sep)
		if i < 0 {
			continue // not a row key
		}
		orderKey := k[:len(prefixRow)+i]
		if !bytes.Equal(orderKey, curKey) {
			if len(ids) == n {
				if err := flush(); err != nil {
					return err
				}
			}
			curKey = append(curKey[:0], orderKey...)
			from := len(c.buf)
			c.buf = append(c.buf, orderKey[len(prefixRow):]...)
			ids = append(ids, span{from, len(c.buf)})
			firstOf = append(firstOf, len(values))
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		from := len(c.buf)
		c.buf = append(c.buf, v...)
		values = append(values, span{from, len(c.buf)})
	}
	if err := it.Error(); err != nil {
		return err
	}
	if len(ids) > 0 {
		return flush()
	}
	c.Release()
	return nil
}

// scan calls fn for every key with prefix, in key order.
func (s *Store) scan(prefix []byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// FormatTime renders a stored time (Unix nanoseconds) as RFC 3339 UTC with
// milliseconds, the one format every reply and alert uses ("" for zero).
func FormatTime(nanos int64) string {
	if nanos == 0 {
		return ""
	}
	return time.Unix(0, nanos).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// PrefixEnd is the first key after every key with prefix (an iterator's
// upper bound).
func PrefixEnd(prefix []byte) []byte { return prefixEnd(prefix) }

func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// Dump writes every key and value with the given prefixes (all when none)
// in key order: the equality check between a rebuild and incremental
// processing compares dumps.
func (s *Store) Dump(w io.Writer, prefixes ...string) error {
	if len(prefixes) == 0 {
		prefixes = []string{"p/", "h/", "k/", "e/", "s/"}
	}
	for _, p := range prefixes {
		if err := s.scan([]byte(p), func(k, v []byte) error {
			_, err := fmt.Fprintf(w, "%q=%x\n", k, v)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// quietLogger drops Pebble's informational lines and keeps errors on stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}

// CopyPrefixes copies every key under the given prefixes from s to dst (the
// detector's state when projections are rebuilt into a fresh store).
func (s *Store) CopyPrefixes(dst *Store, prefixes ...string) (int, error) {
	n := 0
	b := dst.db.NewBatch()
	for _, p := range prefixes {
		if err := s.scan([]byte(p), func(k, v []byte) error {
			n++
			if err := b.Set(k, v, nil); err != nil {
				return err
			}
			if b.Len() > 32<<20 {
				if err := b.Commit(pebble.NoSync); err != nil {
					return err
				}
				b = dst.db.NewBatch()
			}
			return nil
		}); err != nil {
			b.Close()
			return n, err
		}
	}
	return n, b.Commit(dst.durable)
}

// PebbleOptions are the Pebble options of a store opened with o (its
// defaults filled in): tuned for a write-heavy store of small keys. The
// caller owns the new block cache in Cache and unrefs it once the
// database is open. The load tool opens its store-floor baseline with
// them.
func PebbleOptions(o Options) *pebble.Options {
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	opts := &pebble.Options{
		Cache:        pebble.NewCache(o.CacheSize),
		MemTableSize: o.MemTableSize,
		Logger:       quietLogger{},
		// Every event rewrites its row and adds index entries: a
		// write-heavy store. Let L0 grow before it stalls writers, and
		// compact with both cores when it must.
		MemTableStopWritesThreshold: 3,
		DisableWAL:                  o.DisableWAL,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       400,
		LBaseMaxBytes:               256 << 20,
		CompactionConcurrencyRange:  func() (int, int) { return 1, 2 },
	}
	// Bloom filters make the per-event lookups of keys that do not exist
	// (the ledger, first rows of new orders) cheap. Blocks of 16 KiB
	// instead of 4 make the sweep's full scan of the rows 15-20% faster
	// (fewer blocks to read, decompress and cache); point reads, mostly
	// served by the row cache, showed no cost in the bench.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].BlockSize = 16 << 10
	}
	return opts
}
