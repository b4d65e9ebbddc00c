package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Outcome is what became of one published event.
type Outcome string

// Outcomes, as reported per event by POST /v1/events and driftwatch publish.
const (
	Accepted  Outcome = "accepted"  // stored in the log
	Duplicate Outcome = "duplicate" // the log already holds this (system, event_id)
	Rejected  Outcome = "rejected"  // invalid; the bytes went to the dead-letter stream
)

// Result is the outcome of one event.
type Result struct {
	Outcome Outcome `json:"result"`
	EventID string  `json:"event_id,omitempty"`
	System  string  `json:"system,omitempty"`
	Seq     uint64  `json:"seq,omitempty"`
	// Error is the reason for a rejection; Code its stable code.
	Error    string    `json:"error,omitempty"`
	Code     string    `json:"code,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
}

// SystemChecker reports whether a system id is configured. A nil checker
// accepts every well-formed id (the consumer then dead-letters events of an
// unknown system).
type SystemChecker func(system string) bool

// ZoneOf gives a system's configured time zone, in which an occurred_at
// without an offset is read (the event then records the zone it assumed);
// a nil ZoneOf, or a nil zone, keeps such a timestamp invalid.
type ZoneOf func(system string) *time.Location

// Publisher appends events to the log: it validates each event, sets
// Nats-Msg-Id to <system>:<event_id>, publishes to driftwatch.in.<system>
// and waits for JetStream's acknowledgement. Invalid input is dead-lettered
// (its original bytes, with the reason) unless WithoutDeadLetter is given,
// and returned as a Rejected result carrying the reason.
//
// A Publisher is safe for concurrent use.
type Publisher struct {
	nc          *nats.Conn
	js          jetstream.JetStream
	known       SystemChecker
	zones       ZoneOf
	deadLetter  bool
	maxInFlight int
	headers     func(ctx context.Context, h nats.Header)

	atomicBatch int          // events per atomic batch; 0 or 1: none
	atomicOK    atomic.Bool  // the stream allows atomic batches (atomicAllowed)
	ordersOK    atomic.Bool  // the stream takes the order in the subject (ordersAllowed)
	atomicUntil atomic.Int64 // Unix ns until which atomicOK and ordersOK hold

	atomicBatches, atomicEvents, singleEvents, atomicRefused atomic.Uint64 // Stats
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithSystems restricts publishing to configured systems.
func WithSystems(known SystemChecker) PublisherOption {
	return func(p *Publisher) { p.known = known }
}

// WithZones reads an occurred_at without an offset in its system's
// configured zone instead of rejecting it.
func WithZones(zones ZoneOf) PublisherOption {
	return func(p *Publisher) { p.zones = zones }
}

// WithoutDeadLetter makes the Publisher return validation errors without
// writing the input to the dead-letter stream.
func WithoutDeadLetter() PublisherOption { return func(p *Publisher) { p.deadLetter = false } }

// WithHeaders sets a hook that adds headers to every event published (trace
// context, for instance); the module itself imports no telemetry.
func WithHeaders(hook func(ctx context.Context, h nats.Header)) PublisherOption {
	return func(p *Publisher) { p.headers = hook }
}

// WithMaxInFlight bounds the unacknowledged publishes of PublishBatch
// (default 4096).
func WithMaxInFlight(n int) PublisherOption {
	return func(p *Publisher) {
		if n > 0 {
			p.maxInFlight = n
		}
	}
}

// NewPublisher returns a Publisher on the connection nc.
func NewPublisher(nc *nats.Conn, opts ...PublisherOption) (*Publisher, error) {
	p := &Publisher{nc: nc, deadLetter: true, maxInFlight: 4096, atomicBatch: DefaultAtomicBatch}
	for _, o := range opts {
		o(p)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(p.maxInFlight+16))
	if err != nil {
		return nil, fmt.Errorf("events: open JetStream: %w", err)
	}
	p.js = js
	return p, nil
}

// Check validates raw envelope bytes as the log's front door does: the
// envelope itself, then the system against the configured ones.
func Check(data []byte, known SystemChecker) (Event, error) { return CheckZoned(data, known, nil) }

// CheckZoned is Check that reads an occurred_at without an offset in the
// system's zone, when zones gives one (see Event.ZoneAssumed).
func CheckZoned(data []byte, known SystemChecker, zones ZoneOf) (Event, error) {
	ev, err := Parse(data)
	if err != nil && zones != nil {
		err = assumeZone(&ev, err, zones)
	}
	if err != nil {
		return ev, err
	}
	if known != nil && !known(ev.System) {
		ve := &ValidationError{}
		ve.Add("system", CodeUnknownSystem, fmt.Sprintf("%q is not a configured system", ev.System))
		return ev, ve
	}
	return ev, nil
}

// Publish validates and appends one event built in Go. A string field that
// is not valid UTF-8 is rejected (invalid_utf8) before anything is sent:
// encoding it would silently turn its bad bytes into U+FFFD. The dead
// letter then holds the event as encoded.
func (p *Publisher) Publish(ctx context.Context, ev Event) (Result, error) {
	data, err := ev.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("events: encode event: %w", err)
	}
	ve := &ValidationError{}
	if ev.validateText(ve); len(ve.Problems) > 0 {
		return p.reject(ctx, ev, data, ve)
	}
	return p.PublishRaw(ctx, data)
}

// PublishRaw validates and appends one envelope given as JSON bytes. A
// validation failure is returned both as a Rejected result and as an error
// (a *ValidationError); a NATS failure only as an error.
func (p *Publisher) PublishRaw(ctx context.Context, data []byte) (Result, error) {
	ev, err := CheckZoned(data, p.known, p.zones)
	if err != nil {
		return p.reject(ctx, ev, data, err)
	}
	ack, err := p.js.PublishMsg(ctx, p.newEventMsg(ctx, &ev, data), jetstream.WithExpectStream(EventsStream))
	if err != nil {
		return Result{}, fmt.Errorf("events: publish %s: %w", ev.MsgID(), err)
	}
	return ackResult(&ev, ack), nil
}

// PublishBatch validates and appends many envelopes, then waits for every
// acknowledgement. results[i] is the outcome of batch[i]. The error is the
// first NATS failure; results of events that failed that way carry Outcome
// "" and the error text.
//
// When the events stream allows atomic batch publishing (JetStream 2.12 and
// later; driftwatch's own server does), the valid events go as atomic
// batches (see WithAtomicBatches): each batch is stored, and synced to disk,
// as one unit, so with sync_interval "always" a batch costs one fsync
// instead of one per event. An event whose Nats-Msg-Id repeats within a
// batch is not sent again; it is reported as a duplicate of the first. A
// batch that JetStream refuses because it repeats an event already in the
// log is split in halves and retried, and small remainders, like every
// batch refused for another reason, are published event by event, so
// duplicates are reported exactly as a single publish would. Otherwise
// every event is published asynchronously, at most the in-flight bound
// unacknowledged.
func (p *Publisher) PublishBatch(ctx context.Context, batch [][]byte) ([]Result, error) {
	results := make([]Result, len(batch))
	var firstErr error
	valid := make([]batchItem, 0, len(batch))
	for i, data := range batch {
		ev, err := CheckZoned(data, p.known, p.zones)
		if err != nil {
			res, rerr := p.reject(ctx, ev, data, err)
			results[i] = res
			if rerr != nil && !errors.Is(rerr, ErrInvalidEvent) && firstErr == nil {
				firstErr = rerr
			}
			continue
		}
		valid = append(valid, batchItem{idx: i, ev: ev, data: data})
	}
	// An event repeated within the call is published once; its copies
	// are reported as duplicates of it. A call of many copies costs one
	// publish.
	first := make(map[string]int, len(valid))
	var copies map[int]int // index in batch -> index of the first
	unique := valid[:0]
	for _, it := range valid {
		id := it.ev.MsgID()
		if j, ok := first[id]; ok {
			if copies == nil {
				copies = map[int]int{}
			}
			copies[it.idx] = j
			results[it.idx] = Result{Outcome: Duplicate, EventID: it.ev.EventID, System: it.ev.System}
			continue
		}
		first[id] = it.idx
		unique = append(unique, it)
	}
	valid = unique
	if len(valid) > 1 && p.atomicBatch > 1 && p.atomicAllowed(ctx) {
		valid = p.publishAtomic(ctx, valid, results)
	}
	if err := p.publishEach(ctx, valid, results); err != nil && firstErr == nil {
		firstErr = err
	}
	for i, j := range copies {
		if results[j].Outcome == "" { // the first failed: so does its copy
			results[i] = results[j]
			continue
		}
		results[i].Seq = results[j].Seq
	}
	return results, firstErr
}

// batchItem is one valid event of a PublishBatch call.
type batchItem struct {
	idx  int // its index in the call's input
	ev   Event
	data []byte
}

// publishEach publishes items one by one, asynchronously, at most the
// in-flight bound unacknowledged, and fills their results.
func (p *Publisher) publishEach(ctx context.Context, items []batchItem, results []Result) error {
	type pending struct {
		item *batchItem
		fut  jetstream.PubAckFuture
	}
	var firstErr error
	fail := func(it *batchItem, err error) {
		results[it.idx] = Result{EventID: it.ev.EventID, System: it.ev.System, Error: err.Error()}
		if firstErr == nil {
			firstErr = fmt.Errorf("events: publish %s: %w", it.ev.MsgID(), err)
		}
	}
	inFlight := make([]pending, 0, min(len(items), p.maxInFlight))
	drain := func() {
		for _, pd := range inFlight {
			select {
			case ack := <-pd.fut.Ok():
				results[pd.item.idx] = ackResult(&pd.item.ev, ack)
			case err := <-pd.fut.Err():
				fail(pd.item, err)
			case <-ctx.Done():
				fail(pd.item, ctx.Err())
			}
		}
		inFlight = inFlight[:0]
	}
	for i := range items {
		it := &items[i]
		fut, err := p.js.PublishMsgAsync(p.newEventMsg(ctx, &it.ev, it.data), jetstream.WithExpectStream(EventsStream))
		if err != nil {
			fail(it, err)
			continue
		}
		p.singleEvents.Add(1)
		inFlight = append(inFlight, pending{item: it, fut: fut})
		if len(inFlight) >= p.maxInFlight {
			drain()
		}
	}
	drain()
	return firstErr
}

// ErrDeadLetterFailed: input that had to be rejected could not be kept in
// the dead-letter stream. Nothing of it was kept, so it is a server
// failure, not a rejection: the caller must not report the input as kept,
// and retries it (HTTP answers 503).
var ErrDeadLetterFailed = errors.New("events: the dead-letter stream did not take rejected input")

// reject dead-letters invalid input and returns it as a Rejected result
// with its validation error. When the dead-letter write fails the result
// has no outcome and the error is ErrDeadLetterFailed (it does not match
// ErrInvalidEvent): the input was neither stored nor kept.
func (p *Publisher) reject(ctx context.Context, ev Event, data []byte, cause error) (Result, error) {
	res := RejectedResult(ev, cause)
	if p.deadLetter {
		if err := DeadLetter(ctx, p.js, ev.System, data, cause); err != nil {
			err = fmt.Errorf("%w: %v (the input was invalid: %v)", ErrDeadLetterFailed, err, cause)
			return Result{EventID: ev.EventID, System: ev.System, Error: err.Error()}, err
		}
	}
	return res, cause
}

// RejectedResult describes a rejected event.
func RejectedResult(ev Event, cause error) Result {
	res := Result{Outcome: Rejected, EventID: ev.EventID, System: ev.System, Error: cause.Error(), Code: ErrorCode(cause)}
	var ve *ValidationError
	if errors.As(cause, &ve) {
		res.Problems = ve.Problems
	}
	return res
}

// newEventMsg is ev's message: on OrderSubject when the events stream
// takes the order in the subject (its subject transform, which driftwatch
// since this version sets), else on InSubject: an older server's stream,
// or a publisher not allowed to read the stream's configuration, gets the
// subject it has always had.
func (p *Publisher) newEventMsg(ctx context.Context, ev *Event, data []byte) *nats.Msg {
	subject := InSubject(ev.System)
	if p.ordersAllowed(ctx) {
		subject = OrderSubject(ev.System, ev.OrderID)
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set(HeaderMsgID, ev.MsgID())
	msg.Data = data
	if p.headers != nil {
		p.headers(ctx, msg.Header)
	}
	return msg
}

func ackResult(ev *Event, ack *jetstream.PubAck) Result {
	out := Accepted
	if ack.Duplicate {
		out = Duplicate
	}
	return Result{Outcome: out, EventID: ev.EventID, System: ev.System, Seq: ack.Sequence}
}

// DeadLetter appends rejected input to driftwatch.dlq.<system> (system
// "_unknown" when it cannot be told) with its original bytes untouched and
// the headers Driftwatch-Error-Code and Driftwatch-Error. It waits for the
// DLQ stream's acknowledgement: nothing is lost.
func DeadLetter(ctx context.Context, js jetstream.JetStream, system string, data []byte, cause error) error {
	msg := DeadLetterMsg(system, data, cause)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(DLQStream)); err != nil {
		return fmt.Errorf("events: dead-letter to %s: %w", msg.Subject, err)
	}
	return nil
}

// DeadLetterMsg builds the dead-letter message for rejected input.
func DeadLetterMsg(system string, data []byte, cause error) *nats.Msg {
	msg := nats.NewMsg(DLQSubject(system))
	msg.Data = data
	msg.Header.Set(HeaderErrorCode, ErrorCode(cause))
	reason := strings.NewReplacer("\r", " ", "\n", " ").Replace(cause.Error())
	if len(reason) > 4000 {
		reason = reason[:4000] + "..."
	}
	msg.Header.Set(HeaderError, reason)
	msg.Header.Set("Driftwatch-Rejected-At", time.Now().UTC().Format(time.RFC3339Nano))
	return msg
}

// CheckDelivered validates an envelope that arrived on subject (read from
// the log by a consumer): everything Check does, plus the rule that the
// body's system equals the subject's system token.
func CheckDelivered(subject string, data []byte, known SystemChecker) (Event, error) {
	return CheckDeliveredZoned(subject, data, known, nil)
}

// CheckDeliveredZoned is CheckDelivered with the systems' zones (CheckZoned).
func CheckDeliveredZoned(subject string, data []byte, known SystemChecker, zones ZoneOf) (Event, error) {
	ev, err := CheckZoned(data, known, zones)
	subjSys, ok := SystemFromSubject(subject)
	if ok && ev.System != "" && ev.System != subjSys {
		ve, isVE := err.(*ValidationError)
		if !isVE {
			ve = &ValidationError{}
		}
		ve.Problems = append([]Problem{{Field: "system", Code: CodeSubjectMismatch,
			Message: fmt.Sprintf("%q differs from the subject's system token %q (%s)", ev.System, subjSys, subject)}}, ve.Problems...)
		return ev, ve
	}
	if ev.System == "" && ok {
		ev.System = subjSys // so a dead letter lands under the subject's system
	}
	return ev, err
}
