package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// The partitions' bookkeeping in the store (projections.PrefixPartitions),
// each value a uvarint.
var partitionCountKey = []byte(projections.PrefixPartitions + "count")

// markKey holds the checkpoint of consumer that partition p's state in this
// store is current at, while p is not owned here.
func markKey(p int, consumer string) []byte {
	return []byte(projections.PrefixPartitions + strconv.Itoa(p) + "/" + consumer)
}

// heldKey holds 1 while partition p is owned here: its state then follows
// the consumers' own checkpoints, and its marks are stale.
func heldKey(p int) []byte { return []byte(projections.PrefixPartitions + strconv.Itoa(p) + "/held") }

// readMark reads a bookkeeping value (0 when absent).
func (m *Member) readMark(key []byte) (uint64, error) {
	v, closer, err := m.opts.Store.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	n, _ := binary.Uvarint(v)
	return n, nil
}

// setMark writes a bookkeeping value in b.
func setMark(b *pebble.Batch, key []byte, v uint64) error {
	return b.Set(key, binary.AppendUvarint(nil, v), nil)
}

// catchUpBatch is the most events caught up in one durable batch.
const catchUpBatch = 1000

// consumers are the checkpoints a partition's state follows: one
// projector consumer per system, and the detector's.
func (m *Member) consumers() []string {
	out := make([]string, 0, len(m.opts.Systems)+1)
	for _, s := range m.opts.Systems {
		out = append(out, projector.ConsumerPrefix+s)
	}
	return append(out, detector.ConsumerName)
}

// storedCheckpoints are the consumers' checkpoints as the store has them
// (before the consumers run).
func (m *Member) storedCheckpoints() (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, c := range m.consumers() {
		seq, err := m.opts.Store.Checkpoint(c)
		if err != nil {
			return nil, err
		}
		out[c] = seq
	}
	return out, nil
}

// liveCheckpoints are the consumers' checkpoints now; read with no batch
// in flight (under partition.Set.Change), they are the store's.
func (m *Member) liveCheckpoints() map[string]uint64 {
	out := map[string]uint64{detector.ConsumerName: m.opts.Detector.Applied()}
	for sys, seq := range m.opts.Projector.Applied() {
		out[projector.ConsumerPrefix+sys] = seq
	}
	return out
}

// recover turns the partitions the store held when this instance last
// stopped (or died) into marks at the store's checkpoints: it owns nothing
// until it takes leases again.
func (m *Member) recover() error {
	ckpts, err := m.storedCheckpoints()
	if err != nil {
		return err
	}
	b := m.opts.Store.NewBatch()
	for p := range m.opts.Partitions {
		held, err := m.readMark(heldKey(p))
		if err != nil {
			b.Close()
			return err
		}
		if held == 1 {
			if err := m.setMarks(b, p, ckpts); err != nil {
				b.Close()
				return err
			}
		}
	}
	return m.opts.Store.Commit(b)
}

func (m *Member) setMarks(b *pebble.Batch, p int, ckpts map[string]uint64) error {
	for c, seq := range ckpts {
		if err := setMark(b, markKey(p, c), seq); err != nil {
			return err
		}
	}
	return setMark(b, heldKey(p), 0)
}

// change makes want the owned partitions: the ones lost get marks at the
// consumers' checkpoints, the ones gained are caught up from theirs.
func (m *Member) change(want []int) error {
	start := time.Now()
	// First the bulk, while the consumers run on: they pass these
	// partitions over until they are owned, and the catch-up moves their
	// marks. Under the change only what came meanwhile is left.
	early := 0
	// What the log no longer held of the gained partitions: found by the
	// bulk, whose catch-up moves the marks past it.
	var unread *Unread
	var gaining []int
	for _, p := range want {
		if !m.opts.Owned.OwnsPartition(p) {
			gaining = append(gaining, p)
		}
	}
	var records []*detector.Mismatch
	if len(gaining) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		prev, err := m.previousOwners(ctx, gaining)
		if err == nil {
			m.reach(ctx, prev)
			early, unread, err = m.catchUp(ctx, gaining, m.liveCheckpoints(), prev)
		}
		if err == nil {
			err = m.judgeAsBefore(prev)
		}
		if err == nil {
			records, err = m.records(ctx, gaining)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: take partitions %v: %w", gaining, err)
		}
	}
	changed := false
	err := m.opts.Owned.Change(want, func(gained, lost []int) error {
		changed = true
		paused := time.Now()
		ckpts := m.liveCheckpoints()
		b := m.opts.Store.NewBatch()
		for _, p := range lost {
			if err := m.setMarks(b, p, ckpts); err != nil {
				b.Close()
				return err
			}
		}
		if err := m.opts.Store.Commit(b); err != nil {
			return err
		}
		replayed, adopted := 0, 0
		if len(gained) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			// What their previous owner judged is re-derived silently
			// (it published the alerts), then its records are adopted.
			// The gained partitions' expectations lie below the floor
			// this instance's ticks have raised: judge from the bottom.
			m.opts.Detector.Engine().ResetDueFloor()
			prev, err := m.previousOwners(ctx, gained)
			if err != nil {
				return fmt.Errorf("cluster: read the progress of partitions %v: %w", gained, err)
			}
			var rest *Unread
			if replayed, rest, err = m.catchUp(ctx, gained, ckpts, prev); err != nil {
				return fmt.Errorf("cluster: catch up partitions %v: %w", gained, err)
			}
			if rest != nil {
				unread = rest
			}
			if err := m.judgeAsBefore(prev); err != nil {
				return fmt.Errorf("cluster: judge partitions %v as before: %w", gained, err)
			}
			if err := m.adopt(records); err != nil {
				return fmt.Errorf("cluster: adopt the records of partitions %v: %w", gained, err)
			}
			adopted = len(records)
			b := m.opts.Store.NewBatch()
			for _, p := range gained {
				if err := setMark(b, heldKey(p), 1); err != nil {
					b.Close()
					return err
				}
			}
			if err := m.opts.Store.Commit(b); err != nil {
				return err
			}
			// Hints of "another's order" may name these partitions'
			// orders now; their expectations were passed over by the
			// ticks while they were another's.
			m.opts.Detector.ForgetHints()
			m.opts.Detector.Engine().ResetDueFloor()
		}
		c := Change{At: time.Now().UTC(), Gained: gained, Lost: lost, Replayed: early + replayed, Adopted: adopted,
			Took: time.Since(start), Paused: time.Since(paused), Unread: unread}
		m.mu.Lock()
		m.last = c
		m.mu.Unlock()
		m.log.Info().Ints("gained", gained).Ints("lost", lost).Int("replayed", c.Replayed).Int("adopted", adopted).Dur("took", c.Took).Dur("paused", c.Paused).Msg("partitions changed")
		return nil
	})
	if err == nil && changed {
		m.announce()
	}
	return err
}

// reach waits, for at most a lease, until this instance's detector has
// read the log as far as the gained partitions' previous owners had: an
// instance behind them would otherwise judge aloud, once the partitions
// are its own, events their owner already judged and published.
func (m *Member) reach(ctx context.Context, prev map[int]progress) {
	var seq uint64
	for _, pr := range prev {
		seq = max(seq, pr.Seq)
	}
	deadline := time.Now().Add(m.opts.Lease)
	// An instance that reads its own partitions alone moves its
	// checkpoints over the others' events once it has read all of its
	// own (projector.IdleAfter).
	for m.opts.Detector.Applied() < seq {
		if time.Now().After(deadline) {
			m.log.Warn().Uint64("at", m.opts.Detector.Applied()).Uint64("previous_owner_at", seq).
				Msg("cluster: taking partitions while behind their previous owner; what it judged in between is judged again")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// catchUp projects and judges, in log order, the events of the gained
// partitions that came after their marks, up to the consumers'
// checkpoints (what the consumers read later is theirs). Each batch
// moves the marks it covered, in the same durable commit, so a catch-up
// cut short goes on where it stopped.
func (m *Member) catchUp(ctx context.Context, gained []int, ckpts map[string]uint64, prev map[int]progress) (replayed int, unread *Unread, err error) {
	n := m.opts.Partitions
	marks := make(map[int]map[string]uint64, len(gained))
	// From the lowest mark still behind its consumer's checkpoint to the
	// highest such checkpoint (a consumer with nothing to read, its mark
	// at its checkpoint, moves neither).
	from, to := uint64(math.MaxUint64), uint64(0)
	for _, p := range gained {
		mk := map[string]uint64{}
		for c, ck := range ckpts {
			seq, err := m.readMark(markKey(p, c))
			if err != nil {
				return 0, nil, err
			}
			mk[c] = seq
			if seq < ck {
				from, to = min(from, seq), max(to, ck)
			}
		}
		marks[p] = mk
	}
	if to == 0 {
		return 0, nil, nil
	}
	if unread, err = m.checkUnread(ctx, gained, marks, ckpts); err != nil {
		return 0, nil, err
	}
	// Every subject of the configured systems; once the stream routes by
	// partition from the first event read, the gained partitions' alone
	// (and the subjects without one, which carry any partition's).
	routing := broker.RoutingOf(m.stream.CachedInfo().Config)
	subjects := make([]string, 0, len(m.opts.Systems)*(len(gained)+1))
	for _, s := range m.opts.Systems {
		if !projector.Routes(routing, n, from+1) {
			subjects = append(subjects, events.SystemSubjects(s)...)
			continue
		}
		subjects = append(subjects, events.InSubject(s))
		for _, p := range gained {
			subjects = append(subjects, events.InSubject(s)+"."+strconv.Itoa(p))
		}
	}
	cons, err := m.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from + 1,
	})
	if err != nil {
		return 0, nil, err
	}
	det := detector.ConsumerName
	replayed, deadLettered := 0, 0
	defer func() {
		if deadLettered > 0 {
			m.log.Warn().Int("dead_lettered", deadLettered).Ints("partitions", gained).Msg("bad input passed over while the partitions had no owner, dead-lettered by the catch-up")
		}
	}()
	for {
		batch, err := cons.FetchNoWait(catchUpBatch)
		if err != nil {
			return replayed, unread, err
		}
		var msgs []jetstream.Msg
		for msg := range batch.Messages() {
			msgs = append(msgs, msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return replayed, unread, err
		}
		if len(msgs) == 0 {
			return replayed, unread, nil // the log has nothing more of these subjects
		}
		last := uint64(0)
		tx := m.opts.Store.NewTx(true)
		err = m.opts.Detector.UpdateTx(tx, func(e *detector.Engine, now time.Time) error {
			for _, msg := range msgs {
				meta, err := msg.Metadata()
				if err != nil {
					return err
				}
				seq := meta.Sequence.Stream
				if seq > to {
					break
				}
				last = seq
				replayed++
				sys, _ := events.SystemFromSubject(msg.Subject())
				proj := projector.ConsumerPrefix + sys
				projTo := ckpts[proj]
				d := projections.Delivery{
					Subject: msg.Subject(), Data: msg.Data(), Seq: seq, Received: meta.Timestamp, Partitions: n,
					Owns: func(part int) bool {
						mk, ok := marks[part]
						return ok && seq > mk[proj] && seq <= projTo
					},
				}
				projector.Route(&d, routing)
				out, err := m.opts.Applier.Apply(tx, d)
				if err != nil {
					return err
				}
				part := d.Route
				if !d.Routed {
					part = events.Partition(out.Event.OrderID, n)
				}
				mk, ok := marks[part]
				if ok && out.Result == projections.Rejected && seq > prev[part].Seq {
					// Bad input nobody dead-lettered yet: passed over
					// by every instance while the partition had no
					// owner (a copy its previous owner sent is dropped
					// by the message id).
					if err := projector.DeadLetter(ctx, m.opts.JS, sys, msg.Data(), out.Err, seq); err != nil {
						return err
					}
					deadLettered++
				}
				if !ok || seq <= mk[det] || seq > ckpts[det] {
					continue // not gained, or judged already, or the detector's to read
				}
				entry := out.Entry
				switch out.Result {
				case projections.Applied, projections.Late, projections.Acked:
				case projections.NotOwned:
					// Projected here before, not judged yet.
					entry, err = projections.ReadEntry(tx.B, out.Event.OrderID, seq)
					if errors.Is(err, projections.ErrNotFound) {
						continue // it was rejected or a duplicate
					}
					if err != nil {
						return err
					}
				default:
					continue
				}
				detect := func() error { return e.OnEntryTx(tx, out.Event.OrderID, entry, now) }
				if pr, ok := prev[part]; ok && seq <= pr.Seq {
					err = e.Silently(detect) // its previous owner judged it
				} else {
					err = detect()
				}
				if err != nil {
					return err
				}
			}
			for _, p := range gained {
				for c, ck := range ckpts {
					if mark := min(last, ck); mark > marks[p][c] {
						marks[p][c] = mark
						if err := setMark(tx.B, markKey(p, c), mark); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			return replayed, unread, err
		}
		m.renewIfDue(ctx)
		// Done at the last checkpoint, or when the log has nothing more
		// of these subjects (the last message says how many follow it).
		if meta, err := msgs[len(msgs)-1].Metadata(); err != nil || meta.Sequence.Stream >= to || meta.NumPending == 0 {
			return replayed, unread, err
		}
	}
}

// checkUnread looks for gained partitions this instance held before
// whose events past its marks the log no longer holds (its retention or a
// purge removed them while another instance owned them). Their state here
// cannot be brought up to date: it is as of when this instance gave them
// up, plus what the log still holds. The catch-up goes on, as a partition
// never held here is caught up from what the log holds; the range is
// logged as an error and returned for the change's record
// (Change.Unread), and README says how to start the instance afresh.
func (m *Member) checkUnread(ctx context.Context, gained []int, marks map[int]map[string]uint64, ckpts map[string]uint64) (*Unread, error) {
	info, err := m.stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	first := info.State.FirstSeq
	var u *Unread
	for _, p := range gained {
		lowest := uint64(math.MaxUint64)
		for c, ck := range ckpts {
			if mk := marks[p][c]; mk < ck {
				lowest = min(lowest, mk)
			}
		}
		// A mark of 0: never held here, caught up whole.
		if lowest == 0 || lowest == math.MaxUint64 || lowest+1 >= first {
			continue
		}
		if u == nil {
			u = &Unread{From: lowest + 1, To: first - 1}
		}
		u.Partitions = append(u.Partitions, p)
		u.From = min(u.From, lowest+1)
	}
	if u != nil {
		slices.Sort(u.Partitions)
		m.log.Error().Ints("partitions", u.Partitions).Uint64("from", u.From).Uint64("to", u.To).
			Msg("cluster: the log no longer holds events of partitions taken back since this instance gave them up; their state here misses them (empty the data folder and restart the instance to hold only what the log holds)")
	}
	return u, nil
}
