package gate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

func TestGateOverNATSAndHTTP(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	ctx := context.Background()
	pub, _ := events.NewPublisher(env.NC)
	now := time.Now().UTC().Format(time.RFC3339)
	for _, e := range []string{
		`{"event_id":"n1","order_id":"G-1","system":"erp","status":"Pending Fulfillment","occurred_at":"` + now + `"}`,
		`{"event_id":"n2","order_id":"G-2","system":"erp","status":"Cancelled","occurred_at":"` + now + `"}`,
	} {
		if _, err := pub.PublishRaw(ctx, []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	apptest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, err := env.App.Store.Row("G-2", "erp"); err != nil {
			return err
		}
		return nil
	})
	shipped := events.Event{EventID: "s1", OrderID: "G-1", System: "shop", Status: "fulfilled", OccurredAt: now}

	// Through NATS, with the events module's one-line helper.
	reply, err := events.Validate(ctx, env.NC, shipped, "")
	if err != nil || !reply.Allowed() || reply.Current.Status != "Pending Fulfillment" || reply.Current.Canonical != "confirmed" || reply.Incoming.Canonical != "shipped" {
		t.Fatalf("confirmed -> shipped: %+v %v", reply, err)
	}
	afterCancel := shipped
	afterCancel.OrderID = "G-2"
	reply, err = events.Validate(ctx, env.NC, afterCancel, "erp")
	if err != nil || reply.Allowed() || reply.Pattern != detector.IllegalTransition || reply.AlertID == "" || !strings.Contains(reply.Reason, "cancelled") {
		t.Fatalf("cancelled -> shipped: %+v %v", reply, err)
	}
	unknown := shipped
	unknown.OrderID = "G-NEW"
	reply, err = events.Validate(ctx, env.NC, unknown, "")
	if err != nil || reply.Allowed() || reply.Current.HasRecord || !strings.Contains(reply.Reason, "never seen") {
		t.Fatalf("shipped on an unknown order: %+v %v", reply, err)
	}
	// Malformed requests: an error reply with the reason, never a flag.
	for name, body := range map[string]string{
		"not json":      `{"event":`,
		"no event":      `{"target":"erp"}`,
		"invalid event": `{"event":{"event_id":"x","order_id":"o","system":"shop","status":"a","occurred_at":"2026-11-27T10:00:00"}}`,
		// An unknown target is refused: never judged against, nor a
		// metric label.
		"unknown target": `{"event":{"event_id":"x","order_id":"o","system":"shop","status":"paid","occurred_at":"2026-11-27T10:00:00Z"},"target":"junk-42"}`,
	} {
		msg, err := env.NC.Request(events.ValidateSubject, []byte(body), 2*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if msg.Header.Get("Nats-Service-Error-Code") != "400" || msg.Header.Get("Nats-Service-Error") == "" {
			t.Fatalf("%s: want a 400 error reply, got headers %v data %s", name, msg.Header, msg.Data)
		}
	}
	if _, err := events.ValidateRaw(ctx, env.NC, []byte(`{"event_id":"x"}`), ""); err == nil {
		t.Fatal("helper: a malformed event must be an error")
	} else {
		var ge *events.GateError
		if !errors.As(err, &ge) || ge.Code != "400" {
			t.Fatalf("helper error: %v", err)
		}
	}

	// Through HTTP.
	status, body := env.Do(t, "POST", "/v1/validate", "application/json", `{"event":{"event_id":"h1","order_id":"G-1","system":"shop","status":"fulfilled","occurred_at":"`+now+`"},"target":"erp"}`)
	if status != 200 || !strings.Contains(body, `"decision":"allow"`) {
		t.Fatalf("HTTP allow: %d %s", status, body)
	}
	status, body = env.Do(t, "POST", "/v1/validate", "application/json", `{"event":{"event_id":"h2","order_id":"G-2","system":"shop","status":"fulfilled","occurred_at":"`+now+`"}}`)
	if status != 200 || !strings.Contains(body, `"decision":"flag"`) || !strings.Contains(body, `"pattern":"illegal_transition"`) {
		t.Fatalf("HTTP flag: %d %s", status, body)
	}
	status, body = env.Do(t, "POST", "/v1/validate", "application/json", `{"event":{"event_id":"h3","order_id":"G-1","system":"shop","occurred_at":"`+now+`"}}`)
	if status != 400 || !strings.Contains(body, "status") {
		t.Fatalf("HTTP malformed: %d %s", status, body)
	}

	// Each flag is recorded as a mismatch (detected_by validate) and published.
	apptest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		m, err := detector.GetMismatch(env.App.Store, detector.AlertID("G-2", detector.IllegalTransition, "shop", "erp"))
		if err != nil {
			return err
		}
		if m.DetectedBy != detector.ByValidate {
			return fmt.Errorf("detected_by %s", m.DetectedBy)
		}
		return nil
	})

	// micro's stats show the endpoint and its request counts.
	requests, errs := 0, 0
	for _, svc := range env.App.Gate.Services() {
		stats := svc.Stats()
		if len(stats.Endpoints) != 1 || stats.Endpoints[0].Name != "validate" || stats.Endpoints[0].Subject != events.ValidateSubject {
			t.Fatalf("micro stats: %+v", stats)
		}
		requests += stats.Endpoints[0].NumRequests
		errs += stats.Endpoints[0].NumErrors
	}
	if requests < 7 || errs < 4 {
		t.Fatalf("micro stats: %d requests, %d errors", requests, errs)
	}
	// And any NATS client can discover it, as `nats micro info driftwatch` does.
	msg, err := env.NC.Request("$SRV.INFO.driftwatch", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil || info.Name != "driftwatch" || len(info.Endpoints) != 1 || info.Endpoints[0].Subject != events.ValidateSubject {
		t.Fatalf("$SRV.INFO: %s %v", msg.Data, err)
	}
}
