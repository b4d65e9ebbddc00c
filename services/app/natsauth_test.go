package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// TestNATSUsers: with nats.users configured the embedded server refuses
// anonymous clients, and driftwatch's own services (its internal identity)
// still do everything: events come in over HTTP and from a publisher over
// NATS, are projected and judged, the alerts reach a subscriber through
// the alerts stream, and an operator reads the log and asks the gate.
func TestNATSUsers(t *testing.T) {
	dir := t.TempDir()
	shopKP, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	shopKey, _ := shopKP.PublicKey()
	opsKP, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	opsKey, _ := opsKP.PublicKey()
	pwFile := filepath.Join(dir, "alerts.pw")
	if err := os.WriteFile(pwFile, []byte("alerts-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.Config(t, apptest.StackYAML+`nats:
  users:
    - {name: shop-middleware, role: publisher, systems: [shop], nkey: `+shopKey+`}
    - {name: alerts, role: subscriber, password_file: `+pwFile+`}
    - {name: ops, role: operator, nkey: `+opsKey+`}
`)
	a, err := app.New(app.Options{
		Config: cfg, DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0",
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = a.Stop(stopCtx)
	})
	url := a.Broker.ClientURL

	if nc, err := nats.Connect(url); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("anonymous client: %v, want an authorization violation", err)
	}

	// Over HTTP: paid, and no order in the ERP (payment_without_order).
	now := time.Now().UTC().Format(time.RFC3339Nano)
	resp, err := http.Post("http://"+a.HTTPAddr()+"/v1/events", "application/json", strings.NewReader(
		`{"event_id":"h1","order_id":"AUTH-PAY","system":"stripe","status":"succeeded","status_field":"payment_intent.status","occurred_at":"`+now+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %s", resp.Status)
	}

	// Over NATS, as the shop's publisher: an order the ERP never hears of
	// (order_not_acknowledged).
	shop, err := nats.Connect(url, nats.Nkey(shopKey, shopKP.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Close()
	pub, err := events.NewPublisher(shop, events.WithoutDeadLetter())
	if err != nil {
		t.Fatal(err)
	}
	res, err := pub.Publish(ctx, events.Event{EventID: "n1", OrderID: "AUTH-SHOP", System: "shop", Status: "unfulfilled", OccurredAt: now})
	if err != nil || res.Outcome != events.Accepted {
		t.Fatalf("publish as shop: %+v %v", res, err)
	}

	// The subscriber reads both alerts from the alerts stream.
	sub, err := nats.Connect(url, nats.UserInfo("alerts", "alerts-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	subJS, _ := jetstream.New(sub)
	cons, err := subJS.CreateConsumer(ctx, events.AlertsStream, jetstream.ConsumerConfig{FilterSubject: events.AlertsPrefix + ">", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	apptest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			var al detector.Alert
			if json.Unmarshal(m.Data(), &al) == nil {
				seen[al.OrderID+" "+al.Pattern] = true
			}
			if err := m.Ack(); err != nil {
				return err
			}
		}
		for _, want := range []string{"AUTH-PAY " + detector.PaymentWithoutOrder, "AUTH-SHOP " + detector.OrderNotAcknowledged} {
			if !seen[want] {
				return fmt.Errorf("no %s alert yet (have %v)", want, seen)
			}
		}
		return nil
	})

	// The operator reads the log and asks the gate (driftwatch's gate
	// connection answers).
	ops, err := nats.Connect(url, nats.Nkey(opsKey, opsKP.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	opsJS, _ := jetstream.New(ops)
	s, err := opsJS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("the log holds %d events, want 2", n)
	}
	reply, err := ops.Request(events.ValidateSubject, []byte(`{"event":{"event_id":"g1","order_id":"AUTH-SHOP","system":"shop","status":"unfulfilled","occurred_at":"`+now+`"},"target":"erp"}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var v events.ValidateReply
	if err := json.Unmarshal(reply.Data, &v); err != nil || v.Decision == "" {
		t.Fatalf("gate reply %s: %v", reply.Data, err)
	}
}

// TestNATSRolesAgree: the configuration accepts exactly the roles the
// broker has permissions for, and NATSAuth protects driftwatch's durables.
func TestNATSRolesAgree(t *testing.T) {
	if strings.Join(config.NATSRoles, ",") != strings.Join(broker.Roles, ",") {
		t.Fatalf("config roles %v, broker roles %v", config.NATSRoles, broker.Roles)
	}
	auth := app.NATSAuth(apptest.Config(t, ""))
	for _, want := range []string{projector.PassConsumer, detector.ConsumerName, projector.SentryConsumer, projector.ConsumerPrefix + "erp"} {
		if !slices.Contains(auth.Durables, want) {
			t.Errorf("%s is not protected from operators: %v", want, auth.Durables)
		}
	}
}
