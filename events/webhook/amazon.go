package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Amazon SP-API notifications are not signed webhooks: Amazon puts them
// on an SQS queue (ORDER_CHANGE) or an EventBridge bus. They reach
// driftwatch through an EventBridge API destination (whose connection adds
// an API-key header) or a relay that posts each SQS message; either way the
// request carries a shared secret in Options.SecretHeader, compared in
// constant time. The body may be the notification itself (an SQS
// message's body), an EventBridge event whose detail is the notification,
// or an SQS message record whose body (a string) is the notification.

func verifyAmazon(req Request, keys Secrets, _ time.Time, o Options) error {
	return verifySharedSecret(Amazon, req, keys, o)
}

func signAmazon(_, secret []byte, _ time.Time, o Options) http.Header {
	h := http.Header{}
	h.Set(o.secretHeader(), string(secret))
	return h
}

type amazonNotification struct {
	NotificationType     string `json:"NotificationType"`
	EventTime            string `json:"EventTime"`
	NotificationMetadata struct {
		NotificationID string `json:"NotificationId"`
		PublishTime    string `json:"PublishTime"`
	} `json:"NotificationMetadata"`
	Payload struct {
		OrderChangeNotification *struct {
			NotificationLevel  string `json:"NotificationLevel"`
			SellerID           string `json:"SellerId"`
			AmazonOrderID      string `json:"AmazonOrderId"`
			OrderChangeType    string `json:"OrderChangeType"`
			OrderChangeTrigger struct {
				TimeOfOrderChange *string `json:"TimeOfOrderChange"`
				ChangeReason      string  `json:"ChangeReason"`
			} `json:"OrderChangeTrigger"`
			Summary struct {
				MarketplaceID          string `json:"MarketplaceId"`
				OrderStatus            string `json:"OrderStatus"`
				FulfillmentType        string `json:"FulfillmentType"`
				OrderType              string `json:"OrderType"`
				EasyShipShipmentStatus string `json:"EasyShipShipmentStatus"`
				OrderItems             []struct {
					IsBuyerRequestedCancel *bool `json:"IsBuyerRequestedCancel"`
				} `json:"OrderItems"`
			} `json:"Summary"`
		} `json:"OrderChangeNotification"`
	} `json:"Payload"`
}

// amazonUnwrap returns the notification inside an EventBridge event
// (detail) or an SQS message record (body, a JSON string), or body itself.
func amazonUnwrap(body []byte) ([]byte, string) {
	var outer struct {
		NotificationType string          `json:"NotificationType"`
		Detail           json.RawMessage `json:"detail"`
		DetailType       string          `json:"detail-type"`
		Body             *string         `json:"body"`
		BodyUpper        *string         `json:"Body"`
	}
	if json.Unmarshal(body, &outer) != nil || outer.NotificationType != "" {
		return body, ""
	}
	if d := bytes.TrimSpace(outer.Detail); len(d) > 0 && d[0] == '{' {
		return d, "eventbridge"
	}
	for _, s := range []*string{outer.Body, outer.BodyUpper} {
		if s != nil && strings.HasPrefix(strings.TrimSpace(*s), "{") {
			return []byte(*s), "sqs"
		}
	}
	return body, ""
}

// translateAmazon reads an ORDER_CHANGE notification: one record,
// Summary.OrderStatus in the table's OrderStatus field, at
// OrderChangeTrigger.TimeOfOrderChange (else EventTime). A buyer's
// cancellation request (BuyerRequestedChange) leaves OrderStatus as it
// was; attributes say it was requested. The delivery id is
// NotificationMetadata.NotificationId.
func translateAmazon(req Request) (*delivery, error) {
	inner, wrapper := amazonUnwrap(req.Body)
	if wrapper != "" {
		if err := checkBody(Amazon, inner); err != nil {
			return nil, err
		}
	}
	var n amazonNotification
	if err := decode(Amazon, inner, &n); err != nil {
		return nil, err
	}
	if n.NotificationType != "ORDER_CHANGE" {
		if n.NotificationType == "" {
			return nil, fail(Amazon, ReasonUntranslatable, "the body is no SP-API notification (no NotificationType)")
		}
		return nil, fail(Amazon, ReasonUnknownTopic, "notification type %q is not translated", n.NotificationType)
	}
	oc := n.Payload.OrderChangeNotification
	if oc == nil {
		return nil, fail(Amazon, ReasonUntranslatable, "the notification has no Payload.OrderChangeNotification")
	}
	if strings.TrimSpace(oc.AmazonOrderID) == "" {
		return nil, fail(Amazon, ReasonUntranslatable, "the notification has no AmazonOrderId")
	}
	if strings.TrimSpace(oc.Summary.OrderStatus) == "" {
		return nil, fail(Amazon, ReasonUntranslatable, "the notification has no Summary.OrderStatus")
	}
	changed := ""
	if oc.OrderChangeTrigger.TimeOfOrderChange != nil {
		changed = *oc.OrderChangeTrigger.TimeOfOrderChange
	}
	at, ok := firstTime(changed, n.EventTime)
	if !ok {
		return nil, fail(Amazon, ReasonUntranslatable, "the notification has no TimeOfOrderChange or EventTime with an offset")
	}
	d := &delivery{topic: n.NotificationType, id: cleanID(n.NotificationMetadata.NotificationID), attrs: map[string]any{}}
	set := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			d.attrs[k] = v
		}
	}
	set("fulfillment_type", oc.Summary.FulfillmentType)
	set("order_change_type", oc.OrderChangeType)
	set("change_reason", oc.OrderChangeTrigger.ChangeReason)
	set("marketplace_id", oc.Summary.MarketplaceID)
	set("order_type", oc.Summary.OrderType)
	set("easy_ship_shipment_status", oc.Summary.EasyShipShipmentStatus)
	set("seller_id", oc.SellerID)
	set("relay", wrapper)
	for _, it := range oc.Summary.OrderItems {
		if it.IsBuyerRequestedCancel != nil && *it.IsBuyerRequestedCancel {
			d.attrs["buyer_requested_cancel"] = true
			break
		}
	}
	order := strings.TrimSpace(oc.AmazonOrderID)
	d.records = append(d.records, record{orderID: order, externalRef: order, field: "OrderStatus", status: oc.Summary.OrderStatus, occurredAt: at})
	return d, nil
}
