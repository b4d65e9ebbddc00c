// Package cluster shares the orders among driftwatch instances on one
// JetStream cluster. Orders are split into N partitions (events.Partition);
// each instance owns some of them under a lease in the NATS key-value
// bucket DRIFTWATCH_PARTITIONS, and keeps those orders' projections,
// expectations and mismatches in its own store. Together the instances own
// every partition once.
//
// The bucket's keys expire after the lease (cluster.lease) unless renewed,
// every third of it: "instances.<name>" says an instance is alive,
// "partitions.<p>" who owns partition p (created with Create, so two
// instances can never both hold it), "config.partitions" the number every
// instance must agree on. Each round an instance renews its leases, counts
// the live instances, gives back what is above its fair share (N over the
// live instances, rounded up) and takes unowned partitions up to it. A dead
// instance's leases expire and the survivors take its partitions.
//
// A partition taken is caught up from the log before it counts as owned:
// the store remembers, per partition it does not own, the checkpoints its
// state was current at ("marks"), so only what came since is projected
// and judged again, in one pass, in log order. The bulk runs while this
// instance's consumers go on (they pass the partition over until it is
// owned); what came meanwhile is caught up with them standing still
// (partition.Set.Change). A partition
// never owned here is caught up from the log's start: a rebuild of just
// its orders. What its previous owner had already judged (its progress,
// in DRIFTWATCH_HANDOVER) is re-derived silently, and the mismatch records
// it mirrored there are adopted (handover.go); its other overdue
// expectations are judged at the next tick. What a dead owner judged in
// its last third of a lease is judged again: the alerts stream's
// Nats-Msg-Id window (10 minutes) drops those copies.
//
// Requests about another instance's orders (HTTP routes, the gate) go to
// the owner over NATS request-reply, and lists are gathered from every
// instance (router.go).
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/partition"
	"github.com/driftwatch/driftwatch/services/projector"
)

// Bucket is the key-value bucket of the leases.
const Bucket = "DRIFTWATCH_PARTITIONS"

// Key prefixes in Bucket.
const (
	instancePrefix  = "instances."
	partitionPrefix = "partitions."
	partitionsKey   = "config.partitions"
)

// ErrPartitions means this instance's partition count differs from the
// cluster's or from the one its store was built with.
var ErrPartitions = errors.New("cluster: partition count differs")

// Options configures a member.
type Options struct {
	JS         jetstream.JetStream
	Instance   string
	Partitions int
	Lease      time.Duration
	Replicas   int
	Placement  *jetstream.Placement
	Owned      *partition.Set
	Store      *projections.Store
	Applier    *projections.Applier
	Projector  *projector.Projector
	Detector   *detector.Detector
	Systems    []string
	Logger     zerolog.Logger
	// HTTP is this instance's HTTP address, published in its instance key.
	HTTP string
}

// Instance is what an instance publishes about itself.
type Instance struct {
	Name    string `json:"name"`
	HTTP    string `json:"http,omitempty"`
	Started string `json:"started"`
}

// Member is one instance's membership: its leases and its catch-up.
type Member struct {
	opts     Options
	log      zerolog.Logger
	kv       jetstream.KeyValue // the leases
	handover jetstream.KeyValue // progress and mismatch records (handover.go)
	stream   jetstream.Stream
	started  time.Time

	mu        sync.Mutex
	revs      map[int]uint64 // owned partitions' lease revisions
	renewed   time.Time      // when the leases were last renewed
	owners    map[int]string // each partition's owner, as the last round saw it
	instances []Instance     // the live instances, as the last round saw them
	last      Change         // the last change of ownership
	svc       micro.Service  // announces what this instance owns (router.go)

	srv servers
}

// Change is one change of this instance's partitions.
type Change struct {
	At       time.Time     `json:"at"`
	Gained   []int         `json:"gained,omitempty"`
	Lost     []int         `json:"lost,omitempty"`
	Replayed int           `json:"replayed"` // events read from the log to catch up
	Adopted  int           `json:"adopted"`  // mismatch records taken over from the previous owners
	Took     time.Duration `json:"took_ns"`
	// Paused is how long this instance's consumers stood still for it:
	// the bulk of a catch-up runs before, while they go on.
	Paused time.Duration `json:"paused_ns"`
	// Unread, when set, is what the log no longer held of gained
	// partitions this instance had held before: its state of them is as
	// of when it gave them up, plus what the log still holds.
	Unread *Unread `json:"unread,omitempty"`
}

// Unread is a range of log sequences, From to To, that the catch-up of
// Partitions needed and the log's retention or a purge had removed.
type Unread struct {
	Partitions []int  `json:"partitions"`
	From       uint64 `json:"from"`
	To         uint64 `json:"to"`
}

// New returns a member, or what is missing.
func New(opts Options) (*Member, error) {
	var errs []error
	if opts.JS == nil || opts.Store == nil || opts.Applier == nil || opts.Projector == nil || opts.Detector == nil || opts.Owned == nil {
		errs = append(errs, errors.New("cluster: Options.JS, Store, Applier, Projector, Detector and Owned are required"))
	}
	if opts.Instance == "" {
		errs = append(errs, errors.New("cluster: Options.Instance is required"))
	}
	if opts.Lease < time.Second {
		errs = append(errs, fmt.Errorf("cluster: Options.Lease: %v is below 1s", opts.Lease))
	}
	if opts.Owned != nil && opts.Owned.N() != opts.Partitions {
		errs = append(errs, fmt.Errorf("cluster: Options.Owned has %d partitions, Options.Partitions %d", opts.Owned.N(), opts.Partitions))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Member{opts: opts, log: opts.Logger.With().Str("instance", opts.Instance).Logger(), revs: map[int]uint64{}, owners: map[int]string{}}, nil
}

// Start opens (or creates) the bucket, checks the partition count against
// the cluster's and the store's, turns what the store held when this
// instance last stopped into marks, and takes a first share of the
// partitions. Call it before the projector and the detector run.
func (m *Member) Start(ctx context.Context) error {
	m.started = time.Now()
	kv, err := openBucket(ctx, m.opts.JS, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "driftwatch: which instance owns which partition of the orders",
		TTL: m.opts.Lease, History: 1, Storage: jetstream.FileStorage,
		Replicas: max(m.opts.Replicas, 1), Placement: m.opts.Placement,
	})
	if err != nil {
		return err
	}
	m.kv = kv
	if m.handover, err = openBucket(ctx, m.opts.JS, jetstream.KeyValueConfig{
		Bucket: HandoverBucket, Description: "driftwatch: what the next owner of a partition takes over (progress, mismatch records)",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(m.opts.Replicas, 1), Placement: m.opts.Placement,
	}); err != nil {
		return err
	}
	if m.stream, err = broker.OpenStream(ctx, m.opts.JS, events.EventsStream); err != nil {
		return fmt.Errorf("cluster: open stream: %w", err)
	}
	if err := m.checkPartitions(ctx); err != nil {
		return err
	}
	if err := m.recover(); err != nil {
		return err
	}
	if err := m.round(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	announced := m.svc != nil
	m.mu.Unlock()
	if !announced { // a first round that took nothing announced nothing
		m.announce()
	}
	return nil
}

// checkPartitions compares the partition count with the cluster's (set
// by the first instance, renewed by every instance's round) and the
// store's.
func (m *Member) checkPartitions(ctx context.Context) error {
	n := m.opts.Partitions
	stored, err := m.readMark(partitionCountKey)
	if err != nil {
		return err
	}
	if stored != 0 && int(stored) != n {
		return fmt.Errorf("%w: the store in %s was built with %d partitions, cluster.partitions is %d: follow the procedure in the README (Scale out) to change it", ErrPartitions, m.opts.Store.Dir(), stored, n)
	}
	if err := m.claimCount(ctx); err != nil {
		return err
	}
	if stored == 0 {
		b := m.opts.Store.NewBatch()
		if err := setMark(b, partitionCountKey, uint64(n)); err != nil {
			b.Close()
			return err
		}
		return m.opts.Store.Commit(b)
	}
	return nil
}

// CheckCount refuses a partition count other than the one the running
// cluster has (nil when no instance runs). An instance checks it before it
// updates the streams: the events stream names partitions of the count in
// its subjects.
func CheckCount(ctx context.Context, js jetstream.JetStream, n int) error {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: open bucket %s: %w", Bucket, err)
	}
	e, err := kv.Get(ctx, partitionsKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: read the partition count: %w", err)
	}
	return sameCount(string(e.Value()), n)
}

func sameCount(cluster string, n int) error {
	if want := strconv.Itoa(n); cluster != want {
		return fmt.Errorf("%w: the cluster runs with %s partitions, this instance with %s (cluster.partitions)", ErrPartitions, cluster, want)
	}
	return nil
}

// claimCount creates the cluster's partition count, or refuses a
// different one (renew keeps it from expiring).
func (m *Member) claimCount(ctx context.Context) error {
	want := strconv.Itoa(m.opts.Partitions)
	e, err := m.kv.Get(ctx, partitionsKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if _, err := m.kv.Create(ctx, partitionsKey, []byte(want)); err != nil && !writtenFirst(err) {
			return fmt.Errorf("cluster: set the partition count: %w", err)
		}
		return m.claimCount(ctx) // read back what won
	case err != nil:
		return fmt.Errorf("cluster: read the partition count: %w", err)
	}
	return sameCount(string(e.Value()), m.opts.Partitions)
}

// Run renews the leases and rebalances every third of the lease until ctx
// ends, then gives every partition back (marks kept) and returns nil. A
// round that fails is logged and tried again: a NATS node lost for a
// moment must not stop detection.
func (m *Member) Run(ctx context.Context) error {
	t := time.NewTicker(m.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.leave()
			m.mu.Lock()
			if m.svc != nil {
				_ = m.svc.Stop()
			}
			m.mu.Unlock()
			return nil
		case <-t.C:
		}
		if err := m.round(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn().Err(err).Msg("cluster round failed; trying again")
			m.fence()
		}
	}
}

// fence stands this instance still when its leases were last renewed two
// thirds of a lease ago or more: they may expire before the next round,
// and another instance may then take the partitions and judge their
// events too. Writes carry no token the log or the store could check, so
// an instance that cannot renew (cut off from the bucket's leader while it
// still reads the log, paused) stops itself: it owns nothing here, its
// marks are kept, and a later round that renews takes back what it still
// holds, caught up from the marks.
func (m *Member) fence() {
	m.mu.Lock()
	since := time.Since(m.renewed)
	m.mu.Unlock()
	owned := m.opts.Owned.Owned()
	if since < 2*m.opts.Lease/3 || len(owned) == 0 {
		return
	}
	m.log.Error().Dur("since_renewed", since).Ints("partitions", owned).Msg("cluster: the leases were not renewed in time; standing still until they are")
	if err := m.change(nil); err != nil {
		m.log.Error().Err(err).Msg("cluster: standing still failed")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.Lease/3)
	defer cancel()
	if err := m.putProgress(ctx, owned); err != nil {
		m.log.Warn().Err(err).Msg("cluster: the progress of the partitions stood down was not recorded")
	}
}

// leave gives every partition back (marks kept) and removes the leases,
// so the others take them at once instead of after the lease.
func (m *Member) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	owned := m.opts.Owned.Owned()
	if err := m.change(nil); err != nil {
		m.log.Error().Err(err).Msg("cluster: giving the partitions back failed; their leases expire")
		return
	}
	if err := m.putProgress(ctx, owned); err != nil {
		m.log.Warn().Err(err).Msg("cluster: the progress of the partitions given back was not recorded")
	}
	m.mu.Lock()
	revs := m.revs
	m.revs = map[int]uint64{}
	m.mu.Unlock()
	for p, rev := range revs {
		_ = m.kv.Delete(ctx, partitionKey(p), jetstream.LastRevision(rev))
	}
	_ = m.kv.Delete(ctx, instancePrefix+m.opts.Instance)
}

// renew renews this instance's key and its leases. A lease found taken
// or gone is dropped: the next change gives its partition up. A catch-up
// calls it between batches too (renewIfDue): a long one must not let the
// leases it holds expire.
func (m *Member) renew(ctx context.Context) error {
	info, _ := json.Marshal(Instance{Name: m.opts.Instance, HTTP: m.opts.HTTP, Started: m.started.UTC().Format(time.RFC3339)})
	if _, err := m.kv.Put(ctx, instancePrefix+m.opts.Instance, info); err != nil {
		return fmt.Errorf("renew instance: %w", err)
	}
	// The count was checked at Start; every instance renews the same value.
	if _, err := m.kv.Put(ctx, partitionsKey, []byte(strconv.Itoa(m.opts.Partitions))); err != nil {
		return fmt.Errorf("renew the partition count: %w", err)
	}
	m.mu.Lock()
	revs := maps.Clone(m.revs)
	m.mu.Unlock()
	for p, rev := range revs {
		next, err := m.kv.Update(ctx, partitionKey(p), []byte(m.opts.Instance), rev)
		switch {
		case err == nil:
			m.mu.Lock()
			if _, held := m.revs[p]; held {
				m.revs[p] = next
			}
			m.mu.Unlock()
		case isLeaseLost(err):
			m.log.Warn().Int("partition", p).Msg("lease lost (not renewed in time); giving the partition up")
			m.mu.Lock()
			delete(m.revs, p)
			m.mu.Unlock()
		default:
			return fmt.Errorf("renew partition %d: %w", p, err)
		}
	}
	m.mu.Lock()
	m.renewed = time.Now()
	m.mu.Unlock()
	return nil
}

// renewIfDue renews when a third of the lease has passed since the last
// renewal.
func (m *Member) renewIfDue(ctx context.Context) {
	m.mu.Lock()
	due := time.Since(m.renewed) >= m.opts.Lease/3
	m.mu.Unlock()
	if due {
		if err := m.renew(ctx); err != nil {
			m.log.Warn().Err(err).Msg("cluster: renewing the leases during a catch-up failed")
		}
	}
}

// round renews, looks, gives back and takes.
func (m *Member) round(ctx context.Context) error {
	if err := m.renew(ctx); err != nil {
		return err
	}
	owners, live, err := m.view(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.owners, m.instances = owners, live
	mine := slices.Sorted(maps.Keys(m.revs))
	m.mu.Unlock()
	n := m.opts.Partitions
	share := (n + len(live) - 1) / max(len(live), 1)
	var giveBack []int
	if len(mine) > share {
		giveBack = mine[share:]
	}
	held := len(mine)
	for i, start := 0, startOf(m.opts.Instance, n); i < n && held-len(giveBack) < share; i++ {
		p := (start + i) % n
		if owners[p] != "" {
			continue
		}
		rev, err := m.kv.Create(ctx, partitionKey(p), []byte(m.opts.Instance))
		if err == nil {
			m.mu.Lock()
			m.revs[p] = rev
			m.mu.Unlock()
			held++
		} else if !writtenFirst(err) {
			return fmt.Errorf("take partition %d: %w", p, err)
		}
	}
	var want []int
	m.mu.Lock()
	for p := range m.revs {
		if !slices.Contains(giveBack, p) {
			want = append(want, p)
		}
	}
	m.mu.Unlock()
	if err := m.change(want); err != nil {
		return err
	}
	if err := m.putProgress(ctx, append(m.opts.Owned.Owned(), giveBack...)); err != nil {
		return err
	}
	for _, p := range giveBack {
		m.mu.Lock()
		rev := m.revs[p]
		delete(m.revs, p)
		m.mu.Unlock()
		if err := m.kv.Delete(ctx, partitionKey(p), jetstream.LastRevision(rev)); err != nil {
			m.log.Warn().Err(err).Int("partition", p).Msg("giving a lease back failed; it expires")
		}
	}
	return nil
}

// view reads the bucket: each partition's owner and the live instances.
func (m *Member) view(ctx context.Context) (owners map[int]string, live []Instance, err error) {
	w, err := m.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, fmt.Errorf("read the leases: %w", err)
	}
	defer w.Stop()
	owners = map[int]string{}
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil { // every current value was sent
				slices.SortFunc(live, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
				return owners, live, nil
			}
			key := e.Key()
			switch {
			case strings.HasPrefix(key, instancePrefix):
				in := Instance{Name: key[len(instancePrefix):]}
				_ = json.Unmarshal(e.Value(), &in)
				live = append(live, in)
			case strings.HasPrefix(key, partitionPrefix):
				if p, err := strconv.Atoi(key[len(partitionPrefix):]); err == nil {
					owners[p] = string(e.Value())
				}
			}
		}
	}
}

// LastChange is the last change of this instance's partitions.
func (m *Member) LastChange() Change {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Instance is this member's name.
func (m *Member) Instance() string { return m.opts.Instance }

func partitionKey(p int) string { return partitionPrefix + strconv.Itoa(p) }

// startOf is where an instance starts looking for free partitions: spread
// by its name, so instances starting together rarely race for the same.
func startOf(instance string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(instance))
	return int(h.Sum32() % uint32(n))
}

// openBucket creates the key-value bucket cfg, or updates it to cfg.
// Instances starting together on a JetStream cluster create it at once:
// a request left unanswered is asked again (broker.RetryUnanswered).
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := broker.RetryUnanswered(ctx, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// writtenFirst reports whether a create or compare-and-set of a key
// failed because another client wrote the key first. On a replicated
// bucket, a create of a deleted key that loses the race fails with the
// server's "wrong last sequence" as it is (code 10164), neither
// jetstream.ErrKeyExists nor ErrKeyRevisionMismatch.
func writtenFirst(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// isLeaseLost reports whether a lease's renewal failed because the key
// changed or went since this instance last wrote it: another instance
// holds it now, or it expired.
func isLeaseLost(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// Status is this instance's view of the cluster (GET /v1/status).
type Status struct {
	Instance   string         `json:"instance"`
	Partitions int            `json:"partitions"`
	Owned      []int          `json:"owned"`
	Owners     map[int]string `json:"owners"`
	Instances  []Instance     `json:"instances"`
	LastChange Change         `json:"last_change"`
}

// Status is what the last round saw: every partition's owner and the
// live instances.
func (m *Member) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Status{Instance: m.opts.Instance, Partitions: m.opts.Partitions, Owned: m.opts.Owned.Owned(),
		Owners: maps.Clone(m.owners), Instances: slices.Clone(m.instances), LastChange: m.last}
}
