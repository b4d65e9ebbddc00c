package detector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	storedjson "github.com/segmentio/encoding/json"

	"github.com/cockroachdb/pebble/v2"
	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
)

// The detector's keys in the projections store (prefix x/, laid out in
// doc.go), the mismatch codec and the outbox.

// Key prefixes of the detector (see doc.go).
var (
	prefixExp     = []byte(projections.PrefixDetector + "e/")
	prefixDue     = []byte(projections.PrefixDetector + "d/")
	prefixMis     = []byte(projections.PrefixDetector + "m/")
	prefixOpen    = []byte(projections.PrefixDetector + "o/")
	prefixUnmap   = []byte(projections.PrefixDetector + "u/")
	prefixOutbox  = []byte(projections.PrefixDetector + "q/")
	prefixGate    = []byte(projections.PrefixDetector + "g/")
	errNotFoundDB = pebble.ErrNotFound
)

func join(prefix []byte, parts ...string) []byte {
	k := append([]byte(nil), prefix...)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// scanPrefix calls fn for each key/value under prefix, through r.
func scanPrefix(r iterable, prefix []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: projections.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...)); err != nil {
			return err
		}
	}
	return it.Error()
}

type iterable interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// keyGateFlagsMigrated marks a store whose open gate flags carry their
// target and incoming states (GateTarget) and sit in the x/g/ index.
var keyGateFlagsMigrated = []byte(projections.PrefixDetector + "v/gate-flags")

func getMismatch(r projections.Reader, key []byte) (Mismatch, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, errNotFoundDB) {
		return Mismatch{}, false, nil
	}
	if err != nil {
		return Mismatch{}, false, err
	}
	defer closer.Close()
	var m Mismatch
	if err := storedjson.Unmarshal(v, &m); err != nil {
		return Mismatch{}, false, fmt.Errorf("decode mismatch %s: %w", key, err)
	}
	return m, true, nil
}

func putMismatch(b *pebble.Batch, key []byte, m *Mismatch) error {
	v, err := storedjson.Marshal(m)
	if err != nil {
		return err
	}
	return b.Set(key, v, nil)
}

// OutboxEntry is an alert waiting to be published.
type OutboxEntry struct {
	Subject string `json:"subject"`
	MsgID   string `json:"msg_id"`
	Data    []byte `json:"data"`
	// Change is "assigned" for a record republished because its owner
	// changed (its state did not); "" for a state change.
	Change string `json:"change,omitempty"`
	// AlertID and Record (the whole stored mismatch, with its audit
	// trail) are set when the engine mirrors its records (SetMirror):
	// instances of a cluster hand a partition's records over through
	// them.
	AlertID string          `json:"alert_id,omitempty"`
	Record  json.RawMessage `json:"record,omitempty"`
}

// enqueue queues m's alert record after a state change (opened,
// escalated, resolved), with Nats-Msg-Id <alert_id>:<state>.
func (e *Engine) enqueue(b *pebble.Batch, m *Mismatch) error {
	return e.enqueueRecord(b, m, m.AlertID+":"+m.State, "")
}

// enqueueRecord queues m's alert record, with its runbook, under msgID.
// Only state changes (change "") are handed to Committed: the metrics
// count opened and resolved mismatches, and an assignment is neither.
func (e *Engine) enqueueRecord(b *pebble.Batch, m *Mismatch, msgID, change string) error {
	if e.silent {
		return nil // re-derived: its owner then published it (Silently)
	}
	a := m.Alert
	a.Runbook = RunbookOf(e.cfg, m).Brief()
	data, err := json.Marshal(&a)
	if err != nil {
		return err
	}
	out := OutboxEntry{Subject: events.AlertSubject(m.Severity, m.Pattern), MsgID: msgID, Data: data, Change: change}
	if e.mirror {
		if out.Record, err = json.Marshal(m); err != nil {
			return err
		}
		out.AlertID = m.AlertID
	}
	entry, err := json.Marshal(out)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.outboxID++
	id := e.outboxID
	if change == "" {
		e.queued = append(e.queued, m)
	}
	e.mu.Unlock()
	return b.Set(binary.BigEndian.AppendUint64(append([]byte(nil), prefixOutbox...), id), entry, nil)
}
