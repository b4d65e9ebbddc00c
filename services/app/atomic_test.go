package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
)

// TestPublishBatchAtomic publishes through atomic batches (the default with
// sync_interval "always") a batch holding repeats within it, an event
// already in the log (the batch holding it is refused and split), and bad
// input, then checks every outcome against the stream: each accepted
// event stored once at the sequence its result names, each duplicate
// pointing at its original.
func TestPublishBatchAtomic(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	ctx := context.Background()
	st, err := env.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if !st.CachedInfo().Config.AllowAtomicPublish {
		t.Fatal("events stream does not allow atomic batches with sync_interval always")
	}
	pub, err := events.NewPublisher(env.NC, events.WithAtomicBatches(100))
	if err != nil {
		t.Fatal(err)
	}
	early, err := pub.PublishRaw(ctx, []byte(ev("at-150", "shop", "paid")))
	if err != nil || early.Outcome != events.Accepted {
		t.Fatalf("first publish: %+v %v", early, err)
	}
	var batch [][]byte
	want := map[int]events.Outcome{}
	firstOf := map[string]int{} // event id -> index of its first line
	for i := 0; i < 450; i++ {
		id := fmt.Sprintf("at-%d", i)
		line := []byte(ev(id, "shop", "paid"))
		batch = append(batch, line)
		switch {
		case i == 150:
			want[len(batch)-1] = events.Duplicate // already in the log
		default:
			want[len(batch)-1] = events.Accepted
			firstOf[id] = len(batch) - 1
		}
		if i%37 == 0 { // the same event again, right behind
			batch = append(batch, line)
			want[len(batch)-1] = events.Duplicate
		}
		if i == 300 {
			batch = append(batch, []byte(`{"event_id":"at-bad","system":"shop"}`))
			want[len(batch)-1] = events.Rejected
		}
	}
	results, err := pub.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]string{}
	accepted := 0
	for i, r := range results {
		if r.Outcome != want[i] {
			t.Fatalf("line %d (%s): %q, want %q (%s)", i, r.EventID, r.Outcome, want[i], r.Error)
		}
		if r.Outcome == events.Rejected {
			continue
		}
		if r.Seq == 0 {
			t.Fatalf("line %d (%s): no sequence", i, r.EventID)
		}
		if r.Outcome == events.Accepted {
			accepted++
			if other, dup := seqs[r.Seq]; dup {
				t.Fatalf("sequence %d given to %s and %s", r.Seq, other, r.EventID)
			}
			seqs[r.Seq] = r.EventID
		}
		msg, err := st.GetMsg(ctx, r.Seq)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got := msg.Header.Get(events.HeaderMsgID); got != "shop:"+r.EventID {
			t.Fatalf("line %d: sequence %d holds %s, result says %s", i, r.Seq, got, r.EventID)
		}
		if r.Outcome == events.Duplicate && r.EventID != "at-150" && results[firstOf[r.EventID]].Seq != r.Seq {
			t.Fatalf("line %d: duplicate of %s points at %d, the original is at %d", i, r.EventID, r.Seq, results[firstOf[r.EventID]].Seq)
		}
	}
	if accepted != 449 {
		t.Fatalf("%d accepted, want 449", accepted)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 450 {
		t.Fatalf("stream holds %d events, want 450 (each once)", info.State.Msgs)
	}
	// The batch holding at-150 was split down to a small one published
	// event by event; the rest went in atomic batches.
	stats := pub.Stats()
	if stats.SingleEvents == 0 || stats.SingleEvents > 16+1 || stats.AtomicEvents < 449-16 || stats.AtomicBatches < 5 {
		t.Fatalf("publish stats %+v", stats)
	}
	env.WaitApplied(t)
}

// TestPublishBatchEachWithSyncInterval checks that with a sync interval the
// stream does not take atomic batches and PublishBatch still stores every
// event once.
func TestPublishBatchEachWithSyncInterval(t *testing.T) {
	yaml := strings.Replace(apptest.StackYAML, "ingest:\n", "ingest:\n  sync_interval: 1s\n", 1)
	cfg := apptest.Config(t, yaml)
	if cfg.SyncAlways() {
		t.Fatal("test config still syncs always")
	}
	env := apptest.Start(t, cfg, "")
	ctx := context.Background()
	st, err := env.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if st.CachedInfo().Config.AllowAtomicPublish {
		t.Fatal("events stream allows atomic batches with a sync interval")
	}
	pub, err := events.NewPublisher(env.NC)
	if err != nil {
		t.Fatal(err)
	}
	var batch [][]byte
	for i := 0; i < 50; i++ {
		batch = append(batch, []byte(ev(fmt.Sprintf("si-%d", i), "erp", "Billed")))
	}
	batch = append(batch, batch[7])
	results, err := pub.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if results[50].Outcome != events.Duplicate || results[50].Seq != results[7].Seq {
		t.Fatalf("repeat: %+v, original %+v", results[50], results[7])
	}
	assertStored(t, env, 50)
}

// TestPublishBatchAtomicDisabledMidway turns atomic publishing off on the
// stream between two batches of a Publisher that already found it on: the
// refused batches go event by event, every event is stored once, and the
// next call asks the stream again and publishes event by event directly.
func TestPublishBatchAtomicDisabledMidway(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	ctx := context.Background()
	pub, err := events.NewPublisher(env.NC, events.WithAtomicBatches(50))
	if err != nil {
		t.Fatal(err)
	}
	batch := func(prefix string) [][]byte {
		var b [][]byte
		for i := 0; i < 120; i++ {
			b = append(b, []byte(ev(fmt.Sprintf("%s-%d", prefix, i), "wms", "picked")))
		}
		return b
	}
	publish := func(prefix string) {
		t.Helper()
		results, err := pub.PublishBatch(ctx, batch(prefix))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.Outcome != events.Accepted || r.Seq == 0 {
				t.Fatalf("%s line %d: %+v", prefix, i, r)
			}
		}
	}
	publish("on")
	if s := pub.Stats(); s.AtomicEvents != 120 || s.SingleEvents != 0 {
		t.Fatalf("with atomic batches allowed: %+v", s)
	}
	st, err := env.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowAtomicPublish = false
	if _, err := env.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	publish("refused")
	if s := pub.Stats(); s.AtomicEvents != 120 || s.SingleEvents != 120 {
		t.Fatalf("after the stream stopped allowing atomic batches: %+v", s)
	}
	publish("off")
	if s := pub.Stats(); s.AtomicEvents != 120 || s.SingleEvents != 240 {
		t.Fatalf("on the next call: %+v", s)
	}
	assertStored(t, env, 360)
}
