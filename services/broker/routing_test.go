package broker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
)

// TestEventsStreamRoutesByPartition: the events stream stores an event
// published with its order in the subject under its system alone for one
// instance, and under the order's partition (computed by the server as
// events.Partition computes it) once instances share the orders; the
// stream records from which sequence its subjects carry that count, and
// moves it only when the count changes.
func TestEventsStreamRoutesByPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", SyncInterval: time.Minute,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	settings := StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour}
	stored := func(subject string) (string, uint64) {
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
		return m.Subject, ack.Sequence
	}
	routing := func() Routing {
		t.Helper()
		st, err := b.JS.Stream(ctx, events.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		return RoutingOf(st.CachedInfo().Config)
	}
	ensure := func(n int) {
		t.Helper()
		settings.Partitions = n
		if err := EnsureStreams(ctx, b.JS, settings); err != nil {
			t.Fatal(err)
		}
	}

	ensure(0)
	if got, _ := stored("driftwatch.in.shop.A-1001"); got != "driftwatch.in.shop" {
		t.Fatalf("one instance: stored as %s", got)
	}
	if r := routing(); r != (Routing{}) {
		t.Fatalf("one instance: routing %+v", r)
	}

	ensure(16)
	r := routing()
	_, last := stored("driftwatch.in.shop")
	if r.Partitions != 16 || r.From != last {
		t.Fatalf("after the first start with 16 partitions: routing %+v, want from %d", r, last)
	}
	for _, order := range []string{"A-1001", "#1002", "o-3", "ORDER_4"} {
		if got, want := mustStored(stored("driftwatch.in.shop."+order)), events.InSubject("shop")+"."+strconv.Itoa(events.Partition(order, 16)); got != want {
			t.Errorf("order %s stored as %s, want %s", order, got, want)
		}
	}
	if got, _ := stored("driftwatch.in.shop"); got != "driftwatch.in.shop" {
		t.Errorf("the bare subject stored as %s", got)
	}
	if got, _ := stored("driftwatch.in.shop.a.b"); got != "driftwatch.in.shop.a.b" {
		t.Errorf("a longer subject stored as %s", got)
	}

	ensure(16)
	if again := routing(); again != r {
		t.Fatalf("a restart with the same count moved the routing: %+v, was %+v", again, r)
	}
	ensure(8)
	r8 := routing()
	_, last = stored("driftwatch.in.shop.A-1001")
	if r8.Partitions != 8 || r8.From != last {
		t.Fatalf("after the count changed to 8: routing %+v, want from %d", r8, last)
	}
}

func mustStored(subject string, _ uint64) string { return subject }
