package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/detector"
)

// HandoverBucket keeps what a partition's next owner needs from its last
// one, without expiry: "progress.<p>" (how far the owner had judged),
// "mismatch.<alert_id>" (every mismatch record as of its last state
// change, with its owner and audit trail: the mirror) and
// "system.<alert_id>" (the instance that opened a finding about a
// system: ClaimSystemFinding).
const HandoverBucket = "DRIFTWATCH_HANDOVER"

const (
	progressPrefix = "progress."
	mismatchPrefix = "mismatch."
	systemPrefix   = "system."
)

// claimTimeout bounds the bucket reads and writes of one claim.
const claimTimeout = 5 * time.Second

// ClaimSystemFinding decides whether this instance opens the finding
// about a system alertID (detector.Engine.SetSystemClaim). Such a finding
// (an unmapped status, a system's whole-hour clock offset) shows in the
// events of any instance's orders, so several instances may see it; one
// holds it, so that the cluster publishes it, lists it and counts it once.
//
// The key "system.<alert_id>" names the instance that opened it, created
// once for the cluster by the bucket's compare-and-set. This instance
// claims the finding when nobody has, when it is the one named, or when
// the finding is no longer held open: its mirrored record is resolved, or
// no record was mirrored and the instance named has left. It does not
// when another instance holds it open, whether that instance is alive or
// its record has been adopted with its partition by another.
//
// When the bucket cannot be read or written, it claims the finding: an
// alert given twice (the alerts stream's Nats-Msg-Id window drops a copy
// within 10 minutes) is better than one never given.
func (m *Member) ClaimSystemFinding(alertID string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	claimed, err := m.claimSystemFinding(ctx, alertID)
	if err != nil {
		m.log.Warn().Err(err).Str("alert_id", alertID).Msg("cluster: finding about a system opened without a claim")
		return true
	}
	return claimed
}

func (m *Member) claimSystemFinding(ctx context.Context, alertID string) (bool, error) {
	key, me := systemPrefix+alertID, []byte(m.opts.Instance)
	for {
		e, err := m.handover.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err = m.handover.Create(ctx, key, me); err == nil {
				return true, nil
			}
			if writtenFirst(err) {
				continue // another instance claimed it first
			}
			return false, err
		}
		if err != nil {
			return false, err
		}
		holder := string(e.Value())
		if holder == m.opts.Instance {
			return true, nil
		}
		if held, err := m.heldElsewhere(ctx, alertID, holder); err != nil || held {
			return false, err
		}
		if _, err = m.handover.Update(ctx, key, me, e.Revision()); err == nil {
			return true, nil
		}
		if !writtenFirst(err) {
			return false, err
		}
		// Another instance took it over meanwhile: read it again.
	}
}

// heldElsewhere reports whether the finding alertID, claimed by holder,
// is still held open: its mirrored record is open, or holder has not
// mirrored it yet and is alive.
func (m *Member) heldElsewhere(ctx context.Context, alertID, holder string) (bool, error) {
	e, err := m.handover.Get(ctx, mismatchPrefix+alertID)
	switch {
	case err == nil:
		var rec detector.Mismatch
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return false, fmt.Errorf("mirrored record of %s: %w", alertID, err)
		}
		return rec.State != detector.StateResolved, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		_, err := m.kv.Get(ctx, instancePrefix+holder)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		return err == nil, err
	default:
		return false, err
	}
}

// progress is how far a partition's owner had processed the log: every
// event up to Seq judged and its alerts queued, every expectation due by
// Judged judged. An owner that dies was up to a third of the lease
// further: what it judged in that time is judged again by the next owner,
// and the alerts stream's Nats-Msg-Id window drops the copies.
type progress struct {
	Instance string `json:"instance"`
	Seq      uint64 `json:"seq"`
	Judged   int64  `json:"judged_ns"`
}

// putProgress records, for partitions, how far this instance has
// processed: the detector's checkpoint and the watermark of its last
// complete tick. Called each round for the owned partitions, and for the
// ones given back just before their leases are.
func (m *Member) putProgress(ctx context.Context, partitions []int) error {
	if len(partitions) == 0 {
		return nil
	}
	p := progress{Instance: m.opts.Instance, Judged: m.opts.Detector.JudgedTo().UnixNano(), Seq: m.opts.Detector.Applied()}
	data, _ := json.Marshal(p)
	for _, part := range partitions {
		if _, err := m.handover.Put(ctx, progressPrefix+strconv.Itoa(part), data); err != nil {
			return fmt.Errorf("record progress of partition %d: %w", part, err)
		}
	}
	return nil
}

// Mirror keeps a published alert's whole record in the handover bucket
// (detector.Options.OnPublished): the next owner of its partition adopts
// it. It does not wait: the record goes as one message to the bucket's
// stream.
func (m *Member) Mirror(e detector.OutboxEntry) {
	if e.AlertID == "" || len(e.Record) == 0 {
		return
	}
	if err := m.opts.JS.Conn().Publish("$KV."+HandoverBucket+"."+mismatchPrefix+e.AlertID, e.Record); err != nil {
		m.log.Warn().Err(err).Str("alert_id", e.AlertID).Msg("cluster: mismatch record not mirrored")
	}
}

// previousOwners reads the gained partitions' progress, for those another
// instance owned last.
func (m *Member) previousOwners(ctx context.Context, gained []int) (map[int]progress, error) {
	out := map[int]progress{}
	for _, p := range gained {
		e, err := m.handover.Get(ctx, progressPrefix+strconv.Itoa(p))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var pr progress
		if json.Unmarshal(e.Value(), &pr) == nil && pr.Instance != m.opts.Instance {
			out[p] = pr
		}
	}
	return out, nil
}

// judgeAsBefore judges, silently, the gained partitions' expectations
// their previous owner had judged (due by its progress): it published
// what they raised.
func (m *Member) judgeAsBefore(prev map[int]progress) error {
	for p, pr := range prev {
		owns := func(order string) bool { return events.Partition(order, m.opts.Partitions) == p }
		for {
			tx := m.opts.Store.NewTx(true)
			n := 0
			err := m.opts.Detector.UpdateTx(tx, func(e *detector.Engine, now time.Time) error {
				// A judgement raises the engine's floor to its watermark:
				// the next partition's older expectations lie below it.
				e.ResetDueFloor()
				return e.Silently(func() error {
					var err error
					n, _, err = e.JudgeDueFor(tx.B, time.Unix(0, pr.Judged), now, 2000, nil, owns)
					return err
				})
			})
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

// records reads the mirrored mismatch records of the gained partitions'
// orders. Read before the change: their previous owners write them no
// more (they gave the partitions back, or died).
func (m *Member) records(ctx context.Context, gained []int) ([]*detector.Mismatch, error) {
	set := map[int]bool{}
	for _, p := range gained {
		set[p] = true
	}
	w, err := m.handover.Watch(ctx, mismatchPrefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var records []*detector.Mismatch
	for e := range w.Updates() {
		if e == nil {
			break
		}
		var rec detector.Mismatch
		if err := json.Unmarshal(e.Value(), &rec); err != nil || !strings.HasPrefix(e.Key(), mismatchPrefix) {
			continue
		}
		if set[events.Partition(rec.OrderID, m.opts.Partitions)] {
			records = append(records, &rec)
		}
	}
	return records, nil
}

// adopt takes over records: their state, owner and audit trail as their
// last owner left them.
func (m *Member) adopt(records []*detector.Mismatch) error {
	for start := 0; start < len(records); start += catchUpBatch {
		batch := records[start:min(start+catchUpBatch, len(records))]
		tx := m.opts.Store.NewTx(true)
		if err := m.opts.Detector.UpdateTx(tx, func(e *detector.Engine, _ time.Time) error {
			for _, rec := range batch {
				if err := e.Adopt(tx.B, rec); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
