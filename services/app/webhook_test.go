package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/webhook"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/ingest"
)

// TestPlatformWebhooksEndToEnd posts the platforms' own documentation
// payloads, signed as the platforms sign them, to a running driftwatch:
// Shopify orders/updated and orders/cancelled (signed with the second of
// two secrets, as during a rotation), Stripe payment_intent.succeeded and
// EasyPost tracker.updated. The ERP holds the Shopify order: its
// cancellation not reaching the ERP fires cancel_not_propagated, and the
// Stripe payment of an order no system has fires payment_without_order. A
// retried Shopify delivery is stored once; a bad signature is refused
// (401) and kept in the dead-letter stream with its reason and no secret;
// a verified topic driftwatch does not translate is kept there too (202).
func TestPlatformWebhooksEndToEnd(t *testing.T) {
	t.Setenv("DRIFTWATCH_WEBHOOK_SECRET_SHOP", "shop-new-secret,shop-old-secret")
	t.Setenv("DRIFTWATCH_WEBHOOK_SECRET_STRIPE", "whsec_stripe-secret")
	t.Setenv("DRIFTWATCH_WEBHOOK_SECRET_CARRIER", "easypost-secret")
	env := apptest.Start(t, apptest.Config(t, ""), "")
	payload := func(platform, name string) []byte {
		data, err := os.ReadFile("../../events/webhook/testdata/" + platform + "/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	post := func(system, platform string, body []byte, secret string, extra map[string]string) (int, ingest.WebhookReply, http.Header) {
		t.Helper()
		path := "/v1/webhooks/" + system
		req, err := http.NewRequest("POST", env.BaseURL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = webhook.SignWith(platform, body, []byte(secret), time.Now(), webhook.Options{Path: path})
		req.Header.Set("Content-Type", "application/json")
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var reply ingest.WebhookReply
		_ = json.Unmarshal(data, &reply)
		if resp.StatusCode == 0 {
			t.Fatalf("%s", data)
		}
		return resp.StatusCode, reply, resp.Header
	}
	outcomes := func(r ingest.WebhookReply) string {
		var out []string
		for _, res := range r.Results {
			out = append(out, string(res.Outcome))
		}
		return strings.Join(out, ",")
	}

	const shopOrder = "820982911946154508"
	now := time.Now().UTC().Format(time.RFC3339)
	if status, body := env.Do(t, "POST", "/v1/events", "application/json",
		`{"event_id":"erp-1","order_id":"`+shopOrder+`","system":"erp","status":"Pending Fulfillment","occurred_at":"`+now+`"}`); status != 202 {
		t.Fatalf("ERP event: %d %s", status, body)
	}
	shopHeaders := func(topic, id string) map[string]string {
		return map[string]string{"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": id}
	}
	if status, r, _ := post("shop", webhook.Shopify, payload("shopify", "orders_updated"), "shop-old-secret", shopHeaders("orders/updated", "d-upd-1")); status != 200 || !strings.Contains(outcomes(r), "accepted") || strings.Contains(outcomes(r), "rejected") {
		t.Fatalf("orders/updated: %d %+v", status, r)
	}
	cancelled := payload("shopify", "orders_cancelled")
	status, first, _ := post("shop", webhook.Shopify, cancelled, "shop-new-secret", shopHeaders("orders/cancelled", "d-can-1"))
	if status != 200 || len(first.Results) == 0 || strings.Contains(outcomes(first), "rejected") {
		t.Fatalf("orders/cancelled: %d %+v", status, first)
	}
	// Shopify retries a delivery it thinks failed, with the same id.
	status, again, _ := post("shop", webhook.Shopify, cancelled, "shop-new-secret", shopHeaders("orders/cancelled", "d-can-1"))
	if status != 200 || len(again.Results) != len(first.Results) {
		t.Fatalf("retry: %d %+v", status, again)
	}
	for i, res := range again.Results {
		if res.Outcome != events.Duplicate || res.Seq != first.Results[i].Seq {
			t.Fatalf("retried delivery stored again: first %+v, again %+v", first.Results[i], res)
		}
	}
	if status, r, _ := post("stripe", webhook.Stripe, payload("stripe", "payment_intent_succeeded"), "whsec_stripe-secret", nil); status != 200 || outcomes(r) != "accepted" {
		t.Fatalf("stripe: %d %+v", status, r)
	}
	if status, r, _ := post("carrier", webhook.EasyPost, payload("easypost", "tracker_updated"), "easypost-secret", nil); status != 200 || outcomes(r) != "accepted" {
		t.Fatalf("easypost: %d %+v", status, r)
	}

	// A forged delivery: refused, kept with its reason and no secret.
	if status, _, h := post("shop", webhook.Shopify, cancelled, "guessed-secret", shopHeaders("orders/cancelled", "d-forged")); status != 401 || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("bad signature: %d", status)
	}
	dl, err := env.LastDLQ(t, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if dl.Header.Get(events.HeaderErrorCode) != "bad_signature" || dl.Header.Get("Driftwatch-Webhook-X-Shopify-Webhook-Id") != "d-forged" || !bytes.Equal(dl.Data, cancelled) {
		t.Fatalf("dead letter of the forged delivery: %v", dl.Header)
	}
	for k, v := range dl.Header {
		if strings.Contains(strings.Join(v, " "), "shop-new-secret") || strings.Contains(strings.Join(v, " "), "shop-old-secret") {
			t.Fatalf("a secret in the dead letter's %s", k)
		}
	}
	// Verified, but not a topic driftwatch translates: kept, answered 2xx.
	if status, r, _ := post("carrier", webhook.EasyPost, payload("easypost", "batch_created"), "easypost-secret", nil); status != 202 || r.DeadLettered == "" {
		t.Fatalf("untranslatable: %d %+v", status, r)
	}
	// A system without webhooks.
	if status, _, _ := post("wms", webhook.Shopify, cancelled, "x", nil); status != 404 {
		t.Fatalf("wms takes no webhooks: %d", status)
	}

	for _, want := range []string{
		detector.AlertID(shopOrder, detector.CancelNotPropagated, "shop", "erp"),
		detector.AlertID("ORD-1001", detector.PaymentWithoutOrder, "stripe", "erp"),
	} {
		apptest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
			m, err := detector.GetMismatch(env.App.Store, want)
			if err != nil {
				return fmt.Errorf("%s: %w", want, err)
			}
			if m.State != detector.StateOpen {
				return fmt.Errorf("%s is %s", want, m.State)
			}
			return nil
		})
	}
}

// BenchmarkWebhookShopify posts signed Shopify orders/updated deliveries
// (the documentation payload, 15 KB, each with its own webhook id and
// order) to a running driftwatch from 8 clients at once, until each is
// verified, translated and in the log (two envelopes, the compacted
// payload kept in the first): "webhook". Its peer, in the same run and on
// the same server: the same envelopes, translated beforehand, posted to
// POST /v1/events as NDJSON ("envelopes").
func BenchmarkWebhookShopify(b *testing.B) {
	b.Setenv("DRIFTWATCH_WEBHOOK_SECRET_SHOP", "shop-secret")
	env := apptest.Start(b, apptest.Config(b, ""), "")
	body, err := os.ReadFile("../../events/webhook/testdata/shopify/orders_updated.json")
	if err != nil {
		b.Fatal(err)
	}
	const orderID = `"id": 820982911946154508`
	if !bytes.Contains(body, []byte(orderID)) {
		b.Fatal("the payload's order id moved")
	}
	var n atomicCounter
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	delivery := func(i int64) (doc []byte, h http.Header) {
		doc = bytes.Replace(body, []byte(orderID), []byte(fmt.Sprintf(`"id": %d`, 900000000000+i)), 1)
		h = webhook.Sign(webhook.Shopify, doc, []byte("shop-secret"), time.Now())
		h.Set("X-Shopify-Topic", "orders/updated")
		h.Set("X-Shopify-Webhook-Id", fmt.Sprintf("bench-%d", i))
		return doc, h
	}
	send := func(b *testing.B, path, contentType string, doc []byte, h http.Header) {
		req, _ := http.NewRequest("POST", env.BaseURL+path, bytes.NewReader(doc))
		req.Header = h
		req.Header.Set("Content-Type", contentType)
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Errorf("%s: %s", path, resp.Status)
		}
	}
	b.Run("webhook", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				doc, h := delivery(n.next())
				send(b, "/v1/webhooks/shop", "application/json", doc, h)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	})
	b.Run("envelopes", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				doc, h := delivery(n.next())
				evs, _, err := webhook.Translate(webhook.Shopify, webhook.Request{Header: h, Body: doc}, "shop")
				if err != nil {
					b.Error(err)
					return
				}
				var nd bytes.Buffer
				for i := range evs {
					line, _ := evs[i].Marshal()
					nd.Write(line)
					nd.WriteByte('\n')
				}
				send(b, "/v1/events", "application/x-ndjson", nd.Bytes(), http.Header{})
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	})
}

type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) next() int64 { return c.v.Add(1) }
