package webhook

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// WooCommerce: X-WC-Webhook-Signature is base64(HMAC-SHA256(secret, raw
// body)), the secret first passed through WordPress's
// wp_specialchars_decode (ENT_QUOTES), as WooCommerce's generate_signature
// does. X-WC-Webhook-Topic names the topic. X-WC-Webhook-Delivery-ID is a
// hash of the webhook id and the current time, new for every attempt, so
// it cannot dedupe a retry: the delivery id is derived from the order
// instead (see translateWooCommerce).

const (
	wcSignature  = "X-WC-Webhook-Signature"
	wcTopic      = "X-WC-Webhook-Topic"
	wcResource   = "X-WC-Webhook-Resource"
	wcEvent      = "X-WC-Webhook-Event"
	wcDeliveryID = "X-WC-Webhook-Delivery-ID"
	wcWebhookID  = "X-WC-Webhook-ID"
)

// wpSpecialcharsDecode is WordPress's wp_specialchars_decode with
// ENT_QUOTES: the entities it undoes, in one pass.
var wpSpecialcharsDecode = strings.NewReplacer(
	"&lt;", "<", "&#060;", "<", "&#60;", "<",
	"&gt;", ">", "&#062;", ">", "&#62;", ">",
	"&quot;", `"`, "&#034;", `"`, "&#34;", `"`, "&#x22;", `"`,
	"&#039;", "'", "&#39;", "'", "&#x27;", "'",
	"&amp;", "&", "&#038;", "&", "&#38;", "&", "&#x26;", "&",
)

func wooKey(secret []byte) []byte {
	if !strings.Contains(string(secret), "&") {
		return secret
	}
	return []byte(wpSpecialcharsDecode.Replace(string(secret)))
}

func verifyWooCommerce(req Request, keys Secrets, _ time.Time, _ Options) error {
	h := header(req.Header, wcSignature)
	if h == "" {
		return fail(WooCommerce, ReasonMissingSignature, "no %s header", wcSignature)
	}
	got, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return fail(WooCommerce, ReasonBadSignature, "%s is not base64", wcSignature)
	}
	if !matchAny(keys, [][]byte{got}, func(k []byte) []byte { return mac(wooKey(k), req.Body) }) {
		return fail(WooCommerce, ReasonBadSignature, "no configured secret produces the %s signature", wcSignature)
	}
	return nil
}

func signWooCommerce(body, secret []byte, _ time.Time, _ Options) http.Header {
	h := http.Header{}
	h.Set(wcSignature, base64.StdEncoding.EncodeToString(mac(wooKey(secret), body)))
	return h
}

var wooTopics = map[string]bool{"order.created": true, "order.updated": true, "order.restored": true}

type wooOrderBody struct {
	ID              flexString `json:"id"`
	Number          flexString `json:"number"`
	Status          string     `json:"status"`
	Currency        string     `json:"currency"`
	Total           flexString `json:"total"`
	DateModifiedGMT string     `json:"date_modified_gmt"`
	DateCreatedGMT  string     `json:"date_created_gmt"`
}

// translateWooCommerce reads an order.* payload (the REST v3 order): one
// record, status in the table's status field, at date_modified_gmt. The
// delivery id is "<order id>@<date_modified_gmt>/<status>": the same for
// every attempt of one change, different for the next change.
func translateWooCommerce(req Request) (*delivery, error) {
	topic := header(req.Header, wcTopic)
	if topic == "" {
		if r, e := header(req.Header, wcResource), header(req.Header, wcEvent); r != "" && e != "" {
			topic = r + "." + e
		}
	}
	if topic == "" {
		return nil, fail(WooCommerce, ReasonUnknownTopic, "no %s header", wcTopic)
	}
	if !wooTopics[topic] {
		return nil, fail(WooCommerce, ReasonUnknownTopic, "topic %q is not translated", topic)
	}
	var o wooOrderBody
	if err := decode(WooCommerce, req.Body, &o); err != nil {
		return nil, err
	}
	if o.ID == "" {
		return nil, fail(WooCommerce, ReasonUntranslatable, "the order has no id")
	}
	if strings.TrimSpace(o.Status) == "" {
		return nil, fail(WooCommerce, ReasonUntranslatable, "the order has no status")
	}
	at, ok := gmtTime(o.DateModifiedGMT)
	if !ok {
		at, ok = gmtTime(o.DateCreatedGMT)
	}
	if !ok {
		return nil, fail(WooCommerce, ReasonUntranslatable, "the order has no date_modified_gmt or date_created_gmt")
	}
	d := &delivery{topic: topic, attrs: map[string]any{}}
	d.headerID = cleanID(header(req.Header, wcDeliveryID))
	d.id = cleanID(o.ID.String() + "@" + at + "/" + o.Status)
	if w := cleanID(header(req.Header, wcWebhookID)); w != "" {
		d.attrs["webhook_id"] = w
	}
	setAmount(d.attrs, o.Total.String(), o.Currency)
	ref := o.Number.String()
	if ref == "" {
		ref = o.ID.String()
	}
	d.records = append(d.records, record{orderID: o.ID.String(), externalRef: ref, field: "status", status: o.Status, occurredAt: at})
	return d, nil
}
