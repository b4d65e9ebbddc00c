// Package policy turns drift into operational alerts on
// driftwatch.alerts.ops.<kind>:
//
//   - mismatch_rate: the share of active orders in mismatch crosses
//     alerts.mismatch_rate (the live rate: see Evaluate);
//   - channel_share: one system accounts for more than alerts.channel_share
//     of the mismatches detected in the period (reconcile.every), with at
//     least MinShareCount of them: that channel needs an audit;
//   - escalation: a mismatch stays open past alerts.escalate_after (or its
//     pattern's override in alerts.escalate); the mismatch is republished
//     with state escalated, and both it and the ops alert say who owned
//     it ("escalated after 24h; owner: team-erp", or "unassigned");
//   - source_silent: a system that normally sends events has sent none for
//     far longer than its usual gap (learned from its recent arrivals, never
//     less than alerts.silent_floor).
//
// Each condition fires once per crossing and clears when it clears, with a
// message that says which; every firing and clearing is stored and
// published.
//
// Store keys (inside the projections store, under the policy's prefix o/):
//
//	o/<kind>/<subject>       an ops alert record (OpsAlert, JSON)
//	o/~arrivals/<system>     a source's recent arrivals (JSON, "v": 1), written
//	                         by each policy round that saw new arrivals and
//	                         on Stop, read by New: source_silent survives a
//	                         restart
//
// "~" sorts after every kind, so the ops alert records are the keys from
// o/ up to o/~ and the arrivals the keys under o/~arrivals/.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/notify"
	"github.com/driftwatch/driftwatch/services/reconcile"
	"github.com/driftwatch/driftwatch/services/schedule"
)

// Ops alert kinds.
const (
	KindMismatchRate = "mismatch_rate"
	KindChannelShare = "channel_share"
	KindEscalation   = "escalation"
	KindSourceSilent = "source_silent"
)

// Ops alert states.
const (
	Firing  = "firing"
	Cleared = "cleared"
)

// MinShareCount is the fewest mismatches in the period before a channel's
// share is judged (two mismatches from one of two systems is not a trend).
const MinShareCount = 5

// silentFactor times a source's usual gap is how long it may stay quiet.
const silentFactor = 10

// minArrivals is how many arrivals a source needs before its silence means
// anything.
const minArrivals = 20

// OpsAlert is an ops alert record, published on driftwatch.alerts.ops.<kind>.
type OpsAlert struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject"` // "all", a system id or an alert id
	// Instance is the instance of a cluster that judged it, over its
	// partitions (cluster.instance; absent for the one instance).
	Instance  string    `json:"instance,omitempty"`
	State     string    `json:"state"` // firing or cleared
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	FiredAt   string    `json:"fired_at"`
	ClearedAt string    `json:"cleared_at,omitempty"`
	Message   string    `json:"message"`
	History   []Transit `json:"history,omitempty"`
}

// Transit is one firing or clearing.
type Transit struct {
	At    string  `json:"at"`
	State string  `json:"state"`
	Value float64 `json:"value"`
}

// Inputs are the figures a policy round judges.
type Inputs struct {
	// ActiveOrders is the live rate's denominator and OrdersInMismatch its
	// numerator (see Evaluate); ActiveOrders 0: no rate to judge.
	ActiveOrders     int
	OrdersInMismatch int
	// ReportActive is the latest report's active orders, NewInMismatch the
	// orders in mismatch added to them (part of ActiveOrders).
	ReportActive   int
	NewInMismatch  int
	PeriodBySystem map[string]int
	PeriodTotal    int
}

// Options configures the policy.
type Options struct {
	Config   *config.Config
	Store    *projections.Store
	Detector *detector.Detector
	JS       jetstream.JetStream
	Notifier *notify.Notifier
	Logger   zerolog.Logger
	Now      func() time.Time
	// Every is how often the policy is evaluated (default 15s).
	Every time.Duration
	// Instance names this instance of a cluster in its ops alerts: its
	// rates are over its own partitions.
	Instance string
	// JudgesSources, when set, says whether this instance judges silent
	// sources now: one instance judges them for the cluster (the owner of
	// partition 0).
	JudgesSources func() bool
	// Observe, when set, reads what every source has sent, from the log:
	// an instance of a cluster is delivered its own orders' events only,
	// so the one that judges silent sources learns their arrivals from
	// this, each round, instead of from Arrived.
	Observe func(ctx context.Context) (map[string]Observed, error)
}

// Observed is what the log holds of one source (Options.Observe): how
// many of its events it holds, and when the last arrived.
type Observed struct {
	Count uint64
	Last  time.Time
}

// Policy evaluates the thresholds.
type Policy struct {
	opts   Options
	mu     sync.Mutex // guards arrive and dirty
	arrive map[string]*arrivals
	dirty  map[string]bool // systems with arrivals not yet stored
	// observed is the last Observe (its rounds only): a count grown since
	// is that many arrivals.
	observed map[string]Observed
}

// arrivalsSize is how many batch arrival times a source's ring keeps.
const arrivalsSize = 64

// arrivals keeps a source's recent arrival times.
type arrivals struct {
	times []int64 // ring of the last arrivalsSize batch arrival times (Unix ns; 0: empty)
	next  int
	count int   // events that arrived
	last  int64 // the latest arrival (Unix ns)
}

// storedArrivals is how arrivals are stored (o/~arrivals/<system>).
type storedArrivals struct {
	V     int     `json:"v"` // arrivalsVersion
	Times []int64 `json:"times"`
	Next  int     `json:"next"`
	Count int     `json:"count"`
	Last  int64   `json:"last"`
}

const arrivalsVersion = 1

var (
	arrivalsPrefix = []byte(projections.PrefixPolicy + "~arrivals/")
	opsLower       = []byte(projections.PrefixPolicy)
	opsUpper       = []byte(projections.PrefixPolicy + "~") // ops alert records sort before the arrivals
)

// Validate reports every missing or bad option, each with its field.
func (o *Options) Validate() error {
	var errs []error
	if o.Config == nil {
		errs = append(errs, errors.New("policy: Options.Config is required"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("policy: Options.Store is required"))
	}
	if o.Every < 0 {
		errs = append(errs, fmt.Errorf("policy: Options.Every: %v is negative", o.Every))
	}
	return errors.Join(errs...)
}

// New returns a policy, with the sources' arrival history read back from
// the store (a history that cannot be read is logged and learned afresh).
func New(opts Options) (*Policy, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Every == 0 {
		opts.Every = 15 * time.Second
	}
	p := &Policy{opts: opts, arrive: map[string]*arrivals{}, dirty: map[string]bool{}}
	if err := p.loadArrivals(); err != nil {
		opts.Logger.Warn().Err(err).Msg("arrival history unreadable; learning it afresh")
		p.arrive = map[string]*arrivals{}
	}
	return p, nil
}

// loadArrivals reads the stored arrival history of every configured system
// (a system no longer configured is not judged).
func (p *Policy) loadArrivals() error {
	known := map[string]bool{}
	for _, s := range p.opts.Config.Systems {
		known[s.ID] = true
	}
	it, err := p.opts.Store.NewIter(&pebble.IterOptions{LowerBound: arrivalsPrefix, UpperBound: projections.PrefixEnd(arrivalsPrefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		sys := string(it.Key()[len(arrivalsPrefix):])
		if !known[sys] {
			continue
		}
		var st storedArrivals
		if err := json.Unmarshal(it.Value(), &st); err != nil {
			return fmt.Errorf("arrivals of %s: %w", sys, err)
		}
		if st.V != arrivalsVersion || len(st.Times) != arrivalsSize || st.Next < 0 || st.Next >= arrivalsSize {
			return fmt.Errorf("arrivals of %s: version %d with %d times, want version %d with %d", sys, st.V, len(st.Times), arrivalsVersion, arrivalsSize)
		}
		// Silence is counted from the later of the last arrival and this
		// start: while driftwatch itself was down, no source could reach
		// it, and that is not the source's silence.
		p.arrive[sys] = &arrivals{times: st.Times, next: st.Next, count: st.Count, last: max(st.Last, p.opts.Now().UnixNano())}
	}
	return it.Error()
}

// saveArrivals stores the arrival histories that changed since the last
// save, in one batch without fsync: losing the last round's arrivals to a
// power cut costs a source_silent judgement a few samples, nothing more.
func (p *Policy) saveArrivals() error {
	if p.opts.Store == nil {
		return nil
	}
	p.mu.Lock()
	b := p.opts.Store.NewWriteBatch()
	for sys := range p.dirty {
		a := p.arrive[sys]
		data, err := json.Marshal(storedArrivals{V: arrivalsVersion, Times: a.times, Next: a.next, Count: a.count, Last: a.last})
		if err != nil {
			p.mu.Unlock()
			b.Close()
			return err
		}
		_ = b.Set(append(append([]byte(nil), arrivalsPrefix...), sys...), data, nil)
	}
	clear(p.dirty)
	p.mu.Unlock()
	if b.Empty() {
		return b.Close()
	}
	return p.opts.Store.CommitNoSync(b)
}

// SetDetector sets the detector escalations go through (started after the
// policy, which the projector already feeds).
func (p *Policy) SetDetector(d *detector.Detector) { p.opts.Detector = d }

// Arrived records that system sent n events at t (the projector calls it).
func (p *Policy) Arrived(system string, n int, t time.Time) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.arrive[system]
	if a == nil {
		a = &arrivals{times: make([]int64, arrivalsSize)}
		p.arrive[system] = a
	}
	a.times[a.next] = t.UnixNano()
	a.next = (a.next + 1) % len(a.times)
	a.count += n
	a.last = t.UnixNano()
	p.dirty[system] = true
}

// usualGap is the mean gap between the recent arrivals.
func (a *arrivals) usualGap() time.Duration {
	var ts []int64
	for _, t := range a.times {
		if t != 0 {
			ts = append(ts, t)
		}
	}
	if len(ts) < 2 {
		return 0
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return time.Duration((ts[len(ts)-1] - ts[0]) / int64(len(ts)-1))
}

// Run evaluates every opts.Every until ctx ends, then stores the arrival
// histories. A failed round is logged and the next one runs: the policy
// judges figures, it cannot lose any.
func (p *Policy) Run(ctx context.Context) error {
	schedule.Every(ctx, p.opts.Every, false, p.Evaluate, func(err error) {
		p.opts.Logger.Error().Err(err).Msg("alert policy round failed")
	})
	p.Flush()
	return nil
}

// Flush stores the arrival histories (Run does when it ends).
func (p *Policy) Flush() {
	if err := p.saveArrivals(); err != nil {
		p.opts.Logger.Error().Err(err).Msg("storing the arrival history failed")
	}
}

// Evaluate runs one round: reads the figures, judges every condition and
// stores the arrival histories that changed.
//
// The live mismatch rate. Its numerator is the orders with an open (or
// escalated) mismatch now. Its denominator is the latest reconciliation
// report's active orders plus the orders in mismatch now whose open
// mismatches were all detected at or after that report's end: an order
// with an open mismatch detected before the report's end was open when the
// report counted, and every order the report found in mismatch it counted
// as active (reconcile.Run stores every mismatch detected before its end
// before it counts). So every order in the numerator is in the denominator
// once and the rate is at most 1. Orders that turned healthy and active
// after the report are not counted until the next one; an order the report
// counted healthy that fell into mismatch since counts twice, which can
// only lower the rate. Without a report with active orders, the rate is
// not judged.
func (p *Policy) Evaluate(ctx context.Context) error {
	now := p.opts.Now()
	in := Inputs{PeriodBySystem: map[string]int{}}
	rep, err := reconcile.Latest(p.opts.Store)
	if err != nil && !errors.Is(err, reconcile.ErrNoReport) {
		return err
	}
	cut := int64(0) // the report's end: mismatches detected before it are in the report
	if rep != nil {
		cut = parseNanos(rep.PeriodEnd)
	}
	// Per order in mismatch: whether one of its open mismatches was
	// detected before the report's end.
	orders := map[string]bool{}
	inMismatch := func(m *detector.Mismatch) {
		if m.PerOrder() { // a finding about a system is no order in mismatch
			orders[m.OrderID] = orders[m.OrderID] || m.DetectedNanos < cut
		}
	}
	var overdue []*detector.Mismatch
	var resolvedEscalations []string
	since := now.Add(-p.opts.Config.Reconcile.Every.D()).UnixNano()
	err = detector.ScanMismatches(p.opts.Store, detector.Filter{}, func(m *detector.Mismatch) error {
		if m.DetectedNanos >= since {
			src := ""
			if m.Source != nil {
				src = m.Source.System
			}
			in.PeriodBySystem[src]++
			in.PeriodTotal++
		}
		switch m.State {
		case detector.StateOpen:
			inMismatch(m)
			if now.Sub(time.Unix(0, m.DetectedNanos)) >= p.escalateAfter(m.Pattern) {
				overdue = append(overdue, m)
			}
		case detector.StateEscalated:
			inMismatch(m)
		case detector.StateResolved:
			if m.EscalatedAt != "" {
				resolvedEscalations = append(resolvedEscalations, m.AlertID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	inReport := 0
	for _, before := range orders {
		if before {
			inReport++
		} else {
			in.NewInMismatch++
		}
	}
	if rep != nil && rep.ActiveOrders > 0 && inReport <= rep.ActiveOrders {
		// inReport > ActiveOrders only for a report written before active
		// orders were counted: its figures cannot be combined.
		in.ReportActive = rep.ActiveOrders
		in.ActiveOrders = rep.ActiveOrders + in.NewInMismatch
		in.OrdersInMismatch = len(orders)
	}
	if err := p.judgeRates(ctx, in, now); err != nil {
		return err
	}
	if err := p.escalate(ctx, overdue, resolvedEscalations, now); err != nil {
		return err
	}
	if err := p.judgeSilence(ctx, now); err != nil {
		return err
	}
	return p.saveArrivals()
}

func parseNanos(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

func (p *Policy) escalateAfter(pattern string) time.Duration {
	if d, ok := p.opts.Config.Alerts.Escalate[pattern]; ok {
		return d.D()
	}
	return p.opts.Config.Alerts.EscalateAfter.D()
}

// judgeRates judges mismatch_rate and channel_share. Each message says
// where the value stands against its threshold now: above it when firing,
// back at or below it when clearing.
func (p *Policy) judgeRates(ctx context.Context, in Inputs, now time.Time) error {
	a := p.opts.Config.Alerts
	if in.ActiveOrders > 0 {
		rate := float64(in.OrdersInMismatch) / float64(in.ActiveOrders)
		over := rate > a.MismatchRate
		where := "above"
		if !over {
			where = "back at or below"
		}
		msg := fmt.Sprintf("%.1f%% of active orders are in mismatch (%d of %d: the last reconciliation's %d active orders and %d in mismatch since), %s the %.1f%% threshold.",
			100*rate, in.OrdersInMismatch, in.ActiveOrders, in.ReportActive, in.NewInMismatch, where, 100*a.MismatchRate)
		if err := p.set(ctx, KindMismatchRate, "all", over, rate, a.MismatchRate, msg, now); err != nil {
			return err
		}
	}
	systems := map[string]bool{}
	for _, s := range p.opts.Config.Systems {
		systems[s.ID] = true
	}
	for sys := range systems {
		n := in.PeriodBySystem[sys]
		share := 0.0
		if in.PeriodTotal > 0 {
			share = float64(n) / float64(in.PeriodTotal)
		}
		over := in.PeriodTotal >= MinShareCount && share > a.ChannelShare
		head := fmt.Sprintf("%s accounts for %.0f%% of the mismatches of the last %s (%d of %d)", sys, 100*share, p.opts.Config.Reconcile.Every.D(), n, in.PeriodTotal)
		var msg string
		switch {
		case over:
			msg = fmt.Sprintf("%s, above the %.0f%% threshold: audit that channel before more volume goes to it.", head, 100*a.ChannelShare)
		case share > a.ChannelShare:
			msg = fmt.Sprintf("%s, but %d mismatches in all are fewer than the %d needed to judge a share against the %.0f%% threshold.", head, in.PeriodTotal, MinShareCount, 100*a.ChannelShare)
		default:
			msg = fmt.Sprintf("%s, back at or below the %.0f%% threshold.", head, 100*a.ChannelShare)
		}
		if err := p.set(ctx, KindChannelShare, sys, over, share, a.ChannelShare, msg, now); err != nil {
			return err
		}
	}
	return nil
}

// escalate republishes overdue mismatches as escalated and fires an ops
// alert for each; escalations whose mismatch was resolved clear.
func (p *Policy) escalate(ctx context.Context, overdue []*detector.Mismatch, resolved []string, now time.Time) error {
	if len(overdue) > 0 && p.opts.Detector != nil {
		// overdue was read before this batch: a mismatch resolved (or
		// escalated) since is no longer escalated, and fires nothing.
		var escalated []*detector.Mismatch
		err := p.opts.Detector.Update(func(b *pebble.Batch, e *detector.Engine, now time.Time) error {
			escalated = escalated[:0]
			for _, m := range overdue {
				if !e.Owns(m.OrderID) {
					continue // another instance's order: it escalates it
				}
				x, err := e.Escalate(b, m.AlertID, now, p.escalateAfter(m.Pattern))
				switch {
				case errors.Is(err, detector.ErrMismatchNotFound) || errors.Is(err, detector.ErrNotOpen):
					continue
				case err != nil:
					return err
				}
				escalated = append(escalated, x) // as escalated: its owner now
			}
			return nil
		})
		if err != nil {
			return err
		}
		overdue = escalated
	}
	for _, m := range overdue {
		age := now.Sub(time.Unix(0, m.DetectedNanos)).Round(time.Second)
		msg := fmt.Sprintf("Mismatch %s (%s, %s) on order %s has been open for %s, past its escalation window: %s. %s",
			m.AlertID, m.Pattern, m.Severity, m.OrderID, age, detector.EscalationNote(p.escalateAfter(m.Pattern), m.Owner), m.Message)
		if err := p.set(ctx, KindEscalation, m.AlertID, true, age.Seconds(), p.escalateAfter(m.Pattern).Seconds(), msg, now); err != nil {
			return err
		}
	}
	for _, id := range resolved {
		if err := p.set(ctx, KindEscalation, id, false, 0, 0, "the escalated mismatch "+id+" was resolved", now); err != nil {
			return err
		}
	}
	return nil
}

// judgeSilence fires source_silent for systems quiet far past their usual
// gap, and clears it when they send again.
func (p *Policy) judgeSilence(ctx context.Context, now time.Time) error {
	if p.opts.JudgesSources != nil && !p.opts.JudgesSources() {
		return nil
	}
	if err := p.observe(ctx); err != nil {
		return err
	}
	type verdict struct {
		sys          string
		silent       bool
		quiet, limit time.Duration
	}
	var vs []verdict
	p.mu.Lock()
	for sys, a := range p.arrive {
		if a.count < minArrivals {
			continue
		}
		limit := max(p.opts.Config.Alerts.SilentFloor.D(), silentFactor*a.usualGap())
		quiet := now.Sub(time.Unix(0, a.last))
		vs = append(vs, verdict{sys, quiet > limit, quiet, limit})
	}
	p.mu.Unlock()
	for _, v := range vs {
		msg := fmt.Sprintf("%s has sent no event for %s; it usually sends every %s (limit %s): check its webhooks and the middleware, a silent source produces no drift to detect.",
			v.sys, v.quiet.Round(time.Second), (v.limit / silentFactor).Round(time.Millisecond), v.limit.Round(time.Second))
		if !v.silent {
			msg = fmt.Sprintf("%s is sending again: its last event came %s ago, within its limit of %s.", v.sys, v.quiet.Round(time.Second), v.limit.Round(time.Second))
		}
		if err := p.set(ctx, KindSourceSilent, v.sys, v.silent, v.quiet.Seconds(), v.limit.Seconds(), msg, now); err != nil {
			return err
		}
	}
	return nil
}

// observe turns what the log gained of each source since the last round
// into arrivals (Options.Observe). The first round only takes the counts:
// the history before it is the stored arrivals'.
func (p *Policy) observe(ctx context.Context) error {
	if p.opts.Observe == nil {
		return nil
	}
	obs, err := p.opts.Observe(ctx)
	if err != nil {
		return fmt.Errorf("observe the sources: %w", err)
	}
	if p.observed != nil {
		for sys, o := range obs {
			if prev := p.observed[sys]; o.Count > prev.Count && o.Last.After(prev.Last) {
				p.Arrived(sys, int(o.Count-prev.Count), o.Last)
			}
		}
	}
	p.observed = obs
	return nil
}

func opsKey(kind, subject string) []byte {
	return []byte(projections.PrefixPolicy + kind + "/" + subject)
}

// set moves an ops alert to firing or cleared, publishing only on a change.
// msg describes the state it moves to (a cleared record's message is
// "cleared: " + msg, so msg must say why it cleared).
func (p *Policy) set(ctx context.Context, kind, subject string, on bool, value, threshold float64, msg string, now time.Time) error {
	key := opsKey(kind, subject)
	var cur OpsAlert
	v, closer, err := p.opts.Store.Get(key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		cur = OpsAlert{Kind: kind, Subject: subject, State: Cleared}
	case err != nil:
		return err
	default:
		err = json.Unmarshal(v, &cur)
		closer.Close()
		if err != nil {
			return err
		}
	}
	if (cur.State == Firing) == on {
		return nil
	}
	at := projections.FormatTime(now.UnixNano())
	cur.Value, cur.Threshold, cur.Instance = value, threshold, p.opts.Instance
	if on {
		cur.State, cur.FiredAt, cur.ClearedAt, cur.Message = Firing, at, "", msg
	} else {
		cur.State, cur.ClearedAt = Cleared, at
		cur.Message = "cleared: " + msg
	}
	cur.History = append(cur.History, Transit{At: at, State: cur.State, Value: value})
	if len(cur.History) > 50 {
		cur.History = cur.History[len(cur.History)-50:]
	}
	data, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	if err := p.opts.Store.Set(key, data); err != nil {
		return err
	}
	if p.opts.JS != nil {
		m := nats.NewMsg(events.OpsAlertsPrefix + kind)
		m.Data = data
		id := fmt.Sprintf("ops:%s:%s:%s:%s", kind, subject, cur.State, at)
		if p.opts.Instance != "" {
			id = "ops:" + p.opts.Instance + id[3:]
		}
		m.Header.Set(events.HeaderMsgID, id)
		if _, err := p.opts.JS.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("publish ops alert: %w", err)
		}
	}
	p.opts.Notifier.Notify(notify.Notification{Kind: kind, State: cur.State, JSON: data, Text: "driftwatch " + kind + " " + cur.State + ": " + cur.Message})
	p.opts.Logger.Warn().Str("kind", kind).Str("subject", subject).Str("state", cur.State).Msg("ops alert")
	return nil
}

// List returns every ops alert record.
func List(s *projections.Store) ([]OpsAlert, error) {
	it, err := s.NewIter(&pebble.IterOptions{LowerBound: opsLower, UpperBound: opsUpper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []OpsAlert
	for it.First(); it.Valid(); it.Next() {
		var a OpsAlert
		if err := json.Unmarshal(it.Value(), &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, it.Error()
}
