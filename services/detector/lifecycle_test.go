package detector

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/services/consume"
)

// gateFlag is the record the gate writes when it flags a write of order to
// target whose incoming state is s (see gate.Decider.mismatch).
func gateFlag(order, pattern, source, target string, s canonical.State, p canonical.Payment) *Mismatch {
	m := &Mismatch{GateTarget: target, ExpState: s, ExpPayment: p}
	m.AlertID = AlertID(order, pattern, source, target)
	m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, pattern, DefaultSeverity(pattern), ByValidate
	m.Source = &Side{System: source, Status: s.String(), Canonical: s.String()}
	m.Message = "flagged"
	return m
}

func (tl *timeline) record(m *Mismatch, at time.Time) {
	tl.t.Helper()
	b := tl.store.NewBatch()
	if err := tl.engine.Raise(b, m, at); err != nil {
		tl.t.Fatal(err)
	}
	tl.commit(b, at)
}

func (tl *timeline) mismatch(id string) Mismatch {
	tl.t.Helper()
	m, found, err := getMismatch(tl.store, join(prefixMis, id))
	if err != nil || !found {
		tl.t.Fatalf("mismatch %s: found %v, %v", id, found, err)
	}
	return m
}

// TestGateFlagResolvesWhenTargetAgrees: the gate flagged a shipment for an
// order the ERP had never seen; when the ERP later shows the order shipped
// the flag resolves. Its twin, an ERP that shows the order only as
// confirmed, keeps the flag open.
func TestGateFlagResolvesWhenTargetAgrees(t *testing.T) {
	for _, tc := range []struct {
		erpStatus string
		resolved  bool
	}{
		{"Pending Billing", true},      // shipped: agrees with the flagged write
		{"Pending Fulfillment", false}, // confirmed: does not
	} {
		tl := newTimeline(t)
		flag := gateFlag("G-1", IllegalTransition, "shop", "erp", canonical.Shipped, canonical.NoPayment)
		tl.record(flag, t0)
		tl.event(time.Second, time.Second, "erp", map[string]string{"order": "G-1"}, tc.erpStatus, "")
		m := tl.mismatch(flag.AlertID)
		if got := m.State == StateResolved; got != tc.resolved {
			t.Fatalf("erp %q: resolved %v, want %v (%+v)", tc.erpStatus, got, tc.resolved, m.Audit)
		}
		if tc.resolved && (m.Target == nil || m.Target.Status != tc.erpStatus || !strings.Contains(m.Audit[len(m.Audit)-1].Note, "agrees")) {
			t.Fatalf("resolved record: target %+v, audit %+v", m.Target, m.Audit)
		}
	}
}

// TestGateFlagExpires: a flag on an order that no system ever shows in the
// log expires after the configured time with an audit entry; its twin, on
// an order the log knows, stays open; and nothing expires early.
func TestGateFlagExpires(t *testing.T) {
	tl := newTimeline(t)
	ghost := gateFlag("G-GHOST", PaymentWithoutOrder, "stripe", "erp", canonical.None, canonical.Paid)
	known := gateFlag("G-KNOWN", IllegalTransition, "shop", "erp", canonical.Delivered, canonical.NoPayment)
	tl.record(ghost, t0)
	tl.record(known, t0)
	tl.event(time.Second, time.Second, "shop", map[string]string{"order": "G-KNOWN"}, "unfulfilled", "")

	expire := func(at time.Duration) int {
		b := tl.store.NewBatch()
		n, err := tl.engine.ExpireGateFlags(b, t0.Add(at), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tl.commit(b, t0.Add(at))
		return n
	}
	if n := expire(59 * time.Minute); n != 0 {
		t.Fatalf("%d flags expired before the expiry", n)
	}
	if n := expire(61 * time.Minute); n != 1 {
		t.Fatalf("%d flags expired, want 1", n)
	}
	g := tl.mismatch(ghost.AlertID)
	last := g.Audit[len(g.Audit)-1]
	if g.State != StateResolved || last.Action != "expired" || !strings.Contains(last.Note, "G-GHOST") {
		t.Fatalf("ghost flag: state %s, audit %+v", g.State, g.Audit)
	}
	if k := tl.mismatch(known.AlertID); k.State != StateOpen {
		t.Fatalf("the flag on an order the log knows is %s, want open", k.State)
	}
	if n := expire(48 * time.Hour); n != 0 {
		t.Fatalf("%d more expired", n)
	}
	if !strings.Contains(tl.out.String(), "resolved") {
		t.Fatalf("the expiry published no resolved record:\n%s", tl.out.String())
	}
}

// TestRepeatUpdatesSource: an open payment_without_order seen again after
// the payment moved from authorized to succeeded shows what the source
// shows now; its twin without a new payment status keeps the first one.
func TestRepeatUpdatesSource(t *testing.T) {
	for _, moved := range []bool{true, false} {
		tl := newTimeline(t)
		tl.event(0, 0, "stripe", map[string]string{"order": "P-1"}, "requires_capture", "")
		tl.judge(t0.Add(10 * time.Second))
		id := AlertID("P-1", PaymentWithoutOrder, "stripe", "erp")
		if m := tl.mismatch(id); m.Source.Status != "requires_capture" {
			t.Fatalf("first source %+v", m.Source)
		}
		if moved {
			tl.event(11*time.Second, 11*time.Second, "stripe", map[string]string{"order": "P-1"}, "succeeded", "")
		}
		tl.judge(t0.Add(30 * time.Second))
		want := "requires_capture"
		if moved {
			want = "succeeded"
		}
		m := tl.mismatch(id)
		if m.Source.Status != want || m.State != StateOpen {
			t.Fatalf("moved %v: source %q (%s), want %q open", moved, m.Source.Status, m.State, want)
		}
		if moved && (m.Occurrences != 2 || !strings.Contains(m.Message, "succeeded")) {
			t.Fatalf("repeat: occurrences %d, message %q", m.Occurrences, m.Message)
		}
	}
}

// TestClockLagSurvivesRestart: a system's lag statistic is in the store, so
// an engine built again on the same store goes on from it: 12 lags of +5h
// before the restart and 12 after raise clock_skew, which neither half
// alone would.
func TestClockLagSurvivesRestart(t *testing.T) {
	tl := newTimeline(t)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			at := time.Duration(i) * time.Second
			tl.event(at, at+5*time.Hour, "wms", map[string]string{"order": "W-" + string(rune('a'+i))}, "confirmed", "")
		}
	}
	send(0, 12)
	if strings.Contains(tl.out.String(), ClockSkew) {
		t.Fatalf("clock_skew after 12 events:\n%s", tl.out.String())
	}
	eng, err := NewEngine(tl.engine.cfg, tl.store)
	if err != nil {
		t.Fatal(err)
	}
	tl.engine = eng
	send(12, 24)
	out := tl.out.String()
	if !strings.Contains(out, ClockSkew) || !strings.Contains(out, "+5h") {
		t.Fatalf("no whole-hour clock_skew after the restart:\n%s", out)
	}
	v, err := eng.SystemLag("wms")
	if err != nil || v.Hours != 5 || v.Samples != 24 {
		t.Fatalf("lag verdict %+v %v", v, err)
	}
}

// TestLagVerdict: the whole-hour offset most recent lags sit near, ahead or
// behind, and nothing for mixed, off-hour or too few lags.
func TestLagVerdict(t *testing.T) {
	ring := func(lags ...time.Duration) *lagRing {
		r := &lagRing{}
		for _, l := range lags {
			r.add(l)
		}
		return r
	}
	repeat := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d + time.Duration(i)*time.Second
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		lags  []time.Duration
		hours int
	}{
		{"five hours behind", repeat(24, 5*time.Hour), 5},
		{"three hours ahead", repeat(24, -3*time.Hour+2*time.Second), -3},
		{"within the tolerance", repeat(24, 2*time.Hour+8*time.Minute), 2},
		{"off the hour", repeat(24, 5*time.Hour+20*time.Minute), 0},
		{"seconds", repeat(24, 3*time.Second), 0},
		{"too few", repeat(19, 5*time.Hour), 0},
		{"mixed", append(repeat(14, 3*time.Second), repeat(10, 5*time.Hour)...), 0},
		{"the window keeps the last 32", append(repeat(30, 5*time.Hour), repeat(32, 4*time.Second)...), 0},
	} {
		if v := ring(tc.lags...).verdict(lagShare); v.Hours != tc.hours {
			t.Errorf("%s: %+v, want %d hours", tc.name, v, tc.hours)
		}
	}
	r := ring(repeat(24, 5*time.Hour)...)
	back, err := decodeLagRing(r.encode())
	if err != nil || len(back.lags) != 24 || back.lags[3] != r.lags[3] {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

// TestGateFlagBackwardWrite: the gate flagged a write that would move the
// ERP back from shipped to confirmed. The ERP's next shipped-or-later
// status already "reflects" confirmed by rank, but it is no sign the
// flagged write happened: the flag stays open until the ERP shows
// confirmed itself.
func TestGateFlagBackwardWrite(t *testing.T) {
	tl := newTimeline(t)
	tl.event(0, 0, "erp", map[string]string{"order": "B-1"}, "Pending Billing", "")
	flag := gateFlag("B-1", IllegalTransition, "shop", "erp", canonical.Confirmed, canonical.NoPayment)
	flag.Target = &Side{System: "erp", Status: "Pending Billing", Canonical: "shipped"}
	tl.record(flag, t0.Add(time.Second))
	tl.event(2*time.Second, 2*time.Second, "erp", map[string]string{"order": "B-1"}, "Billed", "")
	if m := tl.mismatch(flag.AlertID); m.State != StateOpen {
		t.Fatalf("resolved by a status that only reflects it by rank: %+v", m.Audit)
	}
	tl.event(3*time.Second, 3*time.Second, "erp", map[string]string{"order": "B-1"}, "Pending Fulfillment", "")
	if m := tl.mismatch(flag.AlertID); m.State != StateResolved {
		t.Fatalf("the flagged write happened, the flag is %s", m.State)
	}
}

// TestGateFlagMigration: an open gate flag stored before flags carried
// their target gets it (found by its alert id) when the engine opens the
// store, and then resolves by agreement like a new one.
func TestGateFlagMigration(t *testing.T) {
	tl := newTimeline(t)
	old := gateFlag("M-1", IllegalTransition, "shop", "erp", canonical.Shipped, canonical.NoPayment)
	old.GateTarget, old.ExpState = "", canonical.None // as stored before
	tl.record(old, t0)
	if err := tl.store.Delete(keyGateFlagsMigrated); err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(tl.engine.cfg, tl.store)
	if err != nil {
		t.Fatal(err)
	}
	tl.engine = eng
	if m := tl.mismatch(old.AlertID); m.GateTarget != "erp" || m.ExpState != canonical.Shipped {
		t.Fatalf("migrated flag: target %q, incoming %s", m.GateTarget, m.ExpState)
	}
	tl.event(time.Second, time.Second, "erp", map[string]string{"order": "M-1"}, "Billed", "")
	if m := tl.mismatch(old.AlertID); m.State != StateResolved {
		t.Fatalf("migrated flag is %s after the ERP shipped", m.State)
	}
}

// TestCountsOnlyWhatCommits: a batch that raised a mismatch and was then
// dropped (a failed commit, a redelivery) counts nothing: no metric
// observation and no open mismatch for its order; the same mismatch raised
// in a batch that commits counts once.
func TestCountsOnlyWhatCommits(t *testing.T) {
	tl := newTimeline(t)
	tl.engine.Committed() // what the timeline queued before
	m := func() *Mismatch {
		return &Mismatch{Alert: Alert{AlertID: AlertID("C-1", MissingEvent, "shop", "shop"), OrderID: "C-1", Pattern: MissingEvent, Severity: High, DetectedBy: ByReconcile,
			Source: &Side{System: "shop", Status: "fulfilled"}}}
	}
	open := func() int {
		tl.engine.mu.Lock()
		defer tl.engine.mu.Unlock()
		return tl.engine.openOrders["C-1"]
	}
	b := tl.store.NewBatch()
	if err := tl.engine.Raise(b, m(), t0); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := tl.engine.Discard(); err != nil {
		t.Fatal(err)
	}
	if observed := len(tl.engine.Committed()); observed != 0 || open() != 0 {
		t.Fatalf("a dropped batch counted: %d observed, %d open", observed, open())
	}
	b = tl.store.NewBatch()
	if err := tl.engine.Raise(b, m(), t0); err != nil {
		t.Fatal(err)
	}
	if err := tl.store.Commit(b); err != nil {
		t.Fatal(err)
	}
	if observed := len(tl.engine.Committed()); observed != 1 || open() != 1 {
		t.Fatalf("a committed batch: %d observed, %d open, want 1 and 1", observed, open())
	}
}

// TestExpectationBelowTheFloorIsJudged: driftwatch's clock judged
// everything up to two hours in; then an event arrives stamped by a log
// whose clock runs an hour behind, so its expectation is due below the
// judgement floor. It is still judged (it used to wait for a restart).
func TestExpectationBelowTheFloorIsJudged(t *testing.T) {
	tl := newTimeline(t)
	tl.judge(t0.Add(2 * time.Hour))
	tl.event(time.Hour, time.Hour, "shop", map[string]string{"order": "F-1"}, "unfulfilled", "")
	tl.judge(t0.Add(3 * time.Hour))
	if !strings.Contains(tl.out.String(), OrderNotAcknowledged) {
		t.Fatalf("the expectation below the floor was never judged:\n%s", tl.out.String())
	}
}

// TestLogGapStopsTheDetector: events that vanished from the log before the
// detector read them (a purge, a deleted message) stop it with ErrLogGap
// instead of being skipped.
func TestLogGapStopsTheDetector(t *testing.T) {
	tl := newTimeline(t)
	d, err := New(Options{Store: tl.store, Engine: tl.engine})
	if err != nil {
		t.Fatal(err)
	}
	d.applied.Store(3)
	msg := func(seq uint64) consume.Msg {
		return consume.Msg{Meta: &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: seq}}}
	}
	err = d.processBatch(context.Background(), []consume.Msg{msg(3), msg(6)})
	if !errors.Is(err, ErrLogGap) || !strings.Contains(err.Error(), "events 4 to 5") {
		t.Fatalf("a hole after 3: %v", err)
	}
}

// TestOptionsValidate: New reports every missing option with its field,
// instead of a detector that fails later.
func TestOptionsValidate(t *testing.T) {
	_, err := New(Options{TickEvery: -time.Second})
	for _, want := range []string{"Options.Store", "Options.Engine", "Options.TickEvery"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("New with nothing: %v, want it to name %s", err, want)
		}
	}
}
