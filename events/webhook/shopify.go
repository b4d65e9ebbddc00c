package webhook

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// Shopify: X-Shopify-Hmac-Sha256 is base64(HMAC-SHA256(app client secret,
// raw body)); X-Shopify-Topic names the topic; X-Shopify-Webhook-Id is the
// same for every retry of a delivery.

const (
	shopifyHMAC      = "X-Shopify-Hmac-Sha256"
	shopifyTopic     = "X-Shopify-Topic"
	shopifyWebhookID = "X-Shopify-Webhook-Id"
	shopifyEventID   = "X-Shopify-Event-Id"
	shopifyTriggered = "X-Shopify-Triggered-At"
)

func verifyShopify(req Request, keys Secrets, _ time.Time, _ Options) error {
	h := header(req.Header, shopifyHMAC)
	if h == "" {
		return fail(Shopify, ReasonMissingSignature, "no %s header", shopifyHMAC)
	}
	got, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return fail(Shopify, ReasonBadSignature, "%s is not base64", shopifyHMAC)
	}
	if !matchAny(keys, [][]byte{got}, func(k []byte) []byte { return mac(k, req.Body) }) {
		return fail(Shopify, ReasonBadSignature, "no configured secret produces the %s signature", shopifyHMAC)
	}
	return nil
}

func signShopify(body, secret []byte, _ time.Time, _ Options) http.Header {
	h := http.Header{}
	h.Set(shopifyHMAC, base64.StdEncoding.EncodeToString(mac(secret, body)))
	return h
}

// shopifyOrderTopics carry the REST Order resource.
var shopifyOrderTopics = map[string]bool{
	"orders/create": true, "orders/updated": true, "orders/cancelled": true,
	"orders/fulfilled": true, "orders/partially_fulfilled": true, "orders/paid": true,
}

// shopifyReturnStatus is the ReturnStatus a returns/* topic implies, for a
// payload without a status.
var shopifyReturnStatus = map[string]string{
	"returns/request": "REQUESTED", "returns/approve": "OPEN", "returns/reopen": "OPEN",
	"returns/decline": "DECLINED", "returns/cancel": "CANCELED", "returns/close": "CLOSED",
}

func translateShopify(req Request) (*delivery, error) {
	topic := header(req.Header, shopifyTopic)
	d := &delivery{topic: topic, attrs: map[string]any{}}
	d.headerID = cleanID(header(req.Header, shopifyWebhookID))
	if d.headerID == "" {
		d.headerID = cleanID(header(req.Header, shopifyEventID))
	}
	d.id = d.headerID
	if topic == "" {
		return nil, fail(Shopify, ReasonUnknownTopic, "no %s header", shopifyTopic)
	}
	triggered, _ := sourceTime(header(req.Header, shopifyTriggered))
	switch {
	case shopifyOrderTopics[topic]:
		return d, shopifyOrder(d, req.Body, triggered)
	case topic == "refunds/create":
		return d, shopifyRefund(d, req.Body, triggered)
	case strings.HasPrefix(topic, "returns/"):
		return d, shopifyReturn(d, req.Body, triggered)
	}
	return nil, fail(Shopify, ReasonUnknownTopic, "topic %q is not translated", topic)
}

type shopifyOrderBody struct {
	ID                flexString `json:"id"`
	Name              string     `json:"name"`
	FinancialStatus   optString  `json:"financial_status"`
	FulfillmentStatus optString  `json:"fulfillment_status"`
	CancelReason      optString  `json:"cancel_reason"`
	CancelledAt       optString  `json:"cancelled_at"`
	UpdatedAt         string     `json:"updated_at"`
	CreatedAt         string     `json:"created_at"`
	ProcessedAt       string     `json:"processed_at"`
	TotalPrice        flexString `json:"total_price"`
	Currency          string     `json:"currency"`
}

// shopifyOrder reads an Order: one record per status field it carries, in
// the order fulfillment_status, financial_status, cancel_reason (so that a
// cancellation, published last, wins a tie of occurred_at).
func shopifyOrder(d *delivery, body []byte, triggered string) error {
	var o shopifyOrderBody
	if err := decode(Shopify, body, &o); err != nil {
		return err
	}
	if o.ID == "" {
		return fail(Shopify, ReasonUntranslatable, "the order has no id")
	}
	at, ok := firstTime(o.UpdatedAt, o.ProcessedAt, o.CreatedAt, triggered)
	if !ok {
		return fail(Shopify, ReasonUntranslatable, "the order has no updated_at, processed_at or created_at with an offset")
	}
	setAmount(d.attrs, o.TotalPrice.String(), o.Currency)
	add := func(field, status string) {
		d.records = append(d.records, record{orderID: o.ID.String(), externalRef: o.Name, field: field, status: status, occurredAt: at})
	}
	cancelled := o.CancelledAt.set && !o.CancelledAt.null && o.CancelledAt.val != ""
	switch {
	case !o.FulfillmentStatus.set:
	case o.FulfillmentStatus.null:
		// "No line fulfilled" travels as null; the table spells it "null".
		// A cancelled order's null says nothing its cancel_reason does not.
		if !cancelled {
			add("fulfillment_status", "null")
		}
	case o.FulfillmentStatus.val != "":
		add("fulfillment_status", o.FulfillmentStatus.val)
	}
	if o.FinancialStatus.set && !o.FinancialStatus.null && o.FinancialStatus.val != "" {
		add("financial_status", o.FinancialStatus.val)
	}
	if cancelled && o.CancelReason.set && !o.CancelReason.null && o.CancelReason.val != "" {
		add("cancel_reason", o.CancelReason.val)
	}
	return nil
}

type shopifyRefundBody struct {
	ID           flexString `json:"id"`
	OrderID      flexString `json:"order_id"`
	CreatedAt    string     `json:"created_at"`
	ProcessedAt  string     `json:"processed_at"`
	Transactions []struct {
		Kind     string     `json:"kind"`
		Status   string     `json:"status"`
		Amount   flexString `json:"amount"`
		Currency string     `json:"currency"`
	} `json:"transactions"`
}

// shopifyRefund reads a Refund: its last refund transaction's status, in
// the field refund.transaction.status. A refund without a refund
// transaction (a restock only) reports no status.
func shopifyRefund(d *delivery, body []byte, triggered string) error {
	var r shopifyRefundBody
	if err := decode(Shopify, body, &r); err != nil {
		return err
	}
	if r.OrderID == "" {
		return fail(Shopify, ReasonUntranslatable, "the refund has no order_id")
	}
	at, ok := firstTime(r.ProcessedAt, r.CreatedAt, triggered)
	if !ok {
		return fail(Shopify, ReasonUntranslatable, "the refund has no processed_at or created_at with an offset")
	}
	for i := len(r.Transactions) - 1; i >= 0; i-- {
		t := r.Transactions[i]
		if t.Kind != "refund" || t.Status == "" {
			continue
		}
		setAmount(d.attrs, t.Amount.String(), t.Currency)
		if r.ID != "" {
			d.attrs["refund_id"] = r.ID.String()
		}
		d.records = append(d.records, record{orderID: r.OrderID.String(), field: "refund.transaction.status", status: t.Status, occurredAt: at})
		return nil
	}
	return nil
}

type shopifyReturnBody struct {
	ID      flexString `json:"id"`
	Name    string     `json:"name"`
	Status  string     `json:"status"`
	OrderID flexString `json:"order_id"`
	Order   struct {
		ID flexString `json:"id"`
	} `json:"order"`
	UpdatedAt string `json:"updated_at"`
	CreatedAt string `json:"created_at"`
}

// shopifyReturn reads a Return: its status in the ReturnStatus spelling
// of the table (upper case), or the status its topic implies.
func shopifyReturn(d *delivery, body []byte, triggered string) error {
	var r shopifyReturnBody
	if err := decode(Shopify, body, &r); err != nil {
		return err
	}
	order := r.Order.ID.String()
	if order == "" {
		order = r.OrderID.String()
	}
	if order == "" {
		return fail(Shopify, ReasonUntranslatable, "the return names no order (order.id or order_id)")
	}
	status := strings.ToUpper(strings.TrimSpace(r.Status))
	if status == "" {
		status = shopifyReturnStatus[d.topic]
	}
	if status == "" {
		return fail(Shopify, ReasonUntranslatable, "the return has no status and topic %q implies none", d.topic)
	}
	at, ok := firstTime(r.UpdatedAt, r.CreatedAt, triggered)
	if !ok {
		return fail(Shopify, ReasonUntranslatable, "the return has no updated_at or created_at with an offset, and no %s header", shopifyTriggered)
	}
	if r.ID != "" {
		d.attrs["return_id"] = r.ID.String()
	}
	if r.Name != "" {
		d.attrs["return_name"] = r.Name
	}
	if r.Status != "" && r.Status != status {
		d.attrs["raw_status"] = r.Status
	}
	d.records = append(d.records, record{orderID: order, field: "return.status", status: status, occurredAt: at})
	return nil
}
