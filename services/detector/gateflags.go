package detector

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	storedjson "github.com/segmentio/encoding/json"
)

// Gate flags (detected_by validate): they resolve when the target comes
// to show the flagged write, expire when their order never reaches the
// log, and old stores get their targets once.

// migrateGateFlags gives the open gate flags stored before flags could
// resolve or expire their target and incoming states, once per store: the
// target is the system whose alert id matches (the record system when the
// flag named none), the incoming states are the flag's source side.
func (e *Engine) migrateGateFlags() error {
	db := e.store
	if _, closer, err := db.Get(keyGateFlagsMigrated); err == nil {
		return closer.Close()
	} else if !errors.Is(err, errNotFoundDB) {
		return err
	}
	b := db.NewWriteBatch()
	err := scanPrefix(db, prefixMis, func(k, v []byte) error {
		var m Mismatch
		if err := storedjson.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.DetectedBy != ByValidate || m.State == StateResolved || m.GateTarget != "" || m.FlowTo != "" || m.Source == nil {
			return nil
		}
		for sys := range e.systems {
			if AlertID(m.OrderID, m.Pattern, m.Source.System, sys) == m.AlertID {
				m.GateTarget = sys
			}
		}
		if m.GateTarget == "" {
			return nil // a flag about an unknown target: nothing to resolve against
		}
		m.ExpState, _ = canonical.ParseState(m.Source.Canonical)
		m.ExpPayment, _ = canonical.ParsePayment(m.Source.Payment)
		if err := putMismatch(b, k, &m); err != nil {
			return err
		}
		return b.Set(join(prefixGate, m.AlertID), []byte(m.OrderID), nil)
	})
	if err == nil {
		err = b.Set(keyGateFlagsMigrated, []byte{1}, nil)
	}
	if err != nil {
		b.Close()
		return err
	}
	return db.Commit(b)
}

// resolveGateFlag resolves a gate flag once its target shows, after the
// flag, a state that agrees with the write the gate was asked about: the
// incoming fulfilment and payment states (a payment without an order: any
// record of the order). When the target already reflected the incoming
// state as the gate saw it (a backward write: shipped asked to go back to
// confirmed), only that very state agrees: a target moving further on is
// no sign the flagged write happened. A flag whose incoming state is
// unknown (unmapped, unknown system) has nothing to agree with and stays
// open for a person.
func (e *Engine) resolveGateFlag(b *pebble.Batch, m *Mismatch, now time.Time) error {
	if !e.known(m.GateTarget) || (!m.ExpState.Real() && !m.ExpPayment.Real()) {
		return nil
	}
	tgt, _, err := e.row(b, m.OrderID, m.GateTarget)
	if err != nil || !tgt.HasRecord() || tgt.Last.Received <= m.DetectedNanos {
		return err // nothing new from the target since the flag
	}
	if m.Pattern != PaymentWithoutOrder && !gateAgrees(m, &tgt) {
		return nil
	}
	side := targetSide(DimFulfilment, &tgt)
	if m.ExpPayment.Real() && !m.ExpState.Real() {
		side = targetSide(DimPayment, &tgt)
	}
	note := fmt.Sprintf("%s now shows %q (%s), which agrees with the flagged write", m.GateTarget, side.Status, side.Canonical)
	_, err = e.Resolve(b, m.AlertID, now, "driftwatch", note, func(r *Mismatch) {
		r.Target = side
		r.ReplaySeqs = replaySeqs(r.Target)
	})
	return err
}

// gateAgrees reports whether the target's row agrees with a gate flag's
// incoming states (see resolveGateFlag); m.Target is the target as the
// gate saw it.
func gateAgrees(m *Mismatch, tgt *projections.Row) bool {
	if m.ExpState.Real() {
		before := canonical.None
		if m.Target != nil {
			before, _ = canonical.ParseState(m.Target.Canonical)
		}
		if canonical.ReflectsState(before, m.Target != nil, m.ExpState) {
			if tgt.State() != m.ExpState {
				return false
			}
		} else if !canonical.ReflectsState(tgt.State(), true, m.ExpState) {
			return false
		}
	}
	if m.ExpPayment.Real() {
		before := canonical.NoPayment
		if m.Target != nil {
			before, _ = canonical.ParsePayment(m.Target.Payment)
		}
		if canonical.ReflectsPayment(before, m.ExpPayment) {
			return tgt.PaymentState() == m.ExpPayment
		}
		return canonical.ReflectsPayment(tgt.PaymentState(), m.ExpPayment)
	}
	return true
}

// ExpireGateFlags expires the open gate flags older than expiry whose order
// no system has ever shown in the log: nothing could ever resolve them.
// Each is resolved with an "expired" audit entry that says why. Flags on
// orders the log does know stay open (they resolve by agreement, or a
// person resolves them). It returns how many expired.
func (e *Engine) ExpireGateFlags(b *pebble.Batch, now time.Time, expiry time.Duration) (int, error) {
	type flag struct{ id, order string }
	var flags []flag
	if err := scanPrefix(b, prefixGate, func(k, v []byte) error {
		flags = append(flags, flag{string(k[len(prefixGate):]), string(v)})
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, f := range flags {
		if !e.owned.Owns(f.order) {
			continue // another instance's order now: it expires it
		}
		m, found, err := getMismatch(b, join(prefixMis, f.id))
		if err != nil {
			return n, err
		}
		if !found || m.State == StateResolved {
			if err := b.Delete(join(prefixGate, f.id), nil); err != nil {
				return n, err
			}
			continue
		}
		if now.UnixNano()-m.DetectedNanos < int64(expiry) {
			continue
		}
		rows, err := e.store.Rows(f.order)
		if err != nil {
			return n, err
		}
		if len(rows) > 0 {
			// The log knows the order now: the flag is real drift or
			// resolves by agreement; it no longer waits to expire.
			if err := b.Delete(join(prefixGate, f.id), nil); err != nil {
				return n, err
			}
			continue
		}
		note := fmt.Sprintf("no system has shown order %s in the log within %s of the flag", f.order, dur(expiry))
		if _, err := e.resolve(b, f.id, now, "expired", "driftwatch", note); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
