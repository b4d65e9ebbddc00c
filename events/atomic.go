package events

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Atomic batch publishing (JetStream 2.12 and later, ADR-50): every message
// of a batch carries Nats-Batch-Id and Nats-Batch-Sequence (1, 2, ...); the
// last one also Nats-Batch-Commit: 1 and a reply subject. JetStream stages
// the batch, stores it as one unit with consecutive sequences (one fsync
// with sync_interval "always") and answers the commit with a PubAck whose
// seq is the batch's last sequence and whose count is its size, or with an
// error and nothing stored.
const (
	errCodeBatchDuplicate  = 10201 // the batch holds an event already in the log
	DefaultAtomicBatch     = 500   // events per atomic batch (JetStream allows up to 1000)
	maxAtomicBatchInFlight = 8     // JetStream allows 50 open batches per stream, across publishers
	// A batch refused for a duplicate is split in halves down to this size;
	// a smaller one is published event by event.
	minAtomicSplit = 16
	// commitTimeout bounds the wait for a batch's PubAck; a batch that
	// times out is published again event by event, which the dedupe window
	// makes safe whether or not the batch was stored.
	commitTimeout = 30 * time.Second
)

// WithAtomicBatches sets how many events PublishBatch puts in one atomic
// batch (default DefaultAtomicBatch, at most 1000); 0 or 1 publishes every
// event on its own even when the stream allows atomic batches.
func WithAtomicBatches(n int) PublisherOption {
	return func(p *Publisher) { p.atomicBatch = min(max(n, 0), 1000) }
}

// atomicAllowed reports whether the events stream accepts atomic batches.
// The answer, a failed lookup counting as no, is kept for atomicRecheck so
// that PublishBatch does not ask JetStream on every call.
func (p *Publisher) atomicAllowed(ctx context.Context) bool {
	p.readStream(ctx)
	return p.atomicOK.Load()
}

// ordersAllowed reports whether the events stream takes the order in the
// subject (OrderSubject): its subject transform stores
// driftwatch.in.<system>.<order_id> under the system, or the order's
// partition. Asked and kept as atomicAllowed is.
func (p *Publisher) ordersAllowed(ctx context.Context) bool {
	p.readStream(ctx)
	return p.ordersOK.Load()
}

// readStream reads the events stream's configuration when the last
// answer is older than atomicRecheck.
func (p *Publisher) readStream(ctx context.Context) {
	now := time.Now().UnixNano()
	if now < p.atomicUntil.Load() {
		return
	}
	st, err := p.js.Stream(ctx, EventsStream)
	var cfg jetstream.StreamConfig
	if err == nil {
		cfg = st.CachedInfo().Config
	}
	p.atomicOK.Store(cfg.AllowAtomicPublish)
	tr := cfg.SubjectTransform
	p.ordersOK.Store(tr != nil && tr.Source == InPrefix+"*.*")
	p.atomicUntil.Store(now + int64(atomicRecheck))
}

// atomicRecheck is how long atomicAllowed keeps its answer; a batch the
// stream refuses ends it at once.
const atomicRecheck = time.Minute

// PublishStats counts how a Publisher's events reached the log.
type PublishStats struct {
	AtomicBatches uint64 `json:"atomic_batches"` // atomic batches stored
	AtomicEvents  uint64 `json:"atomic_events"`  // events stored in them
	SingleEvents  uint64 `json:"single_events"`  // events published one by one
	// AtomicRefused counts atomic batches JetStream refused (most for
	// holding an event already in the log): the extra work a re-sent
	// batch costs.
	AtomicRefused uint64 `json:"atomic_refused"`
}

// Stats returns the counts so far.
func (p *Publisher) Stats() PublishStats {
	return PublishStats{AtomicBatches: p.atomicBatches.Load(), AtomicEvents: p.atomicEvents.Load(), SingleEvents: p.singleEvents.Load(),
		AtomicRefused: p.atomicRefused.Load()}
}

// batchAck is JetStream's answer to a batch commit.
type batchAck struct {
	Seq   uint64 `json:"seq"`
	Count int    `json:"count"`
	Error *struct {
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// publishAtomic publishes items as atomic batches, at most
// maxAtomicBatchInFlight at once, and fills the results of the stored
// ones. It returns the items still to be published one by one: those of
// batches JetStream refused for another reason than a duplicate, of small
// batches refused for one, and of batches whose acknowledgement did not
// come. Such events may be stored after events of later batches.
//
// A batch refused for holding an event already in the log is split in
// halves, so that the new events of a batch with a few repeats keep their
// one write: a refused half whose sibling was accepted is split again,
// down to minAtomicSplit. When both halves are refused, the repeats are
// everywhere: both go event by event (a repeat costs no write there, only
// its acknowledgement), and so does every batch still queued, since the
// call is re-sending what the log holds. Re-sending a batch costs about
// what sending it once did, not a cascade of refused batches.
func (p *Publisher) publishAtomic(ctx context.Context, items []batchItem, results []Result) (rest []batchItem) {
	var queue []queued
	for start := 0; start < len(items); start += p.atomicBatch {
		queue = append(queue, queued{items: items[start:min(start+p.atomicBatch, len(items))]})
	}
	replies := make(chan *nats.Msg, maxAtomicBatchInFlight)
	inbox := nats.NewInbox()
	sub, err := p.nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		return items
	}
	defer sub.Unsubscribe()
	inFlight := make(map[string]*queued, maxAtomicBatchInFlight) // sent, waiting for their PubAck, by reply subject
	timeout := time.NewTimer(commitTimeout)
	defer timeout.Stop()
	token := 0
	resending := false // two halves of one batch both held repeats
	// split queues the halves of a batch refused for a repeat, or sends a
	// small one event by event.
	split := func(b []batchItem) {
		if len(b) <= minAtomicSplit {
			rest = append(rest, b...)
			return
		}
		pair := &halves{}
		half := len(b) / 2
		queue = append([]queued{{items: b[:half], pair: pair, side: 0}, {items: b[half:], pair: pair, side: 1}}, queue...)
	}
	for {
		for len(queue) > 0 && len(inFlight) < maxAtomicBatchInFlight && ctx.Err() == nil {
			q := queue[0]
			queue = queue[1:]
			token++
			reply := inbox + "." + strconv.Itoa(token)
			if err := p.sendAtomic(ctx, reply, q.items); err != nil {
				rest = append(rest, q.items...)
				if q.pair != nil {
					if held, _ := q.pair.settle(q.side, false, nil); held != nil {
						split(held)
					}
				}
				continue
			}
			inFlight[reply] = &q
		}
		if len(inFlight) == 0 {
			break
		}
		select {
		case m := <-replies:
			sb := inFlight[m.Subject]
			if sb == nil {
				continue
			}
			delete(inFlight, m.Subject)
			err := p.settleAtomic(sb, m.Data, results)
			if err != nil {
				p.atomicRefused.Add(1)
			}
			repeat := err == errSplit
			if err != nil && !repeat {
				rest = append(rest, sb.items...)
			}
			if sb.pair == nil {
				if repeat {
					split(sb.items)
				}
			} else {
				// A half decides with its sibling: beside an accepted
				// one, a refused half is split again (its repeats are
				// few); two refused halves go event by event, and so
				// does the rest of the call (it re-sends the log).
				var held []batchItem
				if repeat {
					held = sb.items
				}
				switch waiting, both := sb.pair.settle(sb.side, repeat, held); {
				case both:
					rest = append(rest, sb.pair.held[0]...)
					rest = append(rest, sb.pair.held[1]...)
					resending = true
				case waiting != nil:
					split(waiting)
				}
			}
			if resending {
				for _, q := range queue {
					rest = append(rest, q.items...)
				}
				queue = nil
			}
			timeout.Reset(commitTimeout)
			continue
		case <-timeout.C:
		case <-ctx.Done():
		}
		// No answer in time, or the caller gave up: everything not yet
		// acknowledged goes the one-by-one way (which reports ctx's error).
		for _, sb := range inFlight {
			rest = append(rest, sb.items...)
		}
		break
	}
	for _, q := range queue {
		rest = append(rest, q.items...)
	}
	// A refused half whose sibling never answered.
	for _, h := range pending(inFlight) {
		rest = append(rest, h...)
	}
	return rest
}

// queued is a batch waiting to be sent; a half of a refused batch knows
// its pair and side.
type queued struct {
	items []batchItem
	pair  *halves
	side  int
}

// halves are the two halves of a batch refused for holding an event
// already in the log, and what became of each.
type halves struct {
	done [2]bool
	// held are the items of a half refused for a repeat, kept until its
	// sibling's answer decides what to do with them.
	held [2][]batchItem
}

// settle records the answer of one side: refused for a repeat (with its
// items held), or not. It returns the held items of a refused half to
// split again, now that its sibling was accepted, or both when both
// halves were refused.
func (h *halves) settle(side int, refused bool, items []batchItem) (split []batchItem, both bool) {
	h.done[side] = true
	if refused {
		h.held[side] = items
	}
	other := 1 - side
	if !h.done[other] {
		return nil, false
	}
	switch {
	case h.held[side] != nil && h.held[other] != nil:
		return nil, true
	case h.held[side] != nil:
		split, h.held[side] = h.held[side], nil
		return split, false
	case h.held[other] != nil:
		split, h.held[other] = h.held[other], nil
		return split, false
	}
	return nil, false
}

// pending returns the held halves of pairs whose sibling is still in
// flight (when the loop stops waiting for it).
func pending(inFlight map[string]*queued) [][]batchItem {
	var out [][]batchItem
	for _, sb := range inFlight {
		if sb.pair != nil && sb.pair.held[1-sb.side] != nil {
			out = append(out, sb.pair.held[1-sb.side])
		}
	}
	return out
}

// sendAtomic publishes one atomic batch, the commit with reply subject
// reply. The items' Nats-Msg-Ids are distinct (PublishBatch sends each
// once): JetStream refuses a batch that repeats one.
func (p *Publisher) sendAtomic(ctx context.Context, reply string, items []batchItem) error {
	batchID := nuid.Next()
	for k := range items {
		msg := p.newEventMsg(ctx, &items[k].ev, items[k].data)
		msg.Header.Set(jetstream.ExpectedStreamHeader, EventsStream)
		msg.Header.Set(HeaderBatchID, batchID)
		msg.Header.Set(HeaderBatchSeq, strconv.Itoa(k+1))
		if k == len(items)-1 {
			msg.Header.Set(HeaderBatchCommit, "1")
			msg.Reply = reply
		}
		if err := p.nc.PublishMsg(msg); err != nil {
			return err
		}
	}
	return nil
}

// settleAtomic fills the results of an acknowledged batch. It returns a
// non-nil error when the batch was not stored: errSplit when JetStream
// refused it for holding an event already in the log (worth splitting),
// another error otherwise.
func (p *Publisher) settleAtomic(sb *queued, data []byte, results []Result) error {
	var ack batchAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return errBatchRefused
	}
	if ack.Error != nil {
		if ack.Error.ErrCode == errCodeBatchDuplicate {
			return errSplit
		}
		p.atomicUntil.Store(0) // the stream may have changed: ask again next time
		return errBatchRefused
	}
	if ack.Count != len(sb.items) || ack.Seq < uint64(len(sb.items)) {
		return errBatchRefused // not the batch we sent: publish its events again, deduplicated
	}
	p.atomicBatches.Add(1)
	p.atomicEvents.Add(uint64(len(sb.items)))
	firstSeq := ack.Seq - uint64(len(sb.items)) + 1
	for k := range sb.items {
		it := &sb.items[k]
		results[it.idx] = Result{Outcome: Accepted, EventID: it.ev.EventID, System: it.ev.System, Seq: firstSeq + uint64(k)}
	}
	return nil
}

type batchError string

func (e batchError) Error() string { return string(e) }

const (
	errSplit        batchError = "atomic batch holds an event already in the log"
	errBatchRefused batchError = "atomic batch refused"
)
