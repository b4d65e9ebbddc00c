package app

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/broker"
)

// TestObserveSourcesReadsTheWholeLog: the sources' arrivals an instance of
// a cluster judges silence by are read from the log, under every subject
// of a source (its partitions' and the bare one), for configured systems
// only.
func TestObserveSourcesReadsTheWholeLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(broker.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", SyncInterval: time.Minute,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := broker.EnsureStreams(ctx, b.JS, broker.StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	publish := func(subject string) time.Time {
		t.Helper()
		ack, err := b.JS.Publish(ctx, subject, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		st, err := b.JS.Stream(ctx, events.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		return m.Time
	}
	for i := range 5 {
		publish(events.OrderSubject("shop", "O-"+string(rune('a'+i))))
	}
	lastShop := publish(events.InSubject("shop"))
	publish(events.InSubject("erp"))
	lastERP := publish(events.OrderSubject("erp", "O-a"))
	publish(events.InSubject("ghost")) // not configured

	known := func(s string) bool { return s == "shop" || s == "erp" }
	observe := observeSources(b.JS, known)
	obs, err := observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := obs["shop"]; got.Count != 6 || !got.Last.Equal(lastShop) {
		t.Errorf("shop: %+v, want 6 events, the last at %v", got, lastShop)
	}
	if got := obs["erp"]; got.Count != 2 || !got.Last.Equal(lastERP) {
		t.Errorf("erp: %+v, want 2 events, the last at %v", got, lastERP)
	}
	if _, ok := obs["ghost"]; ok || len(obs) != 2 {
		t.Errorf("observed %v: only the configured systems", obs)
	}
	// Observed again: the source that sent moves, the other stays.
	lastShop = publish(events.OrderSubject("shop", "O-z"))
	if obs, err = observe(ctx); err != nil {
		t.Fatal(err)
	}
	if got := obs["shop"]; got.Count != 7 || !got.Last.Equal(lastShop) {
		t.Errorf("shop observed again: %+v, want 7 events, the last at %v", got, lastShop)
	}
	if got := obs["erp"]; got.Count != 2 || !got.Last.Equal(lastERP) {
		t.Errorf("erp observed again: %+v, want 2 events, the last at %v", got, lastERP)
	}
}
