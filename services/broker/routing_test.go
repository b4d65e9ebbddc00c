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
	b := startTestBroker(t)
	settings := StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour}
	stored := func(subject string) (string, uint64) {
		t.Helper()
		ack, err := b.JS.Publish(ctx, subject, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		return storedSubject(t, b, ack.Sequence), ack.Sequence
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
		got, _ := stored("driftwatch.in.shop." + order)
		if want := events.InSubject("shop") + "." + strconv.Itoa(events.Partition(order, 16)); got != want {
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

// storedSubject is the subject the events stream stored its message seq
// under.
func storedSubject(t *testing.T, b *Broker, seq uint64) string {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Subject
}

// TestPublisherNamesTheOrderOnlyWhereTheStreamRoutes: the events library
// puts the order in the subject only when the events stream's transform
// takes it; on a stream without one (a server of an earlier version) it
// publishes on driftwatch.in.<system>, as before.
func TestPublisherNamesTheOrderOnlyWhereTheStreamRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := startTestBroker(t)
	cfg := StreamConfigs(StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour})[0]
	cfg.SubjectTransform = nil // as earlier versions made it
	if _, err := b.JS.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	publish := func(order string) string {
		t.Helper()
		pub, err := events.NewPublisher(b.Conn)
		if err != nil {
			t.Fatal(err)
		}
		res, err := pub.PublishRaw(ctx, []byte(`{"event_id":"e-`+order+`","order_id":"`+order+`","system":"shop","status":"paid","occurred_at":"2026-12-07T10:00:00Z"}`))
		if err != nil {
			t.Fatal(err)
		}
		return storedSubject(t, b, res.Seq)
	}
	if got := publish("A-1"); got != "driftwatch.in.shop" {
		t.Fatalf("without the transform: published on %s", got)
	}
	if err := EnsureStreams(ctx, b.JS, StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if got, want := publish("A-2"), "driftwatch.in.shop."+strconv.Itoa(events.Partition("A-2", 4)); got != want {
		t.Fatalf("with the transform: stored as %s, want %s", got, want)
	}
}

// startTestBroker starts an embedded server with JetStream on file storage in
// a temporary folder, on a random port, stopped when the test ends.
func startTestBroker(t *testing.T) *Broker {
	t.Helper()
	b, err := Start(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", SyncInterval: time.Minute,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}
