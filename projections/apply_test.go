package projections

import (
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/events/mapping"
)

func testApplier(t *testing.T) *Applier {
	t.Helper()
	set, err := mapping.LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]*mapping.Table{}
	for sys, plat := range map[string]string{"shop": "shopify", "erp": "netsuite", "wms": "generic"} {
		tables[sys], _ = set.Table(plat)
	}
	return NewApplier(tables, 5*time.Minute, nil)
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var recv0 = time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)

// applyAll applies events one batch each, with sequences 1.. and received
// times a second apart.
func applyAll(t *testing.T, s *Store, a *Applier, bodies ...string) []Outcome {
	t.Helper()
	var outs []Outcome
	for i, body := range bodies {
		b := s.NewTx(false)
		sys := systemOf(body)
		out, err := a.Apply(b, Delivery{Subject: "driftwatch.in." + sys, Data: []byte(body), Seq: uint64(i + 1), Received: recv0.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CommitTx(b, true); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	return outs
}

func systemOf(body string) string {
	for _, s := range []string{"shop", "erp", "wms", "pos"} {
		if strings.Contains(body, `"system":"`+s+`"`) {
			return s
		}
	}
	return "shop"
}

func status(id, system, status, field, at string) string {
	f := ""
	if field != "" {
		f = `,"status_field":"` + field + `"`
	}
	return `{"event_id":"` + id + `","order_id":"O1","system":"` + system + `","status":"` + status + `"` + f + `,"occurred_at":"` + at + `"}`
}

func TestOutOfOrderWithMixedOffsets(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	// 10:00Z shipped arrives first; 15:00+05:30 (= 09:30Z) unfulfilled arrives
	// later but is older: it must not overwrite.
	outs := applyAll(t, s, a,
		status("e2", "shop", "fulfilled", "", "2026-11-27T10:00:00Z"),
		status("e1", "shop", "unfulfilled", "", "2026-11-27T15:00:00+05:30"),
		status("e3", "shop", "partial", "", "2026-11-27T06:30:00-04:00"), // = 10:30Z: newest
	)
	if outs[0].Result != Applied || outs[1].Result != Late || outs[2].Result != Applied {
		t.Fatalf("results %v %v %v", outs[0].Result, outs[1].Result, outs[2].Result)
	}
	row, err := s.Row("O1", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if row.State() != canonical.PartiallyShipped || row.Last.EventID != "e3" || row.Events != 3 {
		t.Fatalf("current %v from %s (%d events)", row.State(), row.Last.EventID, row.Events)
	}
	tl, _ := s.Timeline("O1")
	if len(tl) != 3 || tl[0].Seq != 1 || !tl[1].Late || tl[1].Current {
		t.Fatalf("timeline %+v", tl)
	}
}

func TestTieBreaksBySequence(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	applyAll(t, s, a,
		status("e1", "shop", "fulfilled", "", "2026-11-27T10:00:00Z"),
		status("e2", "shop", "unfulfilled", "", "2026-11-27T12:00:00+02:00"), // the same instant
	)
	row, _ := s.Row("O1", "shop")
	if row.Last.EventID != "e2" {
		t.Fatalf("tie: want the later-logged e2, got %s", row.Last.EventID)
	}
}

func TestDimensionsAreIndependent(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	applyAll(t, s, a,
		status("e1", "shop", "fulfilled", "fulfillment_status", "2026-11-27T10:00:00Z"),
		status("e2", "shop", "paid", "financial_status", "2026-11-27T09:00:00Z"),
		status("e3", "shop", "teleported", "", "2026-11-27T11:00:00Z"),
	)
	row, _ := s.Row("O1", "shop")
	if row.State() != canonical.Shipped || row.PaymentState() != canonical.Paid {
		t.Fatalf("state %v payment %v", row.State(), row.PaymentState())
	}
	if !row.Last.Unmapped || row.Last.Raw != "teleported" {
		t.Fatalf("last %+v", row.Last)
	}
	tl, _ := s.Timeline("O1")
	if tl[2].State != canonical.Unknown || !tl[2].Unmapped {
		t.Fatalf("unmapped entry %+v", tl[2])
	}
}

func TestDuplicatesAndRejects(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	outs := applyAll(t, s, a,
		status("e1", "erp", "Pending Fulfillment", "", "2026-11-27T10:00:00Z"),
		status("e1", "erp", "Billed", "", "2026-11-27T11:00:00Z"), // same (system, event_id): duplicate
		status("e1", "shop", "paid", "financial_status", "2026-11-27T10:00:00Z"),
		`{"event_id":"x","order_id":"O1","system":"pos","status":"a","occurred_at":"2026-11-27T10:00:00Z"}`,
		`{"event_id":"y","order_id":"O1","system":"erp","status":"a","occurred_at":"2026-11-27T10:00:00"}`,
	)
	want := []Result{Applied, Duplicate, Applied, Rejected, Rejected}
	for i, w := range want {
		if outs[i].Result != w {
			t.Fatalf("event %d: %v, want %v (%v)", i, outs[i].Result, w, outs[i].Err)
		}
	}
	row, _ := s.Row("O1", "erp")
	if row.State() != canonical.Confirmed || row.Events != 1 {
		t.Fatalf("duplicate applied: %v, %d events", row.State(), row.Events)
	}
}

func TestSubjectMismatchRejected(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	b := s.NewTx(false)
	defer b.Close()
	out, err := a.Apply(b, Delivery{Subject: "driftwatch.in.erp", Data: []byte(status("e1", "shop", "paid", "", "2026-11-27T10:00:00Z")), Seq: 1, Received: recv0})
	if err != nil || out.Result != Rejected || !strings.Contains(out.Err.Error(), "subject") {
		t.Fatalf("%v %v", out.Result, out.Err)
	}
}

func TestAckLinksAndClockSkew(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	applyAll(t, s, a,
		status("e1", "shop", "unfulfilled", "", "2026-11-27T15:00:00Z"),
		`{"event_id":"a1","order_id":"O1","system":"erp","kind":"ack","ack_of":"shop:e1","occurred_at":"2026-11-27T15:00:02Z"}`,
		status("e2", "wms", "picked", "", "2026-11-27T16:00:00Z"), // an hour ahead of received: skew
	)
	acks, _ := s.Acks("O1")
	if len(acks) != 1 || acks[0].AckSystem != "erp" || acks[0].EventID != "e1" || acks[0].AckSeq != 2 {
		t.Fatalf("acks %+v", acks)
	}
	erp, _ := s.Row("O1", "erp")
	if erp.HasRecord() || erp.Acks != 1 {
		t.Fatalf("an ack is not a status: %+v", erp)
	}
	wms, _ := s.Row("O1", "wms")
	if !wms.Last.ClockSkew || wms.State() != canonical.Picked {
		t.Fatalf("skewed event: %+v", wms.Last)
	}
}

func TestFormatVersionChecked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(keyFormat, []byte{99}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, Options{CacheSize: 1 << 20}); err == nil {
		t.Fatal("opened a store of another format version")
	}
}

func TestRowsAsOf(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	applyAll(t, s, a,
		status("e1", "shop", "unfulfilled", "", "2026-11-27T10:00:00Z"), // received recv0
		status("e2", "shop", "fulfilled", "", "2026-11-27T11:00:00Z"),   // recv0+1s
		status("e3", "shop", "partial", "", "2026-11-27T10:30:00Z"),     // recv0+2s, late
	)
	rows, err := s.RowsAsOf("O1", recv0.Add(500*time.Millisecond).UnixNano())
	if err != nil || len(rows) != 1 || rows[0].State() != canonical.Confirmed {
		t.Fatalf("as of +0.5s: %+v %v", rows, err)
	}
	rows, _ = s.RowsAsOf("O1", recv0.Add(5*time.Second).UnixNano())
	now, _ := s.Row("O1", "shop")
	if rows[0].State() != canonical.Shipped || rows[0].Last.EventID != now.Last.EventID || rows[0].Events != now.Events {
		t.Fatalf("as of now differs from the projection: %+v vs %+v", rows[0], now)
	}
}

// TestFutureDatedOrdersByReceived: an event that claims a time beyond
// received + max_future_skew is ordered by its received time, so the
// system's real later event becomes its current state; its twin within
// the limit keeps source-time order.
func TestFutureDatedOrdersByReceived(t *testing.T) {
	for _, tc := range []struct {
		ahead   string
		current canonical.State
	}{
		{"2026-11-27T16:00:00Z", canonical.Packed},    // an hour ahead: skew, ordered by received
		{"2026-11-27T15:03:00Z", canonical.Confirmed}, // three minutes ahead: within the limit, source time wins
	} {
		s, a := openStore(t), testApplier(t)
		outs := applyAll(t, s, a,
			status("e1", "wms", "confirmed", "", tc.ahead),
			status("e2", "wms", "packed", "", "2026-11-27T15:00:05Z"), // received at +1s
		)
		wms, _ := s.Row("O1", "wms")
		if wms.State() != tc.current {
			t.Fatalf("first event at %s: current %s, want %s", tc.ahead, wms.State(), tc.current)
		}
		skewed := tc.current == canonical.Packed
		if outs[0].Entry.ClockSkew != skewed || (skewed && outs[0].Entry.Occurred != recv0.UnixNano()) || outs[0].Entry.OccurredAt != tc.ahead {
			t.Fatalf("entry %+v", outs[0].Entry)
		}
	}
}

// TestZoneAssumed: with a zone configured for its system, an occurred_at
// without an offset is read in that zone and marked; without one it is
// rejected as before.
func TestZoneAssumed(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	base := testApplier(t)
	zoned := NewApplier(base.tables, 5*time.Minute, func(sys string) *time.Location {
		if sys == "wms" {
			return chicago
		}
		return nil
	})
	body := status("e1", "wms", "picked", "", "2026-11-27T09:00:00")
	out := applyAll(t, openStore(t), zoned, body)[0]
	if out.Result != Applied || out.Entry.ZoneAssumed != "America/Chicago" || out.Entry.OccurredAt != "2026-11-27T09:00:00-06:00" ||
		out.Entry.Occurred != time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("zoned: %v %+v", out.Err, out.Entry)
	}
	for _, tc := range []struct {
		a    *Applier
		body string
	}{
		{base, body}, // no zone configured
		{zoned, status("e1", "shop", "unfulfilled", "", "2026-11-27T09:00:00")},                         // another system's zone is none
		{zoned, status("e1", "wms", "picked", "", "2026-11-27T09:00")},                                  // not a date and time without offset
		{zoned, `{"event_id":"e1","order_id":"O1","system":"wms","occurred_at":"2026-11-27T09:00:00"}`}, // a second problem
	} {
		if out := applyAll(t, openStore(t), tc.a, tc.body)[0]; out.Result != Rejected || !strings.Contains(out.Err.Error(), "occurred_at") {
			t.Fatalf("%s: %v %v", tc.body, out.Result, out.Err)
		}
	}
}

// TestSeparateRecordKeepsReturn: a status of the order record sent again
// after another record of the same system started a return (or refund)
// does not move the system back out of it; it stays in the history,
// shadowed, and the as-of fold agrees. Its twin, the return record itself
// withdrawing the return, is a documented transition and applies.
func TestSeparateRecordKeepsReturn(t *testing.T) {
	s, a := openStore(t), testApplier(t)
	outs := applyAll(t, s, a,
		status("e1", "shop", "fulfilled", "fulfillment_status", "2026-11-27T15:00:00Z"),
		status("e2", "shop", "REQUESTED", "return.status", "2026-11-27T15:01:00Z"),
		status("e3", "shop", "fulfilled", "fulfillment_status", "2026-11-27T15:02:00Z"), // orders/updated repeats it
		status("e4", "erp", "Billed", "", "2026-11-27T15:00:00Z"),
		status("e5", "erp", "Refunded", "return_authorization_status", "2026-11-27T15:01:00Z"),
		status("e6", "erp", "Fully Applied", "credit_memo_status", "2026-11-27T15:02:00Z"), // its credit memo
		status("e7", "erp", "Billed", "", "2026-11-27T15:03:00Z"),
	)
	shop, _ := s.Row("O1", "shop")
	erp, _ := s.Row("O1", "erp")
	if shop.State() != canonical.ReturnRequested || erp.State() != canonical.Returned || erp.PaymentState() != canonical.Refunded {
		t.Fatalf("shop %s, erp %s/%s: a repeated order record moved a system out of its return", shop.State(), erp.State(), erp.PaymentState())
	}
	for _, i := range []int{2, 5, 6} {
		if x := outs[i].Entry; !x.Shadowed || x.Late || x.Current {
			t.Fatalf("event %s: shadowed %v late %v current %v", x.EventID, x.Shadowed, x.Late, x.Current)
		}
	}
	entries, err := s.Timeline("O1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range FoldAsOf("O1", entries, recv0.Add(time.Hour).UnixNano()) {
		if want, _ := s.Row("O1", r.System); r.State() != want.State() || r.PaymentState() != want.PaymentState() {
			t.Fatalf("as-of fold of %s: %s/%s, live %s/%s", r.System, r.State(), r.PaymentState(), want.State(), want.PaymentState())
		}
	}

	twin, a2 := openStore(t), testApplier(t)
	applyAll(t, twin, a2,
		status("e1", "shop", "fulfilled", "fulfillment_status", "2026-11-27T15:00:00Z"),
		status("e2", "shop", "REQUESTED", "return.status", "2026-11-27T15:01:00Z"),
		status("e3", "shop", "CANCELED", "return.status", "2026-11-27T15:02:00Z"), // the return withdrawn
	)
	if r, _ := twin.Row("O1", "shop"); r.State() != canonical.Delivered {
		t.Fatalf("withdrawn return: %s, want delivered", r.State())
	}
}
