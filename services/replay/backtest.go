package replay

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// Change kinds of a status under a candidate table.
const (
	NewlyMapped   = "newly_mapped"   // unmapped now, mapped by the candidate: an improvement
	NewlyUnmapped = "newly_unmapped" // mapped now, unmapped by the candidate: a regression
	Changed       = "changed"        // mapped to another canonical state: a regression unless intended
)

// StatusChange is one distinct (field, raw) whose meaning changes.
type StatusChange struct {
	Kind      string `json:"kind"`
	Field     string `json:"status_field"`
	Raw       string `json:"status"`
	Current   string `json:"current"`
	Candidate string `json:"candidate"`
	Events    int    `json:"events"`
	Example   string `json:"example"` // system:event_id of one event
}

// PlatformDiff is the effect of the candidate tables on one platform.
type PlatformDiff struct {
	Platform         string         `json:"platform"`
	CurrentVersion   int            `json:"current_version"`
	CandidateVersion int            `json:"candidate_version"`
	Events           int            `json:"events"`
	Changes          []StatusChange `json:"changes"`
}

// MismatchDiff is a mismatch that appears or disappears.
type MismatchDiff struct {
	OrderID string `json:"order_id"`
	Pattern string `json:"pattern"`
	Source  string `json:"source"`
	Target  string `json:"target"`
	Message string `json:"message"`
}

// BacktestResult is the report of `driftwatch mapping test`.
type BacktestResult struct {
	Events       int            `json:"events"`
	Platforms    []PlatformDiff `json:"platforms"`
	Appear       []MismatchDiff `json:"mismatches_appear"`
	Disappear    []MismatchDiff `json:"mismatches_disappear"`
	Regressions  int            `json:"regressions"`
	Improvements int            `json:"improvements"`
}

// BacktestOptions configures a backtest.
type BacktestOptions struct {
	JS        jetstream.JetStream
	Config    *config.Config
	Candidate *mapping.Set
	// Since limits the events to those received since it; Sample to the
	// last Sample events (whichever is given; neither: the whole log).
	Since  time.Time
	Sample uint64
}

// Backtest maps real past events with the current and the candidate tables
// and re-runs detection with both, reporting what would change.
func Backtest(ctx context.Context, o BacktestOptions) (*BacktestResult, error) {
	stream, err := o.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	res := &BacktestResult{}
	var fromSeq uint64
	if o.Sample > 0 && info.State.LastSeq > o.Sample {
		fromSeq = info.State.LastSeq - o.Sample + 1
	}
	plat := map[string]*PlatformDiff{}
	changes := map[[3]string]*StatusChange{}
	if info.State.Msgs > 0 {
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.InPrefix + ">"}}
		if fromSeq > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, fromSeq
		} else if !o.Since.IsZero() {
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.Since
		}
		cons, err := stream.OrderedConsumer(ctx, cfg)
		if err != nil {
			return nil, err
		}
		for {
			msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				break
			}
			meta, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			ev, perr := events.CheckZoned(msg.Data(), nil, o.Config.Zones())
			if perr == nil && ev.EffectiveKind() != events.KindAck {
				if sys, ok := o.Config.System(ev.System); ok {
					cur, _ := o.Config.Mappings.Table(sys.Platform)
					cand, ok := o.Candidate.Table(sys.Platform)
					if ok && cur != nil {
						res.Events++
						pd := plat[sys.Platform]
						if pd == nil {
							pd = &PlatformDiff{Platform: sys.Platform, CurrentVersion: cur.Version, CandidateVersion: cand.Version}
							plat[sys.Platform] = pd
						}
						pd.Events++
						a, field, aok := cur.Lookup(ev.StatusField, ev.Status)
						b, _, bok := cand.Lookup(ev.StatusField, ev.Status)
						kind := ""
						switch {
						case !aok && bok:
							kind = NewlyMapped
						case aok && !bok:
							kind = NewlyUnmapped
						case aok && bok && a != b:
							kind = Changed
						}
						if kind != "" {
							key := [3]string{sys.Platform, field, ev.Status}
							c := changes[key]
							if c == nil {
								c = &StatusChange{Kind: kind, Field: field, Raw: ev.Status, Current: describe(a, aok), Candidate: describe(b, bok), Example: ev.System + ":" + ev.EventID}
								changes[key] = c
							}
							c.Events++
						}
					}
				}
			}
			if meta.NumPending == 0 {
				break
			}
		}
	}
	for _, pd := range plat {
		for key, c := range changes {
			if key[0] == pd.Platform {
				pd.Changes = append(pd.Changes, *c)
				if c.Kind == NewlyMapped {
					res.Improvements++
				} else {
					res.Regressions++
				}
			}
		}
		sort.Slice(pd.Changes, func(i, j int) bool { return pd.Changes[i].Raw < pd.Changes[j].Raw })
		res.Platforms = append(res.Platforms, *pd)
	}
	sort.Slice(res.Platforms, func(i, j int) bool { return res.Platforms[i].Platform < res.Platforms[j].Platform })

	// Detection with each set of tables.
	candCfg := *o.Config
	candCfg.Mappings = o.Candidate
	w := WindowOptions{JS: o.JS, Since: o.Since, FromSeq: fromSeq}
	if o.Since.IsZero() && fromSeq == 0 {
		w.FromSeq = 1
	}
	w.Config = o.Config
	before, err := Window(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("backtest with the current tables: %w", err)
	}
	w.Config = &candCfg
	after, err := Window(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("backtest with the candidate tables: %w", err)
	}
	res.Appear, res.Disappear = diffMismatches(before.Mismatches, after.Mismatches), diffMismatches(after.Mismatches, before.Mismatches)
	return res, nil
}

func describe(r mapping.Result, ok bool) string {
	if !ok {
		return "unmapped"
	}
	return r.String()
}

// diffMismatches lists the mismatches of b that a lacks.
func diffMismatches(a, b []*detector.Mismatch) []MismatchDiff {
	key := func(m *detector.Mismatch) string {
		src := ""
		if m.Source != nil {
			src = m.Source.System
		}
		return m.OrderID + "\x00" + m.Pattern + "\x00" + src + "\x00" + m.FlowTo
	}
	have := map[string]bool{}
	for _, m := range a {
		have[key(m)] = true
	}
	out := []MismatchDiff{}
	for _, m := range b {
		if !have[key(m)] {
			d := MismatchDiff{OrderID: m.OrderID, Pattern: m.Pattern, Target: m.FlowTo, Message: m.Message}
			if m.Source != nil {
				d.Source = m.Source.System
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OrderID+out[i].Pattern < out[j].OrderID+out[j].Pattern })
	return out
}
