package detector

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/services/config"
)

// TestPatternsAreTheConfigs: the configuration validates owners and
// runbooks against the detector's patterns, in the same order.
func TestPatternsAreTheConfigs(t *testing.T) {
	if !slices.Equal(Patterns, config.Patterns) {
		t.Fatalf("detector.Patterns %v\nconfig.Patterns   %v", Patterns, config.Patterns)
	}
}

var leftPlaceholder = regexp.MustCompile(`\{[a-z_]+\}`)

// TestEveryPatternHasARunbook: every pattern the detector knows has a
// built-in runbook with a summary, causes and checks; filled for a
// mismatch it names the order and the systems, leaves no placeholder, and
// starts its commands with the exact order and replay commands.
func TestEveryPatternHasARunbook(t *testing.T) {
	for _, p := range Patterns {
		text, ok := builtinRunbooks[p]
		if !ok {
			t.Errorf("%s has no built-in runbook", p)
			continue
		}
		if text.summary == "" || len(text.causes) == 0 || len(text.checks) == 0 {
			t.Errorf("%s: summary %q, %d causes, %d checks", p, text.summary, len(text.causes), len(text.checks))
		}
		m := &Mismatch{Alert: Alert{AlertID: AlertID("ORD-7", p, "shop", "erp"), OrderID: "ORD-7", Pattern: p,
			Source: &Side{System: "shop", Status: "fulfilled", Canonical: "shipped"}}, FlowTo: "erp"}
		rb := RunbookOf(nil, m)
		all := append([]string{rb.Summary}, append(append(rb.Causes, rb.Checks...), rb.Commands...)...)
		for _, s := range all {
			if leftPlaceholder.MatchString(s) {
				t.Errorf("%s: a placeholder is left in %q", p, s)
			}
		}
		if !strings.Contains(rb.Summary, "shop") || (!strings.Contains(rb.Summary, "ORD-7") && p != UnmappedStatus) {
			t.Errorf("%s: the summary names neither the system nor the order: %q", p, rb.Summary)
		}
		if len(rb.Commands) < 2 || rb.Commands[0] != "driftwatch order ORD-7" || rb.Commands[1] != "driftwatch replay --order ORD-7" {
			t.Errorf("%s: commands %q", p, rb.Commands)
		}
	}
	for p := range builtinRunbooks {
		if !slices.Contains(Patterns, p) {
			t.Errorf("a runbook for %q, which is no pattern", p)
		}
	}
}

// TestRunbookCommandsAreQuoted: an order id a shell would split or read
// as a flag stays one argument in the commands.
func TestRunbookCommandsAreQuoted(t *testing.T) {
	for _, c := range []struct{ order, cmd0, cmd1 string }{
		{"ORD-1001", "driftwatch order ORD-1001", "driftwatch replay --order ORD-1001"},
		{"#1001 B", "driftwatch order '#1001 B'", "driftwatch replay --order '#1001 B'"},
		{"it's $x", `driftwatch order 'it'\''s $x'`, `driftwatch replay --order 'it'\''s $x'`},
		{"-5", "driftwatch order -- -5", "driftwatch replay --order -5"},
	} {
		rb := RunbookOf(nil, &Mismatch{Alert: Alert{OrderID: c.order, Pattern: OrderNotAcknowledged, Source: &Side{System: "shop"}}})
		if rb.Commands[0] != c.cmd0 || rb.Commands[1] != c.cmd1 {
			t.Errorf("order %q: commands %q", c.order, rb.Commands[:2])
		}
	}
}

// ownersYAML is the timeline's stack with owners and runbooks.
const ownersYAML = timelineConfig + `owners:
  patterns: {cancel_not_propagated: oncall-cancel}
  systems: {amazon: team-marketplace, erp: team-erp}
  default: ops
runbooks:
  order_not_acknowledged: {url: "https://wiki.example.com/runbooks/ona"}
  payment_without_order: {file: runbooks/pwo.md, url: "https://wiki.example.com/pwo"}
`

const pwoRunbook = `# Payment without an order

Stripe charged for {order_id}, and {target} never heard of it.
Call the payments desk.

## Usual causes
- The checkout webhook to {target} failed.

## First checks
1. Find the charge in {source}.
2. Ask finance whether to refund,
   before the customer calls.

## Commands
- ` + "`driftwatch order {order_id}`" + `
- driftwatch mismatches --order {order_id} --state all
`

func ownersTimeline(t *testing.T) *timeline {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runbooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "runbooks", "pwo.md"), []byte(pwoRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	return newTimelineWith(t, filepath.Join(dir, "driftwatch.yaml"), ownersYAML)
}

// TestDefaultOwners: a mismatch opens with the owner of its pattern, else
// of its source system, else of its target, else the default, with an
// assigned entry naming the rule; a reopened mismatch keeps its owner.
func TestDefaultOwners(t *testing.T) {
	tl := ownersTimeline(t)
	tl.event(0, 0, "shop", map[string]string{"order": "O-1"}, "unfulfilled", "") // shop -> erp: erp's owner (target)
	tl.event(0, 0, "amazon", map[string]string{"order": "O-2"}, "Unshipped", "") // amazon's owner (source)
	tl.event(0, 0, "shop", map[string]string{"order": "O-3"}, "unfulfilled", "") // ...
	tl.event(time.Second, time.Second, "erp", map[string]string{"order": "O-3"}, "Pending Fulfillment", "")
	tl.event(2*time.Second, 2*time.Second, "shop", map[string]string{"order": "O-3", "field": "cancel_reason"}, "customer", "") // the pattern's owner
	tl.event(0, 0, "wms", map[string]string{"order": "O-4", "id": "w1"}, "shipped", "")
	tl.event(time.Second, time.Second, "wms", map[string]string{"order": "O-4", "id": "w2"}, "pending", "") // illegal_transition on wms: the default
	tl.judge(t0.Add(time.Minute))
	for _, c := range []struct {
		order, pattern, from, to, owner, rule string
	}{
		{"O-1", OrderNotAcknowledged, "shop", "erp", "team-erp", "owners.systems.erp"},
		{"O-2", OrderNotAcknowledged, "amazon", "erp", "team-marketplace", "owners.systems.amazon"},
		{"O-3", CancelNotPropagated, "shop", "erp", "oncall-cancel", "owners.patterns.cancel_not_propagated"},
		{"O-4", IllegalTransition, "wms", "wms", "ops", "owners.default"},
	} {
		m := tl.mismatch(AlertID(c.order, c.pattern, c.from, c.to))
		if m.Owner != c.owner {
			t.Errorf("%s %s: owner %q, want %q", c.order, c.pattern, m.Owner, c.owner)
		}
		if len(m.Audit) < 2 || m.Audit[1].Action != ActionAssigned || m.Audit[1].To != c.owner || !strings.Contains(m.Audit[1].Note, c.rule) {
			t.Errorf("%s %s: audit %+v", c.order, c.pattern, m.Audit)
		}
	}

	// Handed over, resolved and found again: the owner it had stays.
	id := AlertID("O-1", OrderNotAcknowledged, "shop", "erp")
	tl.assign(id, "kim", "lead", "", t0.Add(2*time.Minute))
	if _, err := tl.resolveID(id, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	m := tl.mismatch(id)
	m.State, m.ResolvedAt = "", nil
	tl.record(&m, t0.Add(4*time.Minute))
	if m := tl.mismatch(id); m.State != StateOpen || m.Owner != "kim" || m.Assignments != 1 || m.Audit[len(m.Audit)-1].Action != ActionReopened {
		t.Fatalf("reopened: state %s, owner %q, assignments %d, audit %+v", m.State, m.Owner, m.Assignments, m.Audit)
	}
}

// assign gives a mismatch to owner through the engine and commits.
func (tl *timeline) assign(id, owner, by, note string, at time.Time) (*Mismatch, bool) {
	tl.t.Helper()
	b := tl.store.NewBatch()
	m, changed, err := tl.engine.Assign(b, id, at, owner, by, note)
	if err != nil {
		tl.t.Fatal(err)
	}
	tl.commit(b, at)
	return m, changed
}

func (tl *timeline) resolveID(id string, at time.Time) (*Mismatch, error) {
	b := tl.store.NewBatch()
	m, err := tl.engine.Resolve(b, id, at, "kim", "fixed in the ERP")
	if err != nil {
		b.Close()
		return m, err
	}
	tl.commit(b, at)
	return m, nil
}

// outbox lists the queued alert entries without draining them.
func (tl *timeline) outbox() []OutboxEntry {
	tl.t.Helper()
	var out []OutboxEntry
	if err := scanPrefix(tl.store, prefixOutbox, func(_, v []byte) error {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}); err != nil {
		tl.t.Fatal(err)
	}
	return out
}

// TestAssignRepublishes: an assignment stores the owner with an audit
// entry (from, to, by, note) and queues the record again as
// <alert_id>:assigned:<n>, n counting up; the same owner again queues
// nothing; unassigning is an assignment to ""; the metrics are handed no
// assignment; a note changes nothing but the trail and queues nothing; a
// resolved mismatch takes notes but no owner.
func TestAssignRepublishes(t *testing.T) {
	tl := ownersTimeline(t)
	tl.event(0, 0, "shop", map[string]string{"order": "A-1"}, "unfulfilled", "")
	tl.judge(t0.Add(time.Minute))
	id := AlertID("A-1", OrderNotAcknowledged, "shop", "erp")
	tl.engine.Committed()

	var ids []string
	var texts []string
	step := func(owner, by, note string, at time.Duration) bool {
		t.Helper()
		b := tl.store.NewBatch()
		m, changed, err := tl.engine.Assign(b, id, t0.Add(at), owner, by, note)
		if err != nil {
			t.Fatal(err)
		}
		if m.Owner != owner {
			t.Fatalf("owner %q, want %q", m.Owner, owner)
		}
		if err := tl.store.Commit(b); err != nil {
			t.Fatal(err)
		}
		if q := tl.engine.Committed(); len(q) != 0 {
			t.Fatalf("an assignment was handed to the metrics: %d", len(q))
		}
		for _, e := range tl.outbox() {
			ids = append(ids, e.MsgID)
			texts = append(texts, AlertText(e))
			var a Alert
			if err := json.Unmarshal(e.Data, &a); err != nil {
				t.Fatal(err)
			}
			checkAlertRecord(t, e.Data)
			if e.Change != ActionAssigned || a.State != StateOpen || a.Owner != owner || a.Runbook == nil || a.Runbook.URL != "https://wiki.example.com/runbooks/ona" {
				t.Fatalf("queued %+v: %+v", e, a)
			}
		}
		tl.drain(t0.Add(at))
		return changed
	}
	if !step("kim", "lead (token ops)", "kim knows NetSuite", time.Minute) || step("kim", "lead", "", 2*time.Minute) ||
		!step("team-wms", "kim", "", 3*time.Minute) || !step("", "kim", "nobody yet", 4*time.Minute) {
		t.Fatal("changed flags wrong")
	}
	if want := []string{id + ":assigned:1", id + ":assigned:2", id + ":assigned:3"}; !slices.Equal(ids, want) {
		t.Fatalf("msg ids %q, want %q", ids, want)
	}
	if !strings.Contains(texts[0], "[open, assigned to kim]") || !strings.Contains(texts[2], "[open, unassigned]") {
		t.Fatalf("texts %q", texts)
	}
	m := tl.mismatch(id)
	var got []AuditEntry
	for _, a := range m.Audit {
		if a.Action == ActionAssigned {
			got = append(got, AuditEntry{Action: a.Action, By: a.By, Note: a.Note, From: a.From, To: a.To})
		}
	}
	want := []AuditEntry{
		{Action: ActionAssigned, By: "driftwatch", Note: "default owner (owners.systems.erp)", To: "team-erp"},
		{Action: ActionAssigned, By: "lead (token ops)", Note: "kim knows NetSuite", From: "team-erp", To: "kim"},
		{Action: ActionAssigned, By: "kim", From: "kim", To: "team-wms"},
		{Action: ActionAssigned, By: "kim", Note: "nobody yet", From: "team-wms"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("assignments in the trail:\n%+v\nwant\n%+v", got, want)
	}

	// A note: the trail grows, nothing is queued, nothing else changes.
	before := tl.mismatch(id)
	b := tl.store.NewBatch()
	if _, err := tl.engine.AddNote(b, id, t0.Add(5*time.Minute), "kim", "called the ERP team"); err != nil {
		t.Fatal(err)
	}
	if err := tl.store.Commit(b); err != nil {
		t.Fatal(err)
	}
	after := tl.mismatch(id)
	if n := len(tl.outbox()); n != 0 {
		t.Fatalf("a note queued %d records", n)
	}
	last := after.Audit[len(after.Audit)-1]
	if len(after.Audit) != len(before.Audit)+1 || last.Action != ActionNote || last.Note != "called the ERP team" || last.By != "kim" {
		t.Fatalf("note: %+v", after.Audit)
	}
	after.Audit, before.Audit = nil, nil
	if a, b := mustJSON(t, after), mustJSON(t, before); a != b {
		t.Fatalf("a note changed the record:\n%s\n%s", b, a)
	}

	// Resolved: notes yes, owners no.
	if _, err := tl.resolveID(id, t0.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	b = tl.store.NewBatch()
	if _, _, err := tl.engine.Assign(b, id, t0.Add(7*time.Minute), "kim", "kim", ""); !errors.Is(err, ErrAlreadyResolved) {
		t.Fatalf("assigning a resolved mismatch: %v", err)
	}
	if _, err := tl.engine.AddNote(b, id, t0.Add(7*time.Minute), "kim", "post-mortem: the ERP's import was down"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tl.engine.Assign(b, "dw-000000000000000000000000", t0, "kim", "kim", ""); !errors.Is(err, ErrMismatchNotFound) {
		t.Fatalf("assigning a mismatch that does not exist: %v", err)
	}
	b.Close()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunbookOverrides: runbooks.<pattern>.url links the team's runbook
// beside the built-in text; runbooks.<pattern>.file replaces the text
// (placeholders filled, its commands quoted and in place of the built-in
// ones); other patterns keep theirs. The records published carry it.
func TestRunbookOverrides(t *testing.T) {
	tl := ownersTimeline(t)
	cfg := tl.engine.cfg
	ona := RunbookOf(cfg, &Mismatch{Alert: Alert{OrderID: "X 1", Pattern: OrderNotAcknowledged, Source: &Side{System: "shop"}}, FlowTo: "erp"})
	if ona.URL != "https://wiki.example.com/runbooks/ona" || ona.Summary != RunbookOf(nil, &Mismatch{Alert: Alert{OrderID: "X 1", Pattern: OrderNotAcknowledged, Source: &Side{System: "shop"}}, FlowTo: "erp"}).Summary {
		t.Fatalf("url override: %+v", ona)
	}
	pwo := RunbookOf(cfg, &Mismatch{Alert: Alert{OrderID: "X 1", Pattern: PaymentWithoutOrder, Source: &Side{System: "stripe", Status: "succeeded"}}, FlowTo: "erp"})
	want := &Runbook{
		Summary:  "Stripe charged for X 1, and erp never heard of it. Call the payments desk.",
		Causes:   []string{"The checkout webhook to erp failed."},
		Checks:   []string{"Find the charge in stripe.", "Ask finance whether to refund, before the customer calls."},
		Commands: []string{"driftwatch order 'X 1'", "driftwatch mismatches --order 'X 1' --state all"},
		URL:      "https://wiki.example.com/pwo",
	}
	if mustJSON(t, pwo) != mustJSON(t, want) {
		t.Fatalf("file override:\n%s\nwant\n%s", mustJSON(t, pwo), mustJSON(t, want))
	}
	if cs := RunbookOf(cfg, &Mismatch{Alert: Alert{OrderID: "X", Pattern: ClockSkew, Source: &Side{System: "wms"}}}); cs.URL != "" || !strings.Contains(cs.Commands[2], "--system wms") {
		t.Fatalf("clock_skew: %+v", cs)
	}
	tl.event(0, 0, "stripe", map[string]string{"order": "P-9"}, "succeeded", "")
	b := tl.store.NewBatch() // judged, committed and not drained: the outbox holds the record
	if _, err := tl.engine.JudgeDue(b, t0.Add(time.Minute), t0.Add(time.Minute), 100); err != nil {
		t.Fatal(err)
	}
	if err := tl.store.Commit(b); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range tl.outbox() {
		var a Alert
		if err := json.Unmarshal(e.Data, &a); err != nil {
			t.Fatal(err)
		}
		if a.Pattern == PaymentWithoutOrder {
			found = a.Runbook != nil && a.Runbook.URL == "https://wiki.example.com/pwo" && strings.Contains(a.Runbook.Summary, "P-9")
		}
	}
	if !found {
		t.Fatalf("no payment_without_order record with the file's runbook in %+v", tl.outbox())
	}
	// The stored record holds no runbook: it is made when served.
	m := tl.mismatch(AlertID("P-9", PaymentWithoutOrder, "stripe", "erp"))
	if m.Runbook != nil || m.Owner != "team-erp" { // stripe has no owner: its target erp has
		t.Fatalf("stored: runbook %+v, owner %q", m.Runbook, m.Owner)
	}
}

// TestEscalationSaysWhoOwnedIt: the escalated record and its audit entry
// say after how long and who owned it; unassigned when nobody did.
func TestEscalationSaysWhoOwnedIt(t *testing.T) {
	tl := newTimeline(t) // no owners configured
	tl.event(0, 0, "shop", map[string]string{"order": "E-1"}, "unfulfilled", "")
	tl.event(0, 0, "shop", map[string]string{"order": "E-2"}, "unfulfilled", "")
	tl.judge(t0.Add(time.Minute))
	tl.drain(t0.Add(time.Minute))
	e1, e2 := AlertID("E-1", OrderNotAcknowledged, "shop", "erp"), AlertID("E-2", OrderNotAcknowledged, "shop", "erp")
	tl.assign(e1, "team-erp", "lead", "", t0.Add(2*time.Minute))
	tl.drain(t0.Add(2 * time.Minute))
	at := t0.Add(25 * time.Hour)
	b := tl.store.NewBatch()
	for _, id := range []string{e1, e2} {
		if _, err := tl.engine.Escalate(b, id, at, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.store.Commit(b); err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, e := range tl.outbox() {
		var a Alert
		if err := json.Unmarshal(e.Data, &a); err != nil {
			t.Fatal(err)
		}
		checkAlertRecord(t, e.Data)
		texts[a.AlertID] = a.Escalation + " | " + AlertText(e)
	}
	if !strings.HasPrefix(texts[e1], "escalated after 24h; owner: team-erp | ") || !strings.Contains(texts[e1], "[escalated: escalated after 24h; owner: team-erp]") {
		t.Fatalf("E-1: %s", texts[e1])
	}
	if !strings.HasPrefix(texts[e2], "escalated after 24h; unassigned | ") {
		t.Fatalf("E-2: %s", texts[e2])
	}
	if m := tl.mismatch(e1); m.Audit[len(m.Audit)-1].Note != "escalated after 24h; owner: team-erp" {
		t.Fatalf("audit %+v", m.Audit)
	}
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 45 * time.Second: "45s", 2*time.Hour + 5*time.Second: "2h0m5s"} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestOwnerFilter: owner=X keeps X's mismatches, owner=none the
// unassigned ones.
func TestOwnerFilter(t *testing.T) {
	for _, c := range []struct {
		filter, owner string
		match         bool
	}{
		{"", "", true}, {"", "kim", true}, {"kim", "kim", true}, {"kim", "kimberly", false}, {"kim", "", false},
		{OwnerNone, "", true}, {OwnerNone, "kim", false},
	} {
		f := Filter{Owner: c.filter}
		if got := f.Match(&Mismatch{Alert: Alert{Owner: c.owner}}); got != c.match {
			t.Errorf("filter %q on owner %q: %v", c.filter, c.owner, got)
		}
	}
}
