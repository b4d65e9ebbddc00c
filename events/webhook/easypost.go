package webhook

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
)

// EasyPost signs with the webhook's secret normalised to Unicode NFKD and
// encoded as UTF-8, as EasyPost's client libraries do (validate_webhook:
// unicodedata.normalize("NFKD", secret)). Two forms:
//
//   - X-Hmac-Signature: "hmac-sha256-hex=" + hex(HMAC-SHA256(key, raw
//     body)). No timestamp.
//   - X-Hmac-Signature-V2, with X-Timestamp (RFC 2822, "Tue, 19 Aug 2025
//     20:37:09 -0000") and X-Path (the request path): "hmac-sha256-hex=" +
//     hex(HMAC-SHA256(key, timestamp + "POST" + path + raw body)).
//     EasyPost's help article names these headers; the string it signs is
//     the one public receivers compute. The form without the method
//     (timestamp + path + body) is accepted as well.
//
// When the V2 header is present it is the one checked (a delivery carrying
// both cannot be verified by the weaker form alone). The event's id is the
// same for every retry.

const (
	epSignature   = "X-Hmac-Signature"
	epSignatureV2 = "X-Hmac-Signature-V2"
	epTimestamp   = "X-Timestamp"
	epPath        = "X-Path"
	epPrefix      = "hmac-sha256-hex="
)

func easyPostKey(secret []byte) []byte { return norm.NFKD.Bytes(secret) }

// easyPostDigest reads "hmac-sha256-hex=<hex>" (or bare hex).
func easyPostDigest(v string) ([]byte, bool) {
	v = strings.TrimSpace(v)
	if len(v) >= len(epPrefix) && strings.EqualFold(v[:len(epPrefix)], epPrefix) {
		v = v[len(epPrefix):]
	}
	b, err := hex.DecodeString(v)
	return b, err == nil && len(b) > 0
}

func verifyEasyPost(req Request, keys Secrets, now time.Time, o Options) error {
	if v2 := header(req.Header, epSignatureV2); v2 != "" {
		ts, path := header(req.Header, epTimestamp), header(req.Header, epPath)
		if ts == "" || path == "" {
			return fail(EasyPost, ReasonMissingSignature, "%s needs %s and %s", epSignatureV2, epTimestamp, epPath)
		}
		when, err := mail.ParseDate(ts)
		if err != nil {
			return fail(EasyPost, ReasonBadSignature, "%s is not an RFC 2822 date", epTimestamp)
		}
		got, ok := easyPostDigest(v2)
		if !ok {
			return fail(EasyPost, ReasonBadSignature, "%s is not hmac-sha256-hex=<hex>", epSignatureV2)
		}
		withMethod := matchAny(keys, [][]byte{got}, func(k []byte) []byte {
			return mac(easyPostKey(k), []byte(ts), []byte(http.MethodPost), []byte(path), req.Body)
		})
		withoutMethod := matchAny(keys, [][]byte{got}, func(k []byte) []byte {
			return mac(easyPostKey(k), []byte(ts), []byte(path), req.Body)
		})
		if !withMethod && !withoutMethod {
			return fail(EasyPost, ReasonBadSignature, "no configured secret produces the %s signature", epSignatureV2)
		}
		if o.Path != "" && path != o.Path {
			return fail(EasyPost, ReasonBadSignature, "%s names another path than the one the delivery was posted to", epPath)
		}
		if !within(when, now, o.tolerance()) {
			return fail(EasyPost, ReasonExpired, "%s is %s; the tolerance is %s", epTimestamp, skew(when, now), o.tolerance())
		}
		return nil
	}
	v1 := header(req.Header, epSignature)
	if v1 == "" {
		return fail(EasyPost, ReasonMissingSignature, "no %s or %s header", epSignatureV2, epSignature)
	}
	got, ok := easyPostDigest(v1)
	if !ok {
		return fail(EasyPost, ReasonBadSignature, "%s is not hmac-sha256-hex=<hex>", epSignature)
	}
	if !matchAny(keys, [][]byte{got}, func(k []byte) []byte { return mac(easyPostKey(k), req.Body) }) {
		return fail(EasyPost, ReasonBadSignature, "no configured secret produces the %s signature", epSignature)
	}
	return nil
}

// signEasyPost sends both forms, as a delivery signed by EasyPost may.
func signEasyPost(body, secret []byte, now time.Time, o Options) http.Header {
	key := easyPostKey(secret)
	ts := now.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")
	path := o.path()
	h := http.Header{}
	h.Set(epSignature, epPrefix+hex.EncodeToString(mac(key, body)))
	h.Set(epTimestamp, ts)
	h.Set(epPath, path)
	h.Set(epSignatureV2, epPrefix+hex.EncodeToString(mac(key, []byte(ts), []byte(http.MethodPost), []byte(path), body)))
	return h
}

type easyPostEvent struct {
	ID          string          `json:"id"`
	Object      string          `json:"object"`
	Description string          `json:"description"`
	Mode        string          `json:"mode"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
	Result      json.RawMessage `json:"result"`
}

type easyPostTracker struct {
	ID              string  `json:"id"`
	Object          string  `json:"object"`
	TrackingCode    string  `json:"tracking_code"`
	Status          string  `json:"status"`
	StatusDetail    string  `json:"status_detail"`
	Carrier         string  `json:"carrier"`
	ShipmentID      *string `json:"shipment_id"`
	IsReturn        *bool   `json:"is_return"`
	UpdatedAt       string  `json:"updated_at"`
	TrackingDetails []struct {
		Status   string `json:"status"`
		Datetime string `json:"datetime"`
	} `json:"tracking_details"`
}

// translateEasyPost reads a tracker.created or tracker.updated Event: one
// record, the Tracker's status in the table's status field. A Tracker
// names no order: the order id is the tracking code (the key a shipment's
// other systems also know), the external ref the Tracker's id. The time is
// that of the latest tracking detail (the carrier's scan), else the
// Tracker's updated_at, else the Event's.
func translateEasyPost(req Request) (*delivery, error) {
	var e easyPostEvent
	if err := decode(EasyPost, req.Body, &e); err != nil {
		return nil, err
	}
	if e.Object != "" && e.Object != "Event" {
		return nil, fail(EasyPost, ReasonUntranslatable, "the body is a %q object, not an Event", e.Object)
	}
	if e.Description != "tracker.created" && e.Description != "tracker.updated" {
		if e.Description == "" {
			return nil, fail(EasyPost, ReasonUntranslatable, "the Event has no description")
		}
		return nil, fail(EasyPost, ReasonUnknownTopic, "event %q is not translated", e.Description)
	}
	d := &delivery{topic: e.Description, id: cleanID(e.ID), attrs: map[string]any{}}
	if len(e.Result) == 0 || e.Result[0] != '{' {
		return nil, fail(EasyPost, ReasonUntranslatable, "the Event has no result")
	}
	var t easyPostTracker
	if err := decode(EasyPost, e.Result, &t); err != nil {
		return nil, err
	}
	if t.Object != "" && t.Object != "Tracker" {
		return nil, fail(EasyPost, ReasonUntranslatable, "the result is a %q, not a Tracker", t.Object)
	}
	if strings.TrimSpace(t.TrackingCode) == "" {
		return nil, fail(EasyPost, ReasonUntranslatable, "the Tracker has no tracking_code")
	}
	if strings.TrimSpace(t.Status) == "" {
		return nil, fail(EasyPost, ReasonUntranslatable, "the Tracker has no status")
	}
	at, latest := "", time.Time{}
	for _, td := range t.TrackingDetails {
		if s, ok := sourceTime(td.Datetime); ok {
			if w, err := time.Parse(time.RFC3339Nano, s); err == nil && (at == "" || w.After(latest)) {
				at, latest = s, w
			}
		}
	}
	if at == "" {
		var ok bool
		if at, ok = firstTime(t.UpdatedAt, e.UpdatedAt, e.CreatedAt); !ok {
			return nil, fail(EasyPost, ReasonUntranslatable, "the Event has no time: no tracking detail, updated_at or created_at with an offset")
		}
	}
	d.attrs["tracking_code"] = t.TrackingCode
	if t.Carrier != "" {
		d.attrs["carrier"] = t.Carrier
	}
	if t.StatusDetail != "" {
		d.attrs["status_detail"] = t.StatusDetail
	}
	if t.ShipmentID != nil && *t.ShipmentID != "" {
		d.attrs["shipment_id"] = *t.ShipmentID
	}
	if t.IsReturn != nil {
		d.attrs["is_return"] = *t.IsReturn
	}
	if e.Mode != "" {
		d.attrs["mode"] = e.Mode
	}
	d.records = append(d.records, record{orderID: strings.TrimSpace(t.TrackingCode), externalRef: t.ID, field: "status", status: t.Status, occurredAt: at})
	return d, nil
}
