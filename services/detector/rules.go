package detector

import (
	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
)

// Rules are the detection rules that need only the configuration: what a
// flow expects of its target and how an unmet expectation is classified
// into a pattern. The Engine judges with them; replay's gaps use the same
// ones, so a gap and the mismatch it became always carry one pattern and
// one severity.
type Rules struct {
	cfg       *config.Config
	tables    map[string]*mapping.Table
	systems   map[string]*config.System
	flowsFrom map[string][]config.Flow
	flowsTo   map[string][]config.Flow
	record    string
}

// NewRules builds the rules of a configuration.
func NewRules(cfg *config.Config) *Rules {
	r := &Rules{cfg: cfg, tables: map[string]*mapping.Table{}, systems: map[string]*config.System{},
		flowsFrom: map[string][]config.Flow{}, flowsTo: map[string][]config.Flow{}}
	for i := range cfg.Systems {
		s := &cfg.Systems[i]
		r.systems[s.ID] = s
		r.tables[s.ID], _ = cfg.Mappings.Table(s.Platform)
		if s.Record {
			r.record = s.ID
		}
	}
	for _, f := range cfg.Flows {
		r.flowsFrom[f.From] = append(r.flowsFrom[f.From], f)
		r.flowsTo[f.To] = append(r.flowsTo[f.To], f)
	}
	return r
}

// DefaultOwner is the owner the configuration's owners give m when it
// opens, and the key of the rule that gave it: owners.patterns.<pattern>,
// then owners.systems.<system> for m's source system and, when the source
// has no entry, its target, then owners.default. Both are "" when no rule
// applies.
func (r *Rules) DefaultOwner(m *Mismatch) (owner, rule string) {
	o := &r.cfg.Owners
	if v := o.Patterns[m.Pattern]; v != "" {
		return v, "owners.patterns." + m.Pattern
	}
	var systems []string
	if m.Source != nil {
		systems = append(systems, m.Source.System)
	}
	switch {
	case m.Target != nil:
		systems = append(systems, m.Target.System)
	case m.FlowTo != "":
		systems = append(systems, m.FlowTo)
	case m.GateTarget != "":
		systems = append(systems, m.GateTarget)
	}
	for _, sys := range systems {
		if v := o.Systems[sys]; v != "" {
			return v, "owners.systems." + sys
		}
	}
	if o.Default != "" {
		return o.Default, "owners.default"
	}
	return "", ""
}

// known reports whether a system is configured.
func (r *Rules) known(system string) bool { _, ok := r.systems[system]; return ok }

// expected is what a flow into system to expects of a source in state s:
// the highest state at or below s that to's table can express (CONTRACT.md
// section 6), and nothing for pending. A flow expects only states the
// target acts on; a quote, draft or order awaiting approval (pending) is
// not one: the target is expected to have the order once it is confirmed.
func (r *Rules) expected(to string, s canonical.State) canonical.State {
	want := r.tables[to].ExpressibleState(s)
	if want == canonical.Pending {
		return canonical.None
	}
	return want
}

// Classify maps an unmet expectation to a pattern and severity (CONTRACT.md
// section 6). Precedence: a cancellation or a payment without an order
// first, then a manual change, then an acknowledgement without effect, then
// the state-specific patterns.
func (r *Rules) Classify(x *Expectation, src, tgt *projections.Row, acked bool) (string, string) {
	targetManual := tgt.HasRecord() && lastActor(x.Dim, tgt) == string(events.ActorManual)
	if x.Presence {
		return PaymentWithoutOrder, Critical
	}
	if x.Dim == DimPayment {
		if r.roleOf(x.From) == "payment" && (x.SourcePayment == canonical.Authorized || x.SourcePayment == canonical.Paid) && x.To == r.record && !tgt.HasRecord() {
			return PaymentWithoutOrder, Critical
		}
		if pattern, sev, ok := manualOrAcked(x.Manual || targetManual, acked); ok {
			return pattern, sev
		}
		return StatusNotPropagated, Medium
	}
	s := x.SourceState
	if s == canonical.Cancelled {
		sev := High
		switch tgt.State() {
		case canonical.Picked, canonical.Packed, canonical.PartiallyShipped, canonical.Shipped:
			sev = Critical
		}
		if tgt.Fulfilment.Set() && tgt.Fulfilment.Occurred > x.Onset {
			sev = Critical // moved after the cancellation
		}
		return CancelNotPropagated, sev
	}
	if pattern, sev, ok := manualOrAcked(x.Manual || targetManual, acked); ok {
		return pattern, sev
	}
	rank, ranked := s.Rank()
	role := r.roleOf(x.From)
	if ranked && rank >= 1 && (role == "storefront" || role == "marketplace") && x.To == r.record &&
		(!tgt.HasRecord() || tgt.State() == canonical.Pending || tgt.State() == canonical.None) {
		return OrderNotAcknowledged, High
	}
	switch s {
	case canonical.PartiallyShipped, canonical.Shipped, canonical.Delivered:
		if !canonical.ReflectsState(tgt.State(), tgt.HasRecord(), canonical.PartiallyShipped) {
			return ShipmentNotReflected, Medium
		}
	case canonical.ReturnRequested, canonical.Returned:
		return ReturnNotReflected, High
	}
	return StatusNotPropagated, Medium
}

// manualOrAcked is the precedence after a cancellation and a payment
// without an order: a manual change on either side, then an
// acknowledgement without effect.
func manualOrAcked(manual, acked bool) (string, string, bool) {
	switch {
	case manual:
		return ManualOverride, Medium, true
	case acked:
		return AckedNotApplied, High, true
	}
	return "", "", false
}

func lastActor(dim uint8, r *projections.Row) string {
	if dim == DimPayment {
		return r.Payment.Actor
	}
	if r.Fulfilment.Set() {
		return r.Fulfilment.Actor
	}
	return r.Last.Actor
}

func (r *Rules) roleOf(sys string) string {
	if s, ok := r.systems[sys]; ok {
		return s.Role
	}
	return ""
}

func (r *Rules) versions(systems ...string) map[string]int {
	out := map[string]int{}
	for _, s := range systems {
		if sys, ok := r.systems[s]; ok {
			if t := r.tables[s]; t != nil {
				out[sys.Platform] = t.Version
			}
		}
	}
	return out
}

// FlowExpectation is what a flow expects of its target after one source
// event, in one dimension.
type FlowExpectation struct {
	Dim     uint8
	State   canonical.State   // fulfilment: the state to reflect
	Payment canonical.Payment // payment: the state to reflect
	// Presence: the target's platform cannot express the payment state,
	// and the target is the record system of a payment source: it is
	// expected to have the order at all (unmet: payment_without_order).
	Presence bool
}

// Expect lists what flow f expects of its target when the source's
// fulfilment state became s (None: it did not change) and its payment
// state p (NoPayment: it did not change). A state the target's table cannot
// express is reduced to the highest one at or below it that it can
// (CONTRACT.md section 6); pending is never expected.
func (r *Rules) Expect(f config.Flow, s canonical.State, p canonical.Payment) []FlowExpectation {
	var out []FlowExpectation
	if s.Real() && f.Covers(config.DimFulfilment) {
		if want := r.expected(f.To, s); want != canonical.None {
			out = append(out, FlowExpectation{Dim: DimFulfilment, State: want})
		}
	}
	if p.Real() && f.Covers(config.DimPayment) {
		switch {
		case r.tables[f.To].CanExpressPayment(p):
			out = append(out, FlowExpectation{Dim: DimPayment, Payment: p})
		case f.To == r.record && r.roleOf(f.From) == "payment" && (p == canonical.Authorized || p == canonical.Paid):
			out = append(out, FlowExpectation{Dim: DimPayment, Payment: p, Presence: true})
		}
	}
	return out
}
