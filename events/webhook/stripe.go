package webhook

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Stripe: Stripe-Signature is "t=<unix>,v1=<hex>[,v1=<hex>...]" (other
// schemes, v0, are ignored); each v1 is hex(HMAC-SHA256(endpoint secret,
// "<t>.<raw body>")). The event's id is the same for every retry.

const stripeSignature = "Stripe-Signature"

// stripeHeader is a parsed Stripe-Signature header.
type stripeHeader struct {
	timestamp int64
	v1        [][]byte
}

// parseStripeHeader reads a Stripe-Signature header. It returns the reason
// when the header is unusable: missing_signature without a v1 signature,
// bad_signature when t is missing or not a number or a v1 is not hex.
func parseStripeHeader(h string) (stripeHeader, Reason, string) {
	var out stripeHeader
	haveT := false
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || haveT {
				return out, ReasonBadSignature, "t is not one Unix timestamp"
			}
			out.timestamp, haveT = n, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return out, ReasonBadSignature, "a v1 signature is not hex"
			}
			out.v1 = append(out.v1, sig)
		}
	}
	if len(out.v1) == 0 {
		return out, ReasonMissingSignature, "no v1 signature in " + stripeSignature
	}
	if !haveT {
		return out, ReasonBadSignature, "no t= timestamp in " + stripeSignature
	}
	return out, "", ""
}

func verifyStripe(req Request, keys Secrets, now time.Time, o Options) error {
	h := header(req.Header, stripeSignature)
	if h == "" {
		return fail(Stripe, ReasonMissingSignature, "no %s header", stripeSignature)
	}
	sh, reason, detail := parseStripeHeader(h)
	if reason != "" {
		return fail(Stripe, reason, "%s", detail)
	}
	ts := []byte(strconv.FormatInt(sh.timestamp, 10))
	if !matchAny(keys, sh.v1, func(k []byte) []byte { return mac(k, ts, []byte("."), req.Body) }) {
		return fail(Stripe, ReasonBadSignature, "no configured secret produces a v1 signature of %s", stripeSignature)
	}
	if !within(time.Unix(sh.timestamp, 0), now, o.tolerance()) {
		return fail(Stripe, ReasonExpired, "signed %s; the tolerance is %s", skew(time.Unix(sh.timestamp, 0), now), o.tolerance())
	}
	return nil
}

func signStripe(body, secret []byte, now time.Time, _ Options) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set(stripeSignature, "t="+ts+",v1="+hex.EncodeToString(mac(secret, []byte(ts), []byte("."), body)))
	return h
}

type stripeEventBody struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Type    string     `json:"type"`
	Created flexString `json:"created"`
	Account string     `json:"account"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type stripeObject struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"`
	Status         string          `json:"status"`
	Amount         flexString      `json:"amount"`
	AmountReceived flexString      `json:"amount_received"`
	AmountRefunded flexString      `json:"amount_refunded"`
	Currency       string          `json:"currency"`
	Metadata       map[string]any  `json:"metadata"`
	PaymentIntent  json.RawMessage `json:"payment_intent"`
	Charge         json.RawMessage `json:"charge"`
}

// stripeTopic reports whether driftwatch translates an event type.
func stripeTopic(t string) bool {
	return strings.HasPrefix(t, "payment_intent.") || strings.HasPrefix(t, "charge.") || strings.HasPrefix(t, "refund.")
}

// translateStripe reads an Event: one record, the event's type in the field
// event.type (the table maps every payment_intent.*, charge.* and refund.*
// type it knows; a new type surfaces as an unmapped status). The order is
// the object's metadata.order_id, else its PaymentIntent's id.
func translateStripe(req Request) (*delivery, error) {
	var e stripeEventBody
	if err := decode(Stripe, req.Body, &e); err != nil {
		return nil, err
	}
	d := &delivery{topic: e.Type, id: cleanID(e.ID), attrs: map[string]any{}}
	if e.Object != "" && e.Object != "event" {
		return nil, fail(Stripe, ReasonUntranslatable, "the body is a %q object, not an event", e.Object)
	}
	if e.Type == "" {
		return nil, fail(Stripe, ReasonUntranslatable, "the event has no type")
	}
	if !stripeTopic(e.Type) {
		return nil, fail(Stripe, ReasonUnknownTopic, "event type %q is not translated", e.Type)
	}
	if d.id == "" {
		return nil, fail(Stripe, ReasonUntranslatable, "the event has no id")
	}
	created, err := strconv.ParseInt(e.Created.String(), 10, 64)
	if err != nil || created <= 0 {
		return nil, fail(Stripe, ReasonUntranslatable, "the event's created is not a Unix time")
	}
	var obj stripeObject
	if len(bytes.TrimSpace(e.Data.Object)) == 0 || e.Data.Object[0] != '{' {
		return nil, fail(Stripe, ReasonUntranslatable, "the event has no data.object")
	}
	if err := decode(Stripe, e.Data.Object, &obj); err != nil {
		return nil, err
	}
	pi := ""
	if obj.Object == "payment_intent" {
		pi = obj.ID
	} else {
		pi = stripeRef(obj.PaymentIntent)
	}
	order := ""
	if v, ok := obj.Metadata["order_id"].(string); ok {
		order = strings.TrimSpace(v)
	}
	if order == "" {
		order = pi
	}
	if order == "" {
		order = obj.ID
	}
	if order == "" {
		return nil, fail(Stripe, ReasonUntranslatable, "the %s object has no id", obj.Object)
	}
	ref := pi
	if ref == "" {
		ref = obj.ID
	}
	d.attrs["object"] = obj.Object
	if obj.ID != "" && obj.ID != ref {
		d.attrs["object_id"] = obj.ID
	}
	if obj.Status != "" {
		d.attrs["object_status"] = obj.Status
	}
	if c := stripeRef(obj.Charge); c != "" {
		d.attrs["charge"] = c
	}
	if e.Account != "" {
		d.attrs["account"] = e.Account
	}
	amount := obj.Amount
	if obj.Object == "payment_intent" {
		if n, err := strconv.ParseInt(obj.AmountReceived.String(), 10, 64); err == nil && n > 0 {
			amount = obj.AmountReceived
		}
	}
	if n, err := strconv.ParseInt(amount.String(), 10, 64); err == nil && obj.Currency != "" {
		setAmount(d.attrs, minorToDecimal(n, obj.Currency), obj.Currency)
	}
	if n, err := strconv.ParseInt(obj.AmountRefunded.String(), 10, 64); err == nil && n > 0 && obj.Currency != "" {
		d.attrs["amount_refunded"] = minorToDecimal(n, obj.Currency)
	}
	d.records = append(d.records, record{orderID: order, externalRef: ref, field: "event.type", status: e.Type, occurredAt: unixTime(created)})
	return d, nil
}

// stripeRef is the id of an expandable reference: a string, or an
// expanded object's id.
func stripeRef(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		ID string `json:"id"`
	}
	if raw[0] == '{' && json.Unmarshal(raw, &o) == nil {
		return o.ID
	}
	return ""
}
