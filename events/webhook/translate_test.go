package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/mapping"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestTranslateGolden")

// goldenCases are the documentation payloads under testdata with the
// headers each is delivered with.
var goldenCases = []struct {
	platform, file, system string
	header                 http.Header
}{
	{Shopify, "orders_cancelled", "shop", hdr(shopifyTopic, "orders/cancelled", shopifyWebhookID, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")},
	{Shopify, "orders_updated", "shop", hdr(shopifyTopic, "orders/updated", shopifyWebhookID, "2f7c1f8e-5a0d-4f3e-9d8b-6c1e0a9b7d21")},
	{Stripe, "payment_intent_created", "pay", nil},
	{Stripe, "payment_intent_succeeded", "pay", nil},
	{BigCommerce, "order_status_updated", "bc", nil},
	{BigCommerce, "order_status_updated_reference", "bc", hdr(swID, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", swTimestamp, "1561482671")},
	{BigCommerce, "order_status_updated_overview", "bc", nil},
	{WooCommerce, "order_created", "woo", hdr(wcTopic, "order.created", wcDeliveryID, "1c8bd2e1c1f5a0a7b3e5c0d1f9a2b4e6", wcWebhookID, "7")},
	{WooCommerce, "order_updated", "woo", hdr(wcTopic, "order.updated", wcDeliveryID, "8f14e45fceea167a5a36dedd4bea2543", wcWebhookID, "8")},
	{EasyPost, "tracker_updated", "carrier", nil},
	{EasyPost, "tracker_created_retrieve", "carrier", nil},
	{EasyPost, "batch_created", "carrier", nil},
	{Amazon, "order_change", "amazon", nil},
	{Amazon, "order_change_eventbridge", "amazon", nil},
}

// TestTranslateGolden translates every documentation payload and compares
// the result with its golden file. Each envelope is shown with what the
// built-in mapping table makes of it.
func TestTranslateGolden(t *testing.T) {
	tables, err := mapping.LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range goldenCases {
		t.Run(c.platform+"/"+c.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.platform, c.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			header := c.header
			if header == nil {
				header = http.Header{}
			}
			evs, id, err := Translate(c.platform, Request{Header: header, Body: body}, c.system)
			got := renderGolden(t, tables, c.platform, body, evs, id, err)
			path := filepath.Join("testdata", c.platform, c.file+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (run with -update and review the diff):\n%s", path, got)
			}
		})
	}
}

type goldenEnvelope struct {
	Envelope json.RawMessage `json:"envelope"`
	Mapped   string          `json:"mapped"`
}

type goldenResult struct {
	DeliveryID string           `json:"delivery_id,omitempty"`
	Envelopes  []goldenEnvelope `json:"envelopes,omitempty"`
	Error      *Error           `json:"error,omitempty"`
}

func renderGolden(t *testing.T, tables *mapping.Set, platform string, body []byte, evs []events.Event, id string, err error) []byte {
	t.Helper()
	res := goldenResult{DeliveryID: id}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("untyped error: %v", err)
		}
		res.Error = e
	}
	table, ok := tables.Table(platform)
	if !ok {
		t.Fatalf("no built-in table for %s", platform)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if err := ev.Validate(); err != nil {
			t.Fatalf("envelope %d invalid: %v", i, err)
		}
		var attrs map[string]json.RawMessage
		if err := json.Unmarshal(ev.Attributes, &attrs); err != nil {
			t.Fatal(err)
		}
		if p, ok := attrs["payload"]; ok {
			if !bytes.Equal(p, compact.Bytes()) {
				t.Fatalf("envelope %d: attributes.payload is not the compacted body", i)
			}
			attrs["payload"] = json.RawMessage(fmt.Sprintf("%q", fmt.Sprintf("(the body, compacted: %d bytes)", len(p))))
		}
		view := ev
		view.Attributes, _ = json.Marshal(attrs)
		raw, err := json.Marshal(view)
		if err != nil {
			t.Fatal(err)
		}
		mapped := "unmapped"
		if r, field, ok := table.Lookup(ev.StatusField, ev.Status); ok {
			mapped = fmt.Sprintf("%s %s=%q -> %s", platform, field, ev.Status, r)
		}
		res.Envelopes = append(res.Envelopes, goldenEnvelope{Envelope: raw, Mapped: mapped})
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestGoldenStatusesAreMapped: every status the documentation payloads
// produce is in its platform's built-in table.
func TestGoldenStatusesAreMapped(t *testing.T) {
	tables, err := mapping.LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range goldenCases {
		body, _ := os.ReadFile(filepath.Join("testdata", c.platform, c.file+".json"))
		header := c.header
		if header == nil {
			header = http.Header{}
		}
		evs, _, _ := Translate(c.platform, Request{Header: header, Body: body}, c.system)
		table, _ := tables.Table(c.platform)
		for _, ev := range evs {
			if _, _, ok := table.Lookup(ev.StatusField, ev.Status); !ok {
				t.Errorf("%s/%s: %s=%q is not in the %s table", c.platform, c.file, ev.StatusField, ev.Status, c.platform)
			}
		}
	}
}

// TestRetriesDedupe: a retried delivery yields the same event ids; the
// next change of the same order does not.
func TestRetriesDedupe(t *testing.T) {
	body, err := os.ReadFile("testdata/woocommerce/order_created.json")
	if err != nil {
		t.Fatal(err)
	}
	first, id1, err := Translate(WooCommerce, Request{Header: hdr(wcTopic, "order.created", wcDeliveryID, "attempt-1"), Body: body}, "woo")
	if err != nil {
		t.Fatal(err)
	}
	// WooCommerce gives every attempt a new delivery id.
	again, id2, err := Translate(WooCommerce, Request{Header: hdr(wcTopic, "order.created", wcDeliveryID, "attempt-2"), Body: body}, "woo")
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || first[0].EventID != again[0].EventID {
		t.Fatalf("retry changed the event id: %s vs %s", first[0].EventID, again[0].EventID)
	}
	next := bytes.Replace(body, []byte(`"status": "processing"`), []byte(`"status": "on-hold"`), 1)
	other, _, err := Translate(WooCommerce, Request{Header: hdr(wcTopic, "order.updated"), Body: next}, "woo")
	if err != nil {
		t.Fatal(err)
	}
	if other[0].EventID == first[0].EventID {
		t.Fatal("a new status in the same second kept the event id")
	}

	shop, _ := os.ReadFile("testdata/shopify/orders_cancelled.json")
	h := hdr(shopifyTopic, "orders/cancelled", shopifyWebhookID, "w-1")
	a, _, _ := Translate(Shopify, Request{Header: h, Body: shop}, "shop")
	b, _, _ := Translate(Shopify, Request{Header: h, Body: shop}, "shop")
	for i := range a {
		if a[i].EventID != b[i].EventID {
			t.Fatalf("envelope %d: %s vs %s", i, a[i].EventID, b[i].EventID)
		}
	}
	if len(a) != 2 || a[0].EventID == a[1].EventID {
		t.Fatalf("want two envelopes with distinct ids, got %+v", a)
	}
	// Without a delivery id, the body's hash stands in, and repeats.
	nh := hdr(shopifyTopic, "orders/cancelled")
	c1, d1, _ := Translate(Shopify, Request{Header: nh, Body: shop}, "shop")
	c2, d2, _ := Translate(Shopify, Request{Header: nh, Body: shop}, "shop")
	if d1 == "" || d1 != d2 || c1[0].EventID != c2[0].EventID {
		t.Fatalf("body-derived ids differ: %s %s", d1, d2)
	}
}

func TestTranslateErrors(t *testing.T) {
	order := `{"id": 5, "name": "#5", "financial_status": "paid", "fulfillment_status": null, "updated_at": "2026-11-27T10:04:05-04:00"}`
	cases := []struct {
		name, platform string
		header         http.Header
		body           string
		system         string
		want           Reason
	}{
		{"not JSON", Shopify, hdr(shopifyTopic, "orders/updated"), "webhook_id=12", "shop", ReasonUntranslatable},
		{"a JSON array", Shopify, hdr(shopifyTopic, "orders/updated"), "[1]", "shop", ReasonUntranslatable},
		{"a repeated key", Shopify, hdr(shopifyTopic, "orders/updated"), `{"id": 5, "financial_status": "paid", "financial_status": "refunded", "updated_at": "2026-11-27T10:04:05-04:00"}`, "shop", ReasonUntranslatable},
		{"invalid UTF-8", Shopify, hdr(shopifyTopic, "orders/updated"), "{\"id\": 5, \"name\": \"\xff\"}", "shop", ReasonUntranslatable},
		{"unknown topic", Shopify, hdr(shopifyTopic, "products/update"), order, "shop", ReasonUnknownTopic},
		{"no topic", Shopify, http.Header{}, order, "shop", ReasonUnknownTopic},
		{"no order id", Shopify, hdr(shopifyTopic, "orders/updated"), `{"financial_status": "paid", "updated_at": "2026-11-27T10:04:05-04:00"}`, "shop", ReasonUntranslatable},
		{"no time", Shopify, hdr(shopifyTopic, "orders/updated"), `{"id": 5, "financial_status": "paid"}`, "shop", ReasonUntranslatable},
		{"a time without offset", Shopify, hdr(shopifyTopic, "orders/updated"), `{"id": 5, "financial_status": "paid", "updated_at": "2026-11-27T10:04:05"}`, "shop", ReasonUntranslatable},
		{"no status field at all", Shopify, hdr(shopifyTopic, "orders/updated"), `{"id": 5, "updated_at": "2026-11-27T10:04:05-04:00"}`, "shop", ReasonNoStatus},
		{"an order id over 128 characters", Shopify, hdr(shopifyTopic, "orders/updated"), `{"id": "` + strings.Repeat("9", 129) + `", "financial_status": "paid", "updated_at": "2026-11-27T10:04:05-04:00"}`, "shop", ReasonUntranslatable},
		{"unknown platform", "etsy", http.Header{}, order, "shop", ReasonUnknownPlatform},
		{"stripe: not an event", Stripe, nil, `{"id": "pi_1", "object": "payment_intent"}`, "pay", ReasonUntranslatable},
		{"stripe: unknown type", Stripe, nil, `{"id": "evt_1", "object": "event", "type": "customer.created", "created": 1700000000, "data": {"object": {"id": "cus_1"}}}`, "pay", ReasonUnknownTopic},
		{"stripe: created not a number", Stripe, nil, `{"id": "evt_1", "object": "event", "type": "charge.refunded", "created": "soon", "data": {"object": {"id": "ch_1"}}}`, "pay", ReasonUntranslatable},
		{"bigcommerce: another scope", BigCommerce, nil, `{"scope": "store/order/created", "data": {"type": "order", "id": 250}, "created_at": 1561479335}`, "bc", ReasonUnknownTopic},
		{"woocommerce: order.deleted", WooCommerce, hdr(wcTopic, "order.deleted"), `{"id": 727}`, "woo", ReasonUnknownTopic},
		{"woocommerce: no status", WooCommerce, hdr(wcTopic, "order.updated"), `{"id": 727, "date_modified_gmt": "2017-03-22T19:30:35"}`, "woo", ReasonUntranslatable},
		{"easypost: tracker without tracking code", EasyPost, nil, `{"id": "evt_1", "object": "Event", "description": "tracker.updated", "result": {"object": "Tracker", "status": "delivered", "updated_at": "2024-08-02T19:26:51Z"}}`, "carrier", ReasonUntranslatable},
		{"amazon: another notification", Amazon, nil, `{"NotificationType": "ANY_OFFER_CHANGED", "Payload": {}}`, "amazon", ReasonUnknownTopic},
		{"amazon: not a notification", Amazon, nil, `{"hello": "world"}`, "amazon", ReasonUntranslatable},
		{"shopify refund without a refund transaction", Shopify, hdr(shopifyTopic, "refunds/create"), `{"id": 9, "order_id": 5, "created_at": "2026-11-27T10:04:05-04:00", "transactions": []}`, "shop", ReasonNoStatus},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.header
			if h == nil {
				h = http.Header{}
			}
			evs, _, err := Translate(c.platform, Request{Header: h, Body: []byte(c.body)}, c.system)
			if ReasonOf(err) != c.want {
				t.Fatalf("got %v (%d envelopes), want %q", err, len(evs), c.want)
			}
		})
	}
	if _, _, err := Translate(Shopify, Request{Header: hdr(shopifyTopic, "orders/updated"), Body: []byte(order)}, "Shop!"); err == nil {
		t.Fatal("accepted an invalid system id")
	}
}

// TestPayloadSize: a payload over MaxEmbeddedPayload is not embedded; its
// hash and size are, and the envelope stays valid and within 64 KiB.
func TestPayloadSize(t *testing.T) {
	note := strings.Repeat("x", MaxEmbeddedPayload)
	body := []byte(`{"id": 5, "name": "#5", "note": "` + note + `", "financial_status": "paid", "fulfillment_status": "partial", "updated_at": "2026-11-27T10:04:05-04:00", "total_price": "10.00", "currency": "EUR"}`)
	evs, _, err := Translate(Shopify, Request{Header: hdr(shopifyTopic, "orders/updated", shopifyWebhookID, "w-big"), Body: body}, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("want 2 envelopes, got %d", len(evs))
	}
	var a map[string]any
	if err := json.Unmarshal(evs[0].Attributes, &a); err != nil {
		t.Fatal(err)
	}
	if a["payload"] != nil || a["payload_omitted"] != "too_large" || a["payload_bytes"] != float64(len(body)) || a["amount"] != "10.00" || a["currency"] != "EUR" {
		t.Fatalf("attributes: %v", a)
	}
	for _, ev := range evs {
		data, _ := ev.Marshal()
		if len(data) > events.MaxEventSize {
			t.Fatalf("envelope of %d bytes", len(data))
		}
	}
	var b map[string]any
	_ = json.Unmarshal(evs[1].Attributes, &b)
	if b["payload_event_id"] != evs[0].EventID {
		t.Fatalf("second envelope does not name the first: %v", b)
	}
}

func TestShopifyRefundAndReturn(t *testing.T) {
	refund := `{"id": 929361464, "order_id": 450789469, "created_at": "2026-11-27T10:04:05-04:00", "processed_at": "2026-11-27T10:04:06-04:00",
		"transactions": [{"kind": "refund", "status": "success", "amount": "41.94", "currency": "USD"}]}`
	evs, _, err := Translate(Shopify, Request{Header: hdr(shopifyTopic, "refunds/create", shopifyWebhookID, "r-1"), Body: []byte(refund)}, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if e := evs[0]; e.OrderID != "450789469" || e.StatusField != "refund.transaction.status" || e.Status != "success" || e.OccurredAt != "2026-11-27T10:04:06-04:00" {
		t.Fatalf("refund: %+v", e)
	}
	ret := `{"id": 11, "status": "requested", "order": {"id": 450789469}, "name": "#1001-R1"}`
	evs, _, err = Translate(Shopify, Request{Header: hdr(shopifyTopic, "returns/request", shopifyTriggered, "2026-11-28T09:00:00Z"), Body: []byte(ret)}, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if e := evs[0]; e.OrderID != "450789469" || e.StatusField != "return.status" || e.Status != "REQUESTED" || e.OccurredAt != "2026-11-28T09:00:00Z" {
		t.Fatalf("return: %+v", e)
	}
	evs, _, err = Translate(Shopify, Request{Header: hdr(shopifyTopic, "returns/close"), Body: []byte(`{"id": 11, "order_id": 450789469, "updated_at": "2026-12-01T09:00:00+01:00"}`)}, "shop")
	if err != nil || evs[0].Status != "CLOSED" {
		t.Fatalf("return implied by topic: %v %+v", err, evs)
	}
}

func TestStripeChargeEvents(t *testing.T) {
	refunded := `{"id": "evt_2", "object": "event", "type": "charge.refunded", "created": 1700000000,
		"data": {"object": {"id": "ch_1", "object": "charge", "amount": 1099, "amount_refunded": 500, "currency": "jpy", "payment_intent": "pi_9", "status": "succeeded", "metadata": {}}}}`
	evs, id, err := Translate(Stripe, Request{Header: http.Header{}, Body: []byte(refunded)}, "pay")
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	if id != "evt_2" || e.OrderID != "pi_9" || e.ExternalRef != "pi_9" || e.StatusField != "event.type" || e.Status != "charge.refunded" || e.OccurredAt != "2023-11-14T22:13:20Z" {
		t.Fatalf("charge.refunded: %s %+v", id, e)
	}
	var a map[string]any
	_ = json.Unmarshal(e.Attributes, &a)
	if a["amount"] != "1099" || a["currency"] != "JPY" || a["amount_refunded"] != "500" || a["object_status"] != "succeeded" {
		t.Fatalf("attributes: %v", a)
	}
	dispute := `{"id": "evt_3", "object": "event", "type": "charge.dispute.created", "created": 1700000000,
		"data": {"object": {"id": "dp_1", "object": "dispute", "amount": 1000, "currency": "usd", "charge": "ch_1", "payment_intent": {"id": "pi_9", "object": "payment_intent"}}}}`
	evs, _, err = Translate(Stripe, Request{Header: http.Header{}, Body: []byte(dispute)}, "pay")
	if err != nil || evs[0].OrderID != "pi_9" {
		t.Fatalf("dispute: %v %+v", err, evs)
	}
}

func TestMinorToDecimal(t *testing.T) {
	for _, c := range []struct {
		n    int64
		cur  string
		want string
	}{{1099, "usd", "10.99"}, {5, "eur", "0.05"}, {0, "usd", "0.00"}, {500, "JPY", "500"}, {1234, "kwd", "1.234"}, {-250, "gbp", "-2.50"}} {
		if got := minorToDecimal(c.n, c.cur); got != c.want {
			t.Errorf("%d %s: got %s, want %s", c.n, c.cur, got, c.want)
		}
	}
}

func TestAmazonSQSRecord(t *testing.T) {
	n, err := os.ReadFile("testdata/amazon/order_change.json")
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(string(n))
	record := []byte(`{"messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "body": ` + string(quoted) + `}`)
	evs, id, err := Translate(Amazon, Request{Header: http.Header{}, Body: record}, "amazon")
	if err != nil {
		t.Fatal(err)
	}
	if id != "d0e9e693-c3ad-4373-979f-ed4ec98dd746" || evs[0].OrderID != "903-8868176-2219830" || evs[0].Status != "Unshipped" {
		t.Fatalf("%s %+v", id, evs[0])
	}
}
