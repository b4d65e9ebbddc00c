// Package webhook is the pure part of driftwatch's native platform
// webhooks: it verifies that a delivery was sent by its platform, and
// translates a verified delivery into event envelopes (CONTRACT.md section
// 3) that carry the platform's raw statuses exactly as its mapping table
// (events/mapping) spells them. It does no I/O: an HTTP handler reads the
// request, calls Verify, then Translate, and publishes the envelopes in
// the order returned.
//
// # Functions
//
// Verify(platform, req, secrets, now) checks req's signature (or shared
// secret) against every secret (two may be valid at once while one is
// rotated) and, where the scheme signs a timestamp, that it is within five
// minutes of now either way. It returns nil or an *Error with reason
// missing_signature, bad_signature, expired, no_secret or
// unknown_platform. Comparisons are constant-time (hmac.Equal; a shared
// secret is compared through its SHA-256, hiding its length), every secret
// is tried whatever matched, and no error text holds a secret or a
// signature. VerifyWith takes Options: the tolerance, the shared-secret header
// name, the path EasyPost must have signed.
//
// Translate(platform, req, system) returns the envelopes of a verified
// delivery, the delivery id their event ids derive from, or an *Error with
// reason unknown_topic (a topic driftwatch does not translate: answer 2xx
// and drop it), untranslatable (the payload lacks an order id, a status or
// a time, is not a JSON object, or holds invalid UTF-8 or a repeated key),
// no_status (understood, but nothing the tables can use) or
// unknown_platform. Each envelope is checked with events' Validate.
//
// Sign(platform, body, secret, now) returns the headers the platform would
// send; Verify accepts them. It serves tests and a "send a signed test
// delivery" command.
//
// # Envelopes
//
//   - event_id is "<delivery id>:<status field>" (or its SHA-256 when
//     longer than 128 characters or not printable), so a retried delivery
//     publishes the same event ids and JetStream's dedupe drops it. A
//     delivery without an id gets one from the hash of its topic and body.
//   - One envelope per status field the payload reports, in publishing
//     order: on equal occurred_at the projection keeps the one published
//     last.
//   - occurred_at is the payload's own time, with the offset the platform
//     wrote (Unix times are rendered in UTC).
//   - attributes: platform, topic, payload_sha256 and payload_bytes (of the
//     body as received), amount (decimal text in the currency's major unit)
//     and currency (ISO 4217, upper case) when the payload has them,
//     delivery_id (the platform's delivery header when it is not the dedupe
//     id), and platform details listed below. The first envelope also
//     carries the payload itself, compacted, as attributes.payload when it
//     is at most MaxEmbeddedPayload (48 KiB) and the envelope stays within
//     events.MaxEventSize (64 KiB); otherwise payload_omitted is
//     "too_large" and only the hash and size remain (a caller that must
//     keep such bodies stores them by their SHA-256). Later envelopes of
//     the delivery name the first in payload_event_id instead of repeating
//     the payload.
//
// # Platforms
//
// Shopify (X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body). Dedupe:
// X-Shopify-Webhook-Id. Topics orders/create, orders/updated,
// orders/cancelled, orders/fulfilled, orders/partially_fulfilled and
// orders/paid (the REST Order) yield up to three envelopes: fulfillment_status
// (a JSON null is sent as "null", the table's spelling; left out for a
// cancelled order, whose cancel_reason says more), financial_status, and
// cancel_reason when cancelled_at is set, in that order. refunds/create
// yields refund.transaction.status (the last refund transaction's status;
// a refund without one is no_status); returns/* yields return.status in
// the table's upper-case ReturnStatus spelling (from the payload's status,
// else the one the topic implies; the payload's spelling is kept in
// attributes.raw_status). order_id is the order's numeric id as text (every
// digit kept; refunds and returns only carry this id), external_ref its
// name (#1001). occurred_at: updated_at (processed_at, created_at, then
// X-Shopify-Triggered-At when absent), in the shop's offset. Amount:
// total_price and currency.
//
// Stripe (Stripe-Signature: t=<unix>,v1=<hex>[,v1=...], HMAC-SHA256 hex of
// "<t>.<body>"; several v1 are allowed; five minutes' tolerance). Dedupe:
// the event id. Types payment_intent.*, charge.* (charge.refunded,
// charge.dispute.*) and refund.* yield one envelope: the type in the
// table's event.type field (the object's own status is in
// attributes.object_status). order_id is the object's metadata.order_id,
// else its PaymentIntent's id (the object's id for a payment_intent, its
// payment_intent otherwise), else the object's id; external_ref is the
// PaymentIntent's id. Charges do not carry their PaymentIntent's
// metadata, so a store that sets metadata.order_id should set it on both
// or rely on the PaymentIntent id. occurred_at: the event's created, in
// UTC. Amount: amount_received (else amount) converted from the minor
// unit (zero- and three-decimal currencies included); amount_refunded too.
//
// BigCommerce (Standard Webhooks: webhook-id, webhook-timestamp,
// webhook-signature "v1,<base64>" over "<id>.<timestamp>.<body>"; a
// "whsec_" secret is base64, any other is the key as is, which is what
// BigCommerce's client secret becomes in their example code; five minutes'
// tolerance. Without those headers: the shared secret in
// Options.SecretHeader, default X-Driftwatch-Secret, set as a webhook
// header when the webhook is created). Scope store/order/statusUpdated
// yields one envelope: new_status_id in the table's status_id field
// (the previous id is in attributes). order_id and external_ref are
// data.id. occurred_at: created_at (else webhook-timestamp), in UTC.
// Dedupe: webhook-id, else the payload's hash with its created_at.
//
// WooCommerce (X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body, the
// secret passed through wp_specialchars_decode as WooCommerce does).
// Topics order.created, order.updated, order.restored yield one envelope:
// the REST order's status in the status field. order_id is the id,
// external_ref the number. occurred_at: date_modified_gmt with Z (the
// field has no offset; date_modified is the site's local time and is not
// used). WooCommerce makes a new X-WC-Webhook-Delivery-ID for every
// attempt, so the dedupe id is "<id>@<date_modified_gmt>/<status>" and the
// header is kept in attributes.delivery_id. Amount: total and currency.
// WooCommerce's first delivery of a new webhook is an unsigned form post
// (webhook_id=N): it fails Verify with missing_signature.
//
// EasyPost (secret normalised to NFKD, as EasyPost's libraries do;
// X-Hmac-Signature "hmac-sha256-hex=<hex>" of the body, or, when sent,
// X-Hmac-Signature-V2 over X-Timestamp (RFC 2822) + "POST" + X-Path +
// body, also accepted without the method, with five minutes' tolerance and,
// when Options.Path is set, X-Path equal to it). Dedupe: the Event's id.
// tracker.created and tracker.updated yield one envelope: the Tracker's
// status in the status field. A Tracker carries no order id: order_id is
// its tracking_code, external_ref the Tracker's id; carrier, status_detail
// and shipment_id are in attributes. occurred_at: the latest
// tracking_details datetime (the carrier's scan), else the Tracker's
// updated_at, else the Event's.
//
// Amazon SP-API ORDER_CHANGE (delivered by an EventBridge API destination
// or an SQS relay with the shared secret in Options.SecretHeader; the body
// is the notification, an EventBridge event whose detail is it, or an SQS
// message record whose body is it). Dedupe:
// NotificationMetadata.NotificationId. One envelope: Summary.OrderStatus in
// the OrderStatus field; FulfillmentType, OrderChangeType, ChangeReason and
// a buyer's cancellation request are in attributes. order_id and
// external_ref are the AmazonOrderId. occurred_at:
// OrderChangeTrigger.TimeOfOrderChange, else EventTime.
package webhook
