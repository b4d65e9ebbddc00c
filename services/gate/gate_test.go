package gate

import (
	"fmt"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

const gateConfig = `systems:
  - {id: chan, platform: generic, role: storefront}
  - {id: erp,  platform: generic, role: erp, record: true}
flows:
  - {from: chan, to: erp, sla: 5m}
`

func decider(t *testing.T) *Decider {
	t.Helper()
	cfg, err := config.Parse("gate.yaml", []byte(gateConfig))
	if err != nil {
		t.Fatal(err)
	}
	return NewDecider(cfg)
}

func rowWith(s canonical.State, p canonical.Payment) *projections.Row {
	r := &projections.Row{System: "erp", OrderID: "O"}
	set := func(f *projections.Facet, raw string) {
		f.Raw, f.Seq, f.OccurredAt, f.EventID = raw, 7, "2026-11-27T10:00:00Z", "x"
		r.Last = *f
	}
	if s != canonical.None {
		r.Fulfilment.State = s
		set(&r.Fulfilment, s.String())
	}
	if p != canonical.NoPayment {
		r.Payment.Payment = p
		set(&r.Payment, p.String())
	}
	return r
}

func incoming(status, field string) *events.Event {
	ev := &events.Event{EventID: "e", OrderID: "O", System: "chan", Status: status, StatusField: field, OccurredAt: "2026-11-27T10:05:00Z"}
	if err := ev.Validate(); err != nil {
		panic(err)
	}
	return ev
}

// TestFulfilmentPairs covers every (current, incoming) pair of fulfilment
// states: documented transitions and no-change are allowed, everything
// else is flagged as illegal_transition.
func TestFulfilmentPairs(t *testing.T) {
	d := decider(t)
	allowed, flagged := 0, 0
	for _, cur := range canonical.States {
		for _, in := range canonical.States {
			v := d.Decide(incoming(in.String(), ""), "erp", rowWith(cur, canonical.NoPayment), time.Now())
			want := events.DecisionFlag
			if canonical.FulfilmentTransition(cur, in).Allowed() {
				want = events.DecisionAllow
			}
			if v.Reply.Decision != want {
				t.Errorf("%s -> %s: %s (%s), want %s", cur, in, v.Reply.Decision, v.Reply.Reason, want)
				continue
			}
			if want == events.DecisionFlag {
				flagged++
				if v.Reply.Pattern != detector.IllegalTransition || v.Reply.Severity != detector.High || v.Mismatch == nil || v.Reply.AlertID == "" {
					t.Errorf("%s -> %s: flag without pattern/severity/mismatch: %+v", cur, in, v.Reply)
				}
				if v.Reply.Current.Canonical != cur.String() || v.Reply.Incoming.Canonical != in.String() || v.Reply.Current.Status == "" {
					t.Errorf("%s -> %s: reply lacks states: %+v", cur, in, v.Reply)
				}
			} else {
				allowed++
				if v.Mismatch != nil {
					t.Errorf("%s -> %s: allow with a mismatch", cur, in)
				}
			}
		}
	}
	if allowed != 43 || flagged != 57 {
		t.Fatalf("allowed %d flagged %d; the contract documents 33 transitions plus 10 no-changes", allowed, flagged)
	}
}

func TestPaymentPairs(t *testing.T) {
	d := decider(t)
	for _, cur := range canonical.Payments {
		for _, in := range canonical.Payments {
			v := d.Decide(incoming(in.String(), "payment_status"), "erp", rowWith(canonical.Confirmed, cur), time.Now())
			want := events.DecisionFlag
			if canonical.PaymentTransition(cur, in).Allowed() {
				want = events.DecisionAllow
			}
			if v.Reply.Decision != want {
				t.Errorf("payment %s -> %s: %s (%s), want %s", cur, in, v.Reply.Decision, v.Reply.Reason, want)
			}
			if want == events.DecisionFlag && (v.Reply.Pattern != detector.IllegalTransition || v.Reply.Current.Payment != cur.String()) {
				t.Errorf("payment %s -> %s: %+v", cur, in, v.Reply)
			}
		}
	}
}

func TestNamedCases(t *testing.T) {
	d := decider(t)
	cases := []struct {
		name     string
		row      *projections.Row
		ev       *events.Event
		target   string
		decision string
		pattern  string
	}{
		{"regression", rowWith(canonical.Delivered, canonical.NoPayment), incoming("pending", ""), "erp", events.DecisionFlag, detector.IllegalTransition},
		{"after cancelled", rowWith(canonical.Cancelled, canonical.NoPayment), incoming("shipped", ""), "erp", events.DecisionFlag, detector.IllegalTransition},
		{"shipped on an unseen order", nil, incoming("shipped", ""), "erp", events.DecisionFlag, detector.IllegalTransition},
		{"new order", nil, incoming("confirmed", ""), "erp", events.DecisionAllow, ""},
		{"cancel an unseen order", nil, incoming("cancelled", ""), "erp", events.DecisionAllow, ""},
		{"paid on an unseen order", nil, incoming("paid", "payment_status"), "erp", events.DecisionFlag, detector.PaymentWithoutOrder},
		{"refund first", rowWith(canonical.Confirmed, canonical.NoPayment), incoming("refunded", "payment_status"), "erp", events.DecisionFlag, detector.IllegalTransition},
		{"unmapped status", rowWith(canonical.Confirmed, canonical.NoPayment), incoming("teleported", ""), "erp", events.DecisionFlag, detector.UnmappedStatus},
		{"unknown target", rowWith(canonical.Confirmed, canonical.NoPayment), incoming("shipped", ""), "pos", events.DecisionFlag, detector.UnmappedStatus},
		{"unknown source", rowWith(canonical.Confirmed, canonical.NoPayment), func() *events.Event { e := incoming("shipped", ""); e.System = "pos"; return e }(), "erp", events.DecisionFlag, detector.UnmappedStatus},
		{"no change", rowWith(canonical.Shipped, canonical.NoPayment), incoming("shipped", ""), "erp", events.DecisionAllow, ""},
		{"skip forward", rowWith(canonical.Confirmed, canonical.NoPayment), incoming("shipped", ""), "erp", events.DecisionAllow, ""},
	}
	for _, c := range cases {
		v := d.Decide(c.ev, c.target, c.row, time.Now())
		if v.Reply.Decision != c.decision || v.Reply.Pattern != c.pattern || v.Reply.Reason == "" {
			t.Errorf("%s: %+v", c.name, v.Reply)
		}
		if c.decision == events.DecisionFlag {
			if v.Mismatch == nil || v.Mismatch.DetectedBy != detector.ByValidate || v.Mismatch.AlertID != detector.AlertID("O", c.pattern, c.ev.System, c.target) {
				t.Errorf("%s: mismatch %+v", c.name, v.Mismatch)
			}
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	cfg, _ := config.Parse("gate.yaml", []byte(gateConfig))
	d := NewDecider(cfg)
	row := rowWith(canonical.Confirmed, canonical.Paid)
	ev := incoming("shipped", "")
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		v := d.Decide(ev, "erp", row, now)
		if v.Reply.Decision != events.DecisionAllow {
			b.Fatal(fmt.Sprint(v.Reply))
		}
	}
}
