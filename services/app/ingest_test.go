package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/ingest"
)

func ev(id, system, status string) string {
	return `{"event_id":"` + id + `","order_id":"ORD-1","system":"` + system + `","status":"` + status + `","occurred_at":"2026-11-27T10:04:05-04:00"}`
}

type ingestCase struct {
	name    string
	body    string
	outcome events.Outcome
	code    string // for rejected: the Driftwatch-Error-Code
	dlq     string // for rejected: the DLQ subject's system token
	field   string // for rejected: a field the reason names
}

func ingestCases(prefix string) []ingestCase {
	big := `{"event_id":"` + prefix + `big","order_id":"o","system":"shop","status":"x","occurred_at":"2026-11-27T10:04:05Z","attributes":{"pad":"` + strings.Repeat("p", 70000) + `"}}`
	return []ingestCase{
		{"good", ev(prefix+"e1", "shop", "paid"), events.Accepted, "", "", ""},
		{"duplicate", ev(prefix+"e1", "shop", "paid"), events.Duplicate, "", "", ""},
		{"same id other system", ev(prefix+"e1", "erp", "Pending Fulfillment"), events.Accepted, "", "", ""},
		{"unmapped status is not bad input", ev(prefix+"e2", "shop", "teleported"), events.Accepted, "", "", ""},
		{"malformed json", `{"event_id":"` + prefix + `x",`, events.Rejected, events.CodeMalformedJSON, "_unknown", ""},
		{"missing order_id", `{"event_id":"` + prefix + `m1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, events.Rejected, events.CodeMissingField, "shop", "order_id"},
		{"empty event_id", `{"event_id":"","order_id":"o","system":"erp","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, events.Rejected, events.CodeInvalidField, "erp", "event_id"},
		{"timestamp without offset", `{"event_id":"` + prefix + `t1","order_id":"o","system":"amazon","status":"Shipped","occurred_at":"2026-11-27T10:04:05"}`, events.Rejected, events.CodeInvalidField, "amazon", "occurred_at"},
		{"unknown system", ev(prefix+"u1", "pos", "paid"), events.Rejected, events.CodeUnknownSystem, "pos", "system"},
		{"over 64 KiB", big, events.Rejected, events.CodeTooLarge, "_unknown", ""},
		{"ack without ack_of", `{"event_id":"` + prefix + `a1","order_id":"o","system":"erp","kind":"ack","occurred_at":"2026-11-27T10:04:05Z"}`, events.Rejected, events.CodeMissingField, "erp", "ack_of"},
	}
}

func checkDLQ(t *testing.T, env *apptest.Env, c ingestCase) {
	t.Helper()
	msg, err := env.LastDLQ(t, c.dlq)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if string(msg.Data) != c.body {
		t.Fatalf("%s: DLQ holds other bytes (%d vs %d)", c.name, len(msg.Data), len(c.body))
	}
	if got := msg.Header.Get(events.HeaderErrorCode); got != c.code {
		t.Fatalf("%s: Driftwatch-Error-Code %q, want %q", c.name, got, c.code)
	}
	if reason := msg.Header.Get(events.HeaderError); reason == "" || (c.field != "" && !strings.Contains(reason, c.field)) {
		t.Fatalf("%s: Driftwatch-Error %q does not name %q", c.name, reason, c.field)
	}
}

func TestIngestOverHTTP(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	for _, c := range ingestCases("h-") {
		status, body := env.Do(t, "POST", "/v1/events", "application/json", c.body)
		var res events.Result
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatalf("%s: reply %d %q: %v", c.name, status, body, err)
		}
		if res.Outcome != c.outcome {
			t.Fatalf("%s: outcome %q (%s), want %q", c.name, res.Outcome, body, c.outcome)
		}
		wantStatus := map[events.Outcome]int{events.Accepted: 202, events.Duplicate: 200, events.Rejected: 400}[c.outcome]
		if status != wantStatus {
			t.Fatalf("%s: HTTP %d, want %d", c.name, status, wantStatus)
		}
		if c.outcome == events.Rejected {
			if res.Code != c.code || (c.field != "" && !strings.Contains(res.Error, c.field)) {
				t.Fatalf("%s: reply %+v", c.name, res)
			}
			checkDLQ(t, env, c)
		}
	}
	assertStored(t, env, 3)
}

func TestIngestNDJSON(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	cases := ingestCases("n-")
	var lines []string
	for _, c := range cases {
		lines = append(lines, c.body)
	}
	status, body := env.Do(t, "POST", "/v1/events", "application/x-ndjson", strings.Join(lines, "\n")+"\n\n")
	if status != 200 {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	var reply struct {
		Accepted, Duplicate, Rejected int
		Results                       []events.Result
	}
	if err := json.Unmarshal([]byte(body), &reply); err != nil {
		t.Fatal(err)
	}
	if len(reply.Results) != len(cases) {
		t.Fatalf("%d results for %d lines", len(reply.Results), len(cases))
	}
	for i, c := range cases {
		if reply.Results[i].Outcome != c.outcome {
			t.Errorf("line %d %s: %q, want %q (%s)", i+1, c.name, reply.Results[i].Outcome, c.outcome, reply.Results[i].Error)
		}
	}
	if reply.Accepted != 3 || reply.Duplicate != 1 || reply.Rejected != 7 {
		t.Fatalf("counts %d/%d/%d", reply.Accepted, reply.Duplicate, reply.Rejected)
	}
	assertStored(t, env, 3)
}

func TestIngestOverNATS(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	cfg := env.App
	_ = cfg
	pub, err := events.NewPublisher(env.NC, events.WithSystems(apptest.Config(t, "").Known))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range ingestCases("q-") {
		res, err := pub.PublishRaw(ctx, []byte(c.body))
		if res.Outcome != c.outcome {
			t.Fatalf("%s: outcome %q, err %v", c.name, res.Outcome, err)
		}
		if c.outcome == events.Rejected {
			if err == nil || events.ErrorCode(err) != c.code {
				t.Fatalf("%s: err %v, want code %s", c.name, err, c.code)
			}
			checkDLQ(t, env, c)
		} else if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	// A Go-built event through Publish, and the message id header on the stream.
	res, err := pub.Publish(ctx, events.Event{EventID: "go-1", OrderID: "ORD-9", System: "stripe", Status: "succeeded", StatusField: "payment_intent.status", OccurredAt: time.Now().Format(time.RFC3339)})
	if err != nil || res.Outcome != events.Accepted {
		t.Fatalf("Publish: %+v %v", res, err)
	}
	s, _ := env.JS.Stream(ctx, events.EventsStream)
	msg, err := s.GetMsg(ctx, res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "driftwatch.in.stripe" || msg.Header.Get(events.HeaderMsgID) != "stripe:go-1" {
		t.Fatalf("stored %s with Nats-Msg-Id %q", msg.Subject, msg.Header.Get(events.HeaderMsgID))
	}
	assertStored(t, env, 4)
}

func assertStored(t *testing.T, env *apptest.Env, want uint64) {
	t.Helper()
	s, err := env.JS.Stream(context.Background(), events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != want {
		t.Fatalf("stream holds %d events, want %d", info.State.Msgs, want)
	}
	if info.Config.Storage != jetstream.FileStorage || info.Config.Duplicates != 2*time.Hour {
		t.Fatalf("stream config: %v dedupe %v", info.Config.Storage, info.Config.Duplicates)
	}
}

// TestDeadLetterFailureIsAServerError: when the dead-letter stream cannot
// take rejected input, the input was kept nowhere; POST /v1/events answers
// 503 (for one event and for a batch holding it), never an ordinary
// rejection the caller would take for "kept with its reason". Its twin, a
// good event, is accepted as usual.
func TestDeadLetterFailureIsAServerError(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	if err := env.JS.DeleteStream(context.Background(), events.DLQStream); err != nil {
		t.Fatal(err)
	}
	bad := `{"event_id":"dl1","order_id":"o","system":"shop","status":"paid"}` // no occurred_at
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", bad); status != 503 || !strings.Contains(body, "dead-letter") {
		t.Fatalf("one bad event with the dead-letter stream gone: %d %s", status, body)
	}
	batch := ev("dl2", "shop", "paid") + "\n" + bad + "\n"
	if status, body := env.Do(t, "POST", "/v1/events", "application/x-ndjson", batch); status != 503 {
		t.Fatalf("a batch holding it: %d %s", status, body)
	}
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", ev("dl3", "shop", "paid")); status != 202 {
		t.Fatalf("a good event: %d %s", status, body)
	}
}

// TestRecreatedStreamStopsLoudly: the events stream is deleted and created
// again under a running driftwatch. Its projector must not resume at its
// checkpoint on the new stream (skipping or misreading events): the app
// reports a fatal error naming the changed stream, and /readyz says why.
// Before the change, a healthy app is ready.
func TestRecreatedStreamStopsLoudly(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	if status, body := env.Do(t, "GET", "/readyz", "", ""); status != 200 {
		t.Fatalf("a healthy app: %d %s", status, body)
	}
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", ev("rs1", "shop", "paid")); status != 202 {
		t.Fatalf("publish: %d %s", status, body)
	}
	env.WaitApplied(t)
	ctx := context.Background()
	stream, err := env.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if err := env.JS.DeleteStream(ctx, events.EventsStream); err != nil {
		t.Fatal(err)
	}
	if _, err := env.JS.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-env.App.Fatal():
		if !strings.Contains(err.Error(), "stream changed") {
			t.Fatalf("fatal error %v does not say the stream changed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the app went on with a recreated stream")
	}
	if status, body := env.Do(t, "GET", "/readyz", "", ""); status != 503 || !strings.Contains(body, "stream changed") {
		t.Fatalf("/readyz after the stream changed: %d %s", status, body)
	}
}

// TestResendCostsWhatSendingOnceDid: a batch re-sent whole is reported
// duplicate event by event with the sequences of the first sending, and
// costs at most, per atomic batch of 500, the refused batch and its two
// refused halves (it used to split down to 16 events: 63 refused batches
// per 500); 5,000 copies of one event cost one publish.
func TestResendCostsWhatSendingOnceDid(t *testing.T) {
	cfg := apptest.Config(t, "")
	env := apptest.Start(t, cfg, "")
	pub, err := events.NewPublisher(env.NC, events.WithSystems(cfg.Known))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	batch := make([][]byte, 2000)
	for i := range batch {
		batch[i] = []byte(fmt.Sprintf(`{"event_id":"rs-%d","order_id":"RS-%d","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05Z"}`, i, i))
	}
	first, err := pub.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	before := pub.Stats()
	again, err := pub.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	after := pub.Stats()
	for i := range again {
		if again[i].Outcome != events.Duplicate || again[i].Seq != first[i].Seq || first[i].Outcome != events.Accepted {
			t.Fatalf("event %d: first %+v, again %+v", i, first[i], again[i])
		}
	}
	if refused := after.AtomicRefused - before.AtomicRefused; refused > 3*2000/events.DefaultAtomicBatch {
		t.Fatalf("re-sending 2,000 events cost %d refused atomic batches, want at most 3 per batch of %d", refused, events.DefaultAtomicBatch)
	}
	copies := make([][]byte, 5000)
	for i := range copies {
		copies[i] = []byte(`{"event_id":"one","order_id":"RS-ONE","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05Z"}`)
	}
	before = pub.Stats()
	res, err := pub.PublishBatch(ctx, copies)
	if err != nil {
		t.Fatal(err)
	}
	after = pub.Stats()
	if sent := after.SingleEvents + after.AtomicEvents - before.SingleEvents - before.AtomicEvents; sent != 1 {
		t.Fatalf("5,000 copies of one event were published %d times, want once", sent)
	}
	if res[0].Outcome != events.Accepted || res[4999].Outcome != events.Duplicate || res[4999].Seq != res[0].Seq {
		t.Fatalf("copies: first %+v, last %+v", res[0], res[4999])
	}
}

// TestNDJSONBodyIsBounded: an NDJSON body over ingest.MaxBatchBody is
// refused with 413, whether it declares its length or streams it.
func TestNDJSONBodyIsBounded(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	line := ev("big-0", "shop", "unfulfilled") + "\n"
	body := strings.Repeat(line, ingest.MaxBatchBody/len(line)+1)
	status, out := env.Do(t, "POST", "/v1/events", "application/x-ndjson", body)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(out, "at most 64 MiB") {
		t.Fatalf("declared length: %d %s", status, out)
	}
	req, err := http.NewRequest("POST", env.BaseURL+"/v1/events", io.MultiReader(strings.NewReader(body))) // no Content-Length
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(data), "at most 64 MiB") {
		t.Fatalf("streamed: %d %s", resp.StatusCode, data)
	}
}
