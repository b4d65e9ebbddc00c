package detector

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/projector"
)

var update = flag.Bool("update", false, "rewrite the golden files of the timeline tests")

// timelineConfig is the stack the scripts run against: second-scale SLAs.
const timelineConfig = config.SixSystems + `flows:
  - {from: shop,    to: erp, sla: 5s}
  - {from: amazon,  to: erp, sla: 5s}
  - {from: stripe,  to: erp, sla: 5s, dimensions: [payment]}
  - {from: carrier, to: erp, sla: 10s, dimensions: [fulfilment]}
  - {from: erp,     to: wms, sla: 5s, dimensions: [fulfilment]}
  - {from: carrier, to: wms, sla: 10s, dimensions: [fulfilment]}
detect:
  settle: 1s
  max_future_skew: 1m
`

// timeline runs one script. Each line is one of:
//
//	at T SYSTEM STATUS [key=value...]   an event that occurred at T and was
//	                                    received at T (or recv=T2); keys:
//	                                    field, actor, order, id, tz (+05:30),
//	                                    kind (snapshot)
//	at T SYSTEM ack EVENT_ID [order=..] an acknowledgement of SYSTEM:EVENT_ID
//	tick T                              judge everything due up to T
//	resolve ALERT_PATTERN FROM TO       a person resolves that mismatch
//
// Times are durations from 2026-11-27T15:00:00Z. Before each event, the
// engine judges what is due at the event's received time. The output lists
// every alert record the engine queued, with the script time.
type timeline struct {
	t       *testing.T
	store   *projections.Store
	applier *projections.Applier
	engine  *Engine
	seq     uint64
	out     strings.Builder
	ids     map[string]int
}

var t0 = time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)

func newTimeline(t *testing.T) *timeline { return newTimelineWith(t, "timeline.yaml", timelineConfig) }

// newTimelineWith is newTimeline on another configuration, read as if from
// the file path (relative paths in it are taken from its folder).
func newTimelineWith(t *testing.T, path, yaml string) *timeline {
	cfg, err := config.Parse(path, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	store, err := projections.Open(t.TempDir(), projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	eng, err := NewEngine(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return &timeline{t: t, store: store, applier: projector.NewApplier(cfg), engine: eng, ids: map[string]int{}}
}

func (tl *timeline) judge(at time.Time) {
	b := tl.store.NewBatch()
	for {
		n, err := tl.engine.JudgeDue(b, at, at, 100)
		if err != nil {
			tl.t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	tl.commit(b, at)
}

func (tl *timeline) commit(b *pebble.Batch, at time.Time) {
	if err := tl.store.Commit(b); err != nil {
		tl.t.Fatal(err)
	}
	tl.drain(at)
}

// drain moves the outbox's alerts into the output.
func (tl *timeline) drain(at time.Time) {
	db := tl.store
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: prefixOutbox, UpperBound: projections.PrefixEnd(prefixOutbox)})
	var keys [][]byte
	for it.First(); it.Valid(); it.Next() {
		var e OutboxEntry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			tl.t.Fatal(err)
		}
		var a Alert
		if err := json.Unmarshal(e.Data, &a); err != nil {
			tl.t.Fatal(err)
		}
		checkAlertRecord(tl.t, e.Data)
		// A state change goes out as <alert_id>:<state>, an assignment as
		// <alert_id>:assigned:<n>.
		wantID := a.AlertID + ":" + a.State
		if e.Change == ActionAssigned {
			wantID = a.AlertID + ":assigned:"
		}
		if !strings.HasPrefix(e.Subject, "driftwatch.alerts."+a.Severity+"."+a.Pattern) || !strings.HasPrefix(e.MsgID, wantID) ||
			(e.Change == "" && e.MsgID != wantID) || a.Runbook == nil || a.Runbook.Summary == "" {
			tl.t.Fatalf("outbox entry subject %s / msg id %s / runbook %v do not match the alert", e.Subject, e.MsgID, a.Runbook)
		}
		target := "-"
		if a.Target != nil {
			target = a.Target.System + "=" + a.Target.Status
		}
		state := a.State
		if e.Change != "" {
			state = e.Change
		}
		fmt.Fprintf(&tl.out, "%-6s %-8s %-8s %-22s order=%s source=%s=%s target=%s\n", fmtDur(at.Sub(t0)), state, a.Severity, a.Pattern, a.OrderID, a.Source.System, a.Source.Status, target)
		if a.State == StateOpen {
			fmt.Fprintf(&tl.out, "       | %s\n", a.Message)
		}
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	it.Close()
	for _, k := range keys {
		_ = db.Delete(k)
	}
}

func fmtDur(d time.Duration) string { return "t=" + d.String() }

func (tl *timeline) event(at, recv time.Duration, system string, kv map[string]string, status, ackOf string) {
	order := kv["order"]
	if order == "" {
		order = "ORD-1"
	}
	tl.ids[system]++
	id := kv["id"]
	if id == "" {
		id = fmt.Sprintf("%s-%d", system, tl.ids[system])
	}
	loc := time.UTC
	if tz := kv["tz"]; tz != "" {
		tt, err := time.Parse("-07:00", tz)
		if err != nil {
			tl.t.Fatalf("tz %q: %v", tz, err)
		}
		loc = tt.Location()
	}
	ev := map[string]any{"event_id": id, "order_id": order, "system": system, "occurred_at": t0.Add(at).In(loc).Format(time.RFC3339Nano)}
	if ackOf != "" {
		ev["kind"], ev["ack_of"] = "ack", ackOf
	} else {
		ev["status"] = status
		if k := kv["kind"]; k != "" {
			ev["kind"] = k
		}
	}
	if f := kv["field"]; f != "" {
		ev["status_field"] = f
	}
	if a := kv["actor"]; a != "" {
		ev["actor"] = a
	}
	data, _ := json.Marshal(ev)
	received := t0.Add(recv)
	tl.judge(received)
	tl.seq++
	tx := tl.store.NewTx(true)
	b := tx.B
	out, err := tl.applier.Apply(tx, projections.Delivery{Subject: "driftwatch.in." + system, Data: data, Seq: tl.seq, Received: received})
	if err != nil {
		tl.t.Fatal(err)
	}
	tx.PublishRows()
	if out.Result == projections.Rejected {
		tl.t.Fatalf("script event rejected: %v", out.Err)
	}
	if out.Result != projections.Duplicate {
		if err := tl.engine.OnEntry(b, order, out.Entry, received); err != nil {
			tl.t.Fatal(err)
		}
	}
	if err := tl.store.CommitTx(tx, true); err != nil {
		tl.t.Fatal(err)
	}
	tl.drain(received)
}

// resolve has a person resolve the mismatch of pattern on the flow
// from -> to of an order, at time at.
func (tl *timeline) resolve(order, pattern, from, to string, at time.Time) {
	id := AlertID(order, pattern, from, to)
	b := tl.store.NewBatch()
	if _, err := tl.engine.Resolve(b, id, at, "ops", "fixed by hand"); err != nil {
		tl.t.Fatalf("resolve: %v", err)
	}
	tl.commit(b, at)
}

// expectations lists the open expectations in key order: by order, flow,
// dimension and source event.
func (tl *timeline) expectations() []Expectation {
	var out []Expectation
	err := scanPrefix(tl.store, prefixExp, func(_, v []byte) error {
		x, err := decodeExpectation(v)
		if err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		tl.t.Fatal(err)
	}
	return out
}

func parseAt(t *testing.T, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return d
}

func (tl *timeline) run(script string) string {
	sc := bufio.NewScanner(strings.NewReader(script))
	last := time.Duration(0)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := splitQuoted(line)
		switch fields[0] {
		case "at":
			at := parseAt(tl.t, fields[1])
			kv := map[string]string{}
			var pos []string
			for _, f := range fields[3:] {
				if k, v, ok := strings.Cut(f, "="); ok && !strings.Contains(k, " ") && k != "" && len(pos) > 0 {
					kv[k] = v
				} else {
					pos = append(pos, f)
				}
			}
			recv := at
			if r := kv["recv"]; r != "" {
				recv = parseAt(tl.t, r)
			}
			if recv < last {
				tl.t.Fatalf("script line %q: received before the previous line", line)
			}
			last = recv
			if pos[0] == "ack" {
				tl.event(at, recv, fields[2], kv, "", pos[1])
			} else {
				tl.event(at, recv, fields[2], kv, pos[0], "")
			}
		case "tick":
			at := parseAt(tl.t, fields[1])
			last = at
			tl.judge(t0.Add(at))
		case "resolve":
			tl.resolve("ORD-1", fields[1], fields[2], fields[3], t0.Add(last))
		default:
			tl.t.Fatalf("unknown script line %q", line)
		}
	}
	tl.judge(t0.Add(last + time.Hour)) // everything left is judged at the end
	return tl.out.String()
}

// splitQuoted splits on spaces, keeping "quoted strings" (and key="quoted
// values") whole, without their quotes.
func splitQuoted(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
		case r == ' ' && !inQuote:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func TestTimelines(t *testing.T) {
	scripts, err := filepath.Glob("testdata/timelines/*.txt")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		t.Run(name, func(t *testing.T) {
			script, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := newTimeline(t).run(string(script))
			golden := strings.TrimSuffix(path, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Fatalf("output differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
			if strings.HasPrefix(name, "healthy") && got != "" {
				t.Fatalf("a healthy timeline raised alerts:\n%s", got)
			}
		})
	}
}

// TestJudgeDueInRounds judges more due expectations than one round takes,
// round after round with the cursor and a commit between rounds as Tick
// does, and checks the outcome against judging them all at once on the
// same history: the same alerts, every expectation judged, none left.
func TestJudgeDueInRounds(t *testing.T) {
	play := func(tl *timeline) int {
		for i := 0; i < 53; i++ {
			order := fmt.Sprintf("ORD-%03d", i)
			at := time.Duration(i) * time.Millisecond
			tl.event(at, at, "shop", map[string]string{"order": order, "field": "fulfillment_status"}, "fulfilled", "")
			if i%3 == 0 {
				tl.event(time.Second, time.Second, "erp", map[string]string{"order": order}, "Pending Billing", "")
			}
		}
		n := 0
		if err := scanPrefix(tl.store, prefixExp, func(_, _ []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	at := t0.Add(time.Minute)
	once, rounds := newTimeline(t), newTimeline(t)
	open := play(once)
	if play(rounds) != open || open < 40 {
		t.Fatalf("%d open expectations", open)
	}
	once.judge(at) // one call after another without a cursor, as before

	var cursor []byte
	judged, n := 0, 0
	for {
		b := rounds.store.NewBatch()
		k, next, err := rounds.engine.JudgeDueAfter(b, at, at, 5, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			b.Close()
			break
		}
		if cursor != nil && string(next) <= string(cursor) {
			t.Fatalf("round %d: the cursor went from %x to %x", n, cursor, next)
		}
		rounds.commit(b, at)
		cursor, judged, n = next, judged+k, n+1
	}
	left := 0
	if err := scanPrefix(rounds.store, prefixExp, func(_, _ []byte) error { left++; return nil }); err != nil {
		t.Fatal(err)
	}
	if judged != open || left != 0 || n < open/5 {
		t.Fatalf("%d of %d judged in %d rounds, %d left", judged, open, n, left)
	}
	if got, want := rounds.out.String(), once.out.String(); got != want || !strings.Contains(want, "order_not_acknowledged") {
		t.Fatalf("alerts judged in rounds:\n%s\nall at once:\n%s", got, want)
	}
}

// TestReconcileOrderCurrentOrNot reconciles an order with an overdue unmet
// flow twice: with rows known to be current (judged with them) and with rows
// that may have changed since they were read (read again). Both raise it.
func TestReconcileOrderCurrentOrNot(t *testing.T) {
	for _, tc := range []struct {
		current, caughtUp bool
		want              int
	}{
		// The rows read are the storefront's alone and the ERP never
		// hears of the order: the flow is overdue either way.
		{current: true, want: 1},
		{current: false, want: 1},
		// The ERP and the warehouse catch up after the rows were read:
		// current trusts the rows given; otherwise judging reads them
		// again and finds the flows met.
		{current: true, caughtUp: true, want: 1},
		{current: false, caughtUp: true, want: 0},
	} {
		tl := newTimeline(t)
		tl.event(0, 0, "shop", map[string]string{"order": "R-1", "field": "fulfillment_status"}, "fulfilled", "")
		rows, err := tl.store.Rows("R-1")
		if err != nil || len(rows) != 1 {
			t.Fatalf("rows of R-1: %v %v", rows, err)
		}
		if tc.caughtUp {
			tl.event(time.Second, time.Second, "erp", map[string]string{"order": "R-1", "field": "status"}, "Billed", "")
			tl.event(2*time.Second, 2*time.Second, "wms", map[string]string{"order": "R-1", "field": "status"}, "shipped", "")
		}
		b := tl.store.NewBatch()
		v, err := tl.engine.ReconcileOrder(b, "R-1", rows, t0.Add(time.Minute), tc.current)
		b.Close()
		if err != nil || v.Raised != tc.want {
			t.Errorf("current %v, caught up %v: %+v %v, want %d raised", tc.current, tc.caughtUp, v, err, tc.want)
		}
	}
}

// TestRepeatedSightings: raising an open mismatch again counts the
// sighting; a run of sightings by the same detector is one audit entry, at
// the latest one and noting the first, so a record found by every sweep
// does not grow.
func TestRepeatedSightings(t *testing.T) {
	tl := newTimeline(t)
	id := AlertID("R-9", MissingEvent, "shop", "shop")
	raise := func(at time.Duration, by string) {
		m := &Mismatch{Alert: Alert{AlertID: id, OrderID: "R-9", Pattern: MissingEvent, Severity: "high", DetectedBy: by,
			Source: &Side{System: "shop", Status: "fulfilled"}}}
		b := tl.store.NewBatch()
		if err := tl.engine.Raise(b, m, t0.Add(at)); err != nil {
			t.Fatal(err)
		}
		tl.commit(b, t0.Add(at))
	}
	for i := 0; i < 5; i++ {
		raise(time.Duration(i)*time.Minute, ByReconcile)
	}
	raise(10*time.Minute, ByValidate)
	raise(11*time.Minute, ByReconcile)
	m, found, err := getMismatch(tl.store, join(prefixMis, id))
	if err != nil || !found {
		t.Fatalf("mismatch: found %v, %v", found, err)
	}
	if m.Occurrences != 7 {
		t.Errorf("occurrences %d, want 7", m.Occurrences)
	}
	var got []string
	for _, a := range m.Audit {
		got = append(got, strings.TrimSpace(a.Action+" "+a.By+" "+a.At+" "+a.Note))
	}
	at := func(d time.Duration) string { return projections.FormatTime(t0.Add(d).UnixNano()) }
	want := []string{
		"opened " + ByReconcile + " " + at(0),
		"repeated " + ByReconcile + " " + at(4*time.Minute) + " since " + at(time.Minute),
		"repeated " + ByValidate + " " + at(10*time.Minute),
		"repeated " + ByReconcile + " " + at(11*time.Minute),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
