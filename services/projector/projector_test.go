package projector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
	"github.com/driftwatch/driftwatch/services/rebuild"
)

func body(id, order, system, status, at string) []byte {
	return []byte(`{"event_id":"` + id + `","order_id":"` + order + `","system":"` + system + `","status":"` + status + `","occurred_at":"` + at + `"}`)
}

// rawPublish publishes straight to the stream, bypassing validation, with an
// optional message id.
func rawPublish(t *testing.T, env *apptest.Env, subject string, data []byte, msgID string) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	if msgID != "" {
		msg.Header.Set(events.HeaderMsgID, msgID)
	}
	if _, err := env.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func TestOutOfOrderDuplicatesAndOrderView(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	// Newest first, with mixed offsets; then an older one arriving late.
	rawPublish(t, env, "driftwatch.in.shop", body("s2", "ORD-1", "shop", "fulfilled", "2026-11-27T10:00:00Z"), "shop:s2")
	rawPublish(t, env, "driftwatch.in.shop", body("s1", "ORD-1", "shop", "unfulfilled", "2026-11-27T15:00:00+05:30"), "shop:s1")
	rawPublish(t, env, "driftwatch.in.erp", body("n1", "ORD-1", "erp", "Pending Fulfillment", "2026-11-27T05:01:00-05:00"), "erp:n1")
	// Within the dedupe window: JetStream drops it.
	rawPublish(t, env, "driftwatch.in.erp", body("n1", "ORD-1", "erp", "Pending Fulfillment", "2026-11-27T05:01:00-05:00"), "erp:n1")
	// Beyond the window (no or another message id): the ledger drops it.
	rawPublish(t, env, "driftwatch.in.erp", body("n1", "ORD-1", "erp", "Billed", "2026-11-27T12:00:00Z"), "")
	rawPublish(t, env, "driftwatch.in.erp", []byte(`{"event_id":"k1","order_id":"ORD-1","system":"erp","kind":"ack","ack_of":"shop:s2","occurred_at":"2026-11-27T10:00:03Z"}`), "erp:k1")
	env.WaitApplied(t)

	shop, err := env.App.Store.Row("ORD-1", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if shop.State() != canonical.Shipped || shop.Last.EventID != "s2" {
		t.Fatalf("shop: %v from %s", shop.State(), shop.Last.EventID)
	}
	erp, _ := env.App.Store.Row("ORD-1", "erp")
	if erp.State() != canonical.Confirmed || erp.Events != 2 { // the status and the ack
		t.Fatalf("erp: %v, %d events", erp.State(), erp.Events)
	}

	status, out := env.Do(t, "GET", "/v1/orders/ORD-1", "", "")
	if status != 200 {
		t.Fatalf("order view: %d %s", status, out)
	}
	for _, want := range []string{`"system":"shop"`, `"canonical":"shipped"`, `"status":"Pending Fulfillment"`, `"has_record":false`, `"ack_event_id":"k1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("order view lacks %s: %s", want, out)
		}
	}
	status, out = env.Do(t, "GET", "/v1/orders/ORD-1/timeline", "", "")
	var tl struct {
		Events []struct {
			Seq        uint64
			EventID    string `json:"event_id"`
			Late       bool
			OccurredAt string `json:"occurred_at"`
			ReceivedAt string `json:"received_at"`
			AckedBy    []any  `json:"acked_by"`
		}
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil || status != 200 {
		t.Fatalf("timeline %d %s", status, out)
	}
	if len(tl.Events) != 4 || tl.Events[0].EventID != "s2" || !tl.Events[1].Late || len(tl.Events[0].AckedBy) != 1 {
		t.Fatalf("timeline: %s", out)
	}
	for i := 1; i < len(tl.Events); i++ {
		if tl.Events[i].Seq <= tl.Events[i-1].Seq || tl.Events[i].ReceivedAt == "" || tl.Events[i].OccurredAt == "" {
			t.Fatalf("timeline not in log order or missing a timestamp: %s", out)
		}
	}
	if status, out := env.Do(t, "GET", "/v1/orders/NOPE", "", ""); status != 404 || !strings.Contains(out, "order_not_found") {
		t.Fatalf("unknown order: %d %s", status, out)
	}
	status, out = env.Do(t, "GET", "/v1/status", "", "")
	if status != 200 || !strings.Contains(out, `"name":"dw-proj-erp"`) || !strings.Contains(out, `"last_seq":5`) {
		t.Fatalf("status: %d %s", status, out)
	}
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	poison := map[string][]byte{
		"malformed":        []byte(`{"event_id":`),
		"no offset":        body("p2", "O", "shop", "paid", "2026-11-27T10:00:00"),
		"subject mismatch": body("p3", "O", "erp", "Billed", "2026-11-27T10:00:00Z"),
		"missing order":    []byte(`{"event_id":"p4","system":"shop","status":"paid","occurred_at":"2026-11-27T10:00:00Z"}`),
	}
	good := 0
	for i := 0; i < 50; i++ {
		rawPublish(t, env, "driftwatch.in.shop", body(fmt.Sprintf("g%d", i), fmt.Sprintf("O%d", i), "shop", "unfulfilled", "2026-11-27T10:00:00Z"), "")
		good++
		if i%10 == 0 {
			for name, p := range poison {
				rawPublish(t, env, "driftwatch.in.shop", p, fmt.Sprintf("%s-%d", name, i))
			}
		}
	}
	// An unknown system's subject: the sentry dead-letters it.
	rawPublish(t, env, "driftwatch.in.pos", body("x1", "O", "pos", "paid", "2026-11-27T10:00:00Z"), "")
	env.WaitApplied(t)
	for i := 0; i < good; i++ {
		if _, err := env.App.Store.Row(fmt.Sprintf("O%d", i), "shop"); err != nil {
			t.Fatalf("good event %d not applied: %v", i, err)
		}
	}
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := env.App.Status(context.Background())
		if err != nil {
			return err
		}
		if st.DLQ.Messages != uint64(5*len(poison)+1) {
			return fmt.Errorf("DLQ holds %d, want %d", st.DLQ.Messages, 5*len(poison)+1)
		}
		return nil
	})
	msg, err := env.LastDLQ(t, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(events.HeaderErrorCode) == "" || msg.Header.Get(events.HeaderError) == "" || msg.Header.Get("Driftwatch-Log-Seq") == "" {
		t.Fatalf("dead letter headers: %v", msg.Header)
	}
	pos, err := env.LastDLQ(t, "pos")
	if err != nil || pos.Header.Get(events.HeaderErrorCode) != events.CodeUnknownSystem {
		t.Fatalf("unknown system dead letter: %v %v", pos, err)
	}
}

// TestRestartResumesAndRebuildEqualsIncremental stops driftwatch mid-stream,
// restarts it on the same data, checks nothing is lost or applied twice, and
// that a rebuild from the log equals the incremental store byte for byte.
func TestRestartResumesAndRebuildEqualsIncremental(t *testing.T) {
	dir := t.TempDir()
	cfg := apptest.Config(t, "")
	env := apptest.Start(t, cfg, dir)
	publishMix(t, env, 0, 600)
	env.Stop()
	env = apptest.Start(t, cfg, dir)
	publishMix(t, env, 600, 1200)
	env.WaitApplied(t)

	var incremental bytes.Buffer
	if err := env.App.Store.Dump(&incremental); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "rebuilt")
	st, err := rebuild.Build(context.Background(), rebuild.Options{JS: env.App.Broker.JS, Applier: projector.NewApplier(cfg), Dir: fresh})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 1200+120 { // every event plus the in-log duplicates
		t.Fatalf("rebuild read %d events", st.Events)
	}
	rebuilt, err := projections.Open(fresh, projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	var fromLog bytes.Buffer
	if err := rebuilt.Dump(&fromLog); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(incremental.Bytes(), fromLog.Bytes()) {
		a, b := strings.Split(incremental.String(), "\n"), strings.Split(fromLog.String(), "\n")
		for i := 0; i < len(a) && i < len(b); i++ {
			if a[i] != b[i] {
				t.Fatalf("rebuild differs from incremental processing at line %d:\nincremental %s\nrebuilt     %s", i, a[i], b[i])
			}
		}
		t.Fatalf("rebuild differs from incremental processing (%d vs %d bytes)", fromLog.Len(), incremental.Len())
	}
	// Every order's events were applied exactly once.
	for i := 0; i < 1200; i += 97 {
		row, err := env.App.Store.Row(fmt.Sprintf("M%d", i%300), "shop")
		if err != nil {
			t.Fatal(err)
		}
		if row.Events != 4 {
			t.Fatalf("order M%d: shop applied %d events, want 4", i%300, row.Events)
		}
	}
	ck, _ := rebuilt.Checkpoints()
	if ck["dw-proj-shop"] == 0 {
		t.Fatalf("rebuild set no checkpoints: %v", ck)
	}
}

// publishMix publishes events i in [from, to): order M(i%300), shop, with
// occurred_at going backwards every third event and a duplicate (no message
// id, so it reaches the log) every tenth.
func publishMix(t *testing.T, env *apptest.Env, from, to int) {
	t.Helper()
	statuses := []string{"unfulfilled", "partial", "fulfilled", "restocked"}
	for i := from; i < to; i++ {
		at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		if i%3 == 0 {
			at = at.Add(-2 * time.Hour)
		}
		loc := time.FixedZone("", (i%5-2)*3600)
		b := body(fmt.Sprintf("m%d", i), fmt.Sprintf("M%d", i%300), "shop", statuses[i%4], at.In(loc).Format(time.RFC3339))
		rawPublish(t, env, "driftwatch.in.shop", b, fmt.Sprintf("shop:m%d", i))
		if i%10 == 0 {
			rawPublish(t, env, "driftwatch.in.shop", b, "")
		}
	}
}

// TestFailedSessionWhileStatusIsRead: the projector's and the detector's
// consumers are deleted under them, so their sessions fail and each
// recreates its consumer, while status requests read the consumers all
// along (as GET /v1/status and a metrics scrape do). Under the race
// detector this fails if the handle is replaced unguarded; and both must
// go on applying from their checkpoints afterwards. Both shapes: the one
// pass, and a consumer per system with the detector's own.
func TestFailedSessionWhileStatusIsRead(t *testing.T) {
	t.Run("one pass", func(t *testing.T) {
		failSessionsWhileStatusIsRead(t, false, projector.PassConsumer)
	})
	t.Run("per system", func(t *testing.T) {
		failSessionsWhileStatusIsRead(t, true, "dw-proj-shop", detector.ConsumerName)
	})
}

func failSessionsWhileStatusIsRead(t *testing.T, perSystem bool, consumers ...string) {
	env := apptest.Start(t, apptest.Config(t, ""), "", func(o *app.Options) { o.PerSystemReaders = perSystem })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil { // each Status is a request to the server: no pause needed
			env.App.Projector.Status(ctx)
			env.App.Detector.Status(ctx)
		}
	}()
	defer func() { cancel(); <-done }()
	stream, err := env.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range consumers {
		if err := stream.DeleteConsumer(ctx, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	rawPublish(t, env, "driftwatch.in.shop", []byte(`{"event_id":"fs1","order_id":"FS-1","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05Z"}`), "shop:fs1")
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if env.App.Detector.Applied() == 0 {
			return fmt.Errorf("the detector has not resumed")
		}
		for _, st := range env.App.Projector.Status(ctx) {
			if st.System == "shop" && st.AppliedSeq == 0 {
				return fmt.Errorf("the shop projector has not resumed")
			}
		}
		return nil
	})
}

// TestJunkSubjectsCostOneConsumer: events on the subjects of many unknown
// systems, in two waves (the second adds subjects and more events on the
// first ones), are each dead-lettered once, by one sentry consumer,
// however many subjects there are.
func TestJunkSubjectsCostOneConsumer(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	ctx := context.Background()
	publish := func(from, to, each int) {
		for i := from; i < to; i++ {
			for j := 0; j < each; j++ {
				rawPublish(t, env, fmt.Sprintf("driftwatch.in.junk%03d", i), body(fmt.Sprintf("j%d-%d-%d", i, j, from), "O", "junk", "paid", "2026-11-27T10:00:00Z"), "")
			}
		}
	}
	sentryDead := func(want uint64) func() error {
		return func() error {
			for _, st := range env.App.Projector.Status(ctx) {
				if st.Name == projector.SentryConsumer {
					if st.DeadLettered != want {
						return fmt.Errorf("the sentry dead-lettered %d, want %d", st.DeadLettered, want)
					}
					return nil
				}
			}
			return fmt.Errorf("no sentry consumer yet")
		}
	}
	publish(0, 40, 1)
	apptest.CheckFor(t, 30*time.Second, 100*time.Millisecond, sentryDead(40))
	publish(30, 60, 2) // ten old subjects again, twenty new ones
	apptest.CheckFor(t, 30*time.Second, 100*time.Millisecond, sentryDead(40+60))
	stream, err := env.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var sentries []string
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, "dw-sentry") {
			sentries = append(sentries, name)
		}
	}
	if len(sentries) != 1 {
		t.Fatalf("sentry consumers: %v, want one", sentries)
	}
}

// TestLogGapStopsThePass: events deleted from the log before the one pass
// read them stop it (and the app, through Fatal) with ErrLogGap, naming
// the missing sequences, instead of being skipped: neither their
// projections nor their judgement would ever happen.
func TestLogGapStopsThePass(t *testing.T) {
	cfg := apptest.Config(t, "")
	dir := t.TempDir()
	env := apptest.Start(t, cfg, dir, func(o *app.Options) { o.Services = []string{app.ServiceIngest} })
	for i := range 6 {
		rawPublish(t, env, "driftwatch.in.shop", body(fmt.Sprintf("g%d", i), "G-1", "shop", "unfulfilled", "2026-11-27T10:00:00Z"), "")
	}
	stream, err := env.JS.Stream(context.Background(), events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{4, 5} {
		if err := stream.DeleteMsg(context.Background(), seq); err != nil {
			t.Fatal(err)
		}
	}
	env.Stop()
	env = apptest.Start(t, cfg, dir)
	select {
	case err := <-env.App.Fatal():
		if !errors.Is(err, consume.ErrLogGap) || !strings.Contains(err.Error(), "events 4 to 5") {
			t.Fatalf("the pass stopped with %v, want the gap of events 4 to 5", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pass went on over a hole in the log")
	}
}
