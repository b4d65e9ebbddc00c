package detector

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The outbox's publisher: alerts queued in the store with their batch are
// published with Nats-Msg-Id <alert_id>:<state> and deleted once the alert
// stream acknowledged them (doc.go).

func (d *Detector) wakeOutbox() {
	select {
	case d.outboxWake <- struct{}{}:
	default:
	}
}

func (d *Detector) outboxLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if err := d.FlushOutbox(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("publishing alerts failed; will retry")
		}
		select {
		case <-ctx.Done():
			return
		case <-d.outboxWake:
		case <-t.C:
		}
	}
}

// FlushOutbox publishes every queued alert (with its Nats-Msg-Id) and
// deletes it once JetStream acknowledged it.
func (d *Detector) FlushOutbox(ctx context.Context) error {
	db := d.opts.Store
	for {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixOutbox, UpperBound: projections.PrefixEnd(prefixOutbox)})
		if err != nil {
			return err
		}
		type queued struct {
			key   []byte
			entry OutboxEntry
			fut   jetstream.PubAckFuture
		}
		var q []queued
		for it.First(); it.Valid() && len(q) < 1000; it.Next() {
			var e OutboxEntry
			if err := json.Unmarshal(it.Value(), &e); err != nil {
				it.Close()
				return fmt.Errorf("decode outbox entry: %w", err)
			}
			q = append(q, queued{key: append([]byte(nil), it.Key()...), entry: e})
		}
		if err := it.Close(); err != nil {
			return err
		}
		if len(q) == 0 {
			return nil
		}
		for i := range q {
			msg := nats.NewMsg(q[i].entry.Subject)
			msg.Data = q[i].entry.Data
			msg.Header.Set(events.HeaderMsgID, q[i].entry.MsgID)
			fut, err := d.opts.JS.PublishMsgAsync(msg, jetstream.WithExpectStream(events.AlertsStream))
			if err != nil {
				return err
			}
			q[i].fut = fut
		}
		b := db.NewWriteBatch()
		var firstErr error
		for _, x := range q {
			select {
			case <-x.fut.Ok():
				_ = b.Delete(x.key, nil)
				d.opts.Metrics.alertPublished(x.entry)
				if d.opts.OnPublished != nil {
					d.opts.OnPublished(x.entry)
				}
			case err := <-x.fut.Err():
				if firstErr == nil {
					firstErr = err
				}
			case <-ctx.Done():
				b.Close()
				return ctx.Err()
			}
		}
		if err := db.Commit(b); err != nil {
			return err
		}
		if firstErr != nil {
			return firstErr
		}
	}
}

// AlertLabels reads the pattern, severity and state of a queued alert.
func AlertLabels(e OutboxEntry) (pattern, severity, state string, ok bool) {
	var a struct {
		Pattern  string `json:"pattern"`
		Severity string `json:"severity"`
		State    string `json:"state"`
	}
	if json.Unmarshal(e.Data, &a) != nil {
		return "", "", "", false
	}
	return a.Pattern, a.Severity, a.State, true
}

// AlertText is the sentence of a queued alert, prefixed for chat: its
// severity, pattern and state, what changed when it is not the state (an
// assignment), the escalation with its owner, then its message and owner.
func AlertText(e OutboxEntry) string {
	var a Alert
	if json.Unmarshal(e.Data, &a) != nil {
		return ""
	}
	owner := "unassigned"
	if a.Owner != "" {
		owner = "owner: " + a.Owner
	}
	switch {
	case e.Change == ActionAssigned && a.Owner == "":
		return fmt.Sprintf("driftwatch %s %s [%s, unassigned] %s", a.Severity, a.Pattern, a.State, a.Message)
	case e.Change == ActionAssigned:
		return fmt.Sprintf("driftwatch %s %s [%s, assigned to %s] %s", a.Severity, a.Pattern, a.State, a.Owner, a.Message)
	case a.State == StateEscalated && a.Escalation != "":
		return fmt.Sprintf("driftwatch %s %s [%s: %s] %s", a.Severity, a.Pattern, a.State, a.Escalation, a.Message)
	}
	return fmt.Sprintf("driftwatch %s %s [%s] %s (%s)", a.Severity, a.Pattern, a.State, a.Message, owner)
}
