package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BigCommerce signs with Standard Webhooks (https://www.standardwebhooks.com):
// webhook-id, webhook-timestamp (Unix seconds) and webhook-signature, a
// space-separated list of "v1,<base64>" where each is
// base64(HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")). A secret
// written "whsec_<base64>" is the spec's form: the key is the decoded
// base64. Any other secret is the key as it is: BigCommerce's docs pass
// base64(client secret) to the Standard Webhooks libraries, which decode
// it back to the client secret. Without those headers, a delivery must
// carry the shared secret in Options.SecretHeader, a header the webhook
// was created with (BigCommerce's webhook headers field).

const (
	swID        = "webhook-id"
	swTimestamp = "webhook-timestamp"
	swSignature = "webhook-signature"
)

// standardKey is the HMAC key of a configured secret; ok is false for a
// whsec_ secret that is not base64 (it can match nothing).
func standardKey(secret []byte) ([]byte, bool) {
	s := string(secret)
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(key) == 0 {
			return nil, false
		}
		return key, true
	}
	return secret, true
}

// parseStandardSignatures returns the v1 signatures of a webhook-signature
// header; other versions (v1a, asymmetric) are ignored.
func parseStandardSignatures(h string) ([][]byte, bool) {
	var out [][]byte
	malformed := false
	for _, tok := range strings.Fields(h) {
		ver, sig, ok := strings.Cut(tok, ",")
		if !ok || ver != "v1" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			malformed = true
			continue
		}
		out = append(out, b)
	}
	return out, !malformed || len(out) > 0
}

func verifyStandardWebhooks(platform string, req Request, keys Secrets, now time.Time, o Options) error {
	id, ts, sig := header(req.Header, swID), header(req.Header, swTimestamp), header(req.Header, swSignature)
	switch {
	case sig == "":
		return fail(platform, ReasonMissingSignature, "no %s header", swSignature)
	case id == "" || ts == "":
		return fail(platform, ReasonMissingSignature, "%s needs %s and %s", swSignature, swID, swTimestamp)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fail(platform, ReasonBadSignature, "%s is not Unix seconds", swTimestamp)
	}
	sigs, ok := parseStandardSignatures(sig)
	if !ok || len(sigs) == 0 {
		return fail(platform, ReasonBadSignature, "%s holds no v1,<base64> signature", swSignature)
	}
	matched := matchAny(keys, sigs, func(k []byte) []byte {
		key, ok := standardKey(k)
		if !ok {
			return nil
		}
		return mac(key, []byte(id), []byte("."), []byte(ts), []byte("."), req.Body)
	})
	if !matched {
		return fail(platform, ReasonBadSignature, "no configured secret produces a v1 signature of %s", swSignature)
	}
	if !within(time.Unix(sec, 0), now, o.tolerance()) {
		return fail(platform, ReasonExpired, "%s is %s; the tolerance is %s", swTimestamp, skew(time.Unix(sec, 0), now), o.tolerance())
	}
	return nil
}

func verifyBigCommerce(req Request, keys Secrets, now time.Time, o Options) error {
	if header(req.Header, swSignature) != "" || header(req.Header, swID) != "" || header(req.Header, swTimestamp) != "" {
		return verifyStandardWebhooks(BigCommerce, req, keys, now, o)
	}
	return verifySharedSecret(BigCommerce, req, keys, o)
}

// signBigCommerce signs with Standard Webhooks; the message id is derived
// from the body and the time, so signing twice gives the same headers.
func signBigCommerce(body, secret []byte, now time.Time, _ Options) http.Header {
	key, ok := standardKey(secret)
	if !ok {
		key = secret
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	sum := sha256.Sum256(append([]byte(ts+"."), body...))
	id := "msg_" + hex.EncodeToString(sum[:12])
	h := http.Header{}
	h.Set(swID, id)
	h.Set(swTimestamp, ts)
	h.Set(swSignature, "v1,"+base64.StdEncoding.EncodeToString(mac(key, []byte(id), []byte("."), []byte(ts), []byte("."), body)))
	return h
}

type bigCommerceBody struct {
	Scope     string     `json:"scope"`
	StoreID   flexString `json:"store_id"`
	Producer  string     `json:"producer"`
	Hash      string     `json:"hash"`
	CreatedAt flexString `json:"created_at"`
	Data      struct {
		Type   string     `json:"type"`
		ID     flexString `json:"id"`
		Status *struct {
			Previous flexString `json:"previous_status_id"`
			New      flexString `json:"new_status_id"`
		} `json:"status"`
	} `json:"data"`
}

// translateBigCommerce reads a store/order/statusUpdated callback: one
// record, new_status_id in the table's status_id field. The delivery id is
// webhook-id when sent, else the payload's hash with its created_at (the
// hash alone repeats when an order returns to a pair of statuses it had).
func translateBigCommerce(req Request) (*delivery, error) {
	var b bigCommerceBody
	if err := decode(BigCommerce, req.Body, &b); err != nil {
		return nil, err
	}
	d := &delivery{topic: b.Scope, attrs: map[string]any{}}
	if b.Scope != "store/order/statusUpdated" {
		if b.Scope == "" {
			return nil, fail(BigCommerce, ReasonUntranslatable, "the callback has no scope")
		}
		return nil, fail(BigCommerce, ReasonUnknownTopic, "scope %q is not translated", b.Scope)
	}
	d.headerID = cleanID(header(req.Header, swID))
	d.id = d.headerID
	if d.id == "" && cleanID(b.Hash) != "" {
		d.id = cleanID(b.Hash)
		if b.CreatedAt != "" {
			d.id += "-" + b.CreatedAt.String()
		}
	}
	if b.Data.ID == "" {
		return nil, fail(BigCommerce, ReasonUntranslatable, "the callback has no data.id (the order id)")
	}
	if b.Data.Status == nil || b.Data.Status.New == "" {
		return nil, fail(BigCommerce, ReasonUntranslatable, "the callback has no data.status.new_status_id")
	}
	at := ""
	if sec, err := strconv.ParseInt(b.CreatedAt.String(), 10, 64); err == nil && sec > 0 {
		at = unixTime(sec)
	} else if sec, err := strconv.ParseInt(header(req.Header, swTimestamp), 10, 64); err == nil && sec > 0 {
		at = unixTime(sec)
	} else {
		return nil, fail(BigCommerce, ReasonUntranslatable, "the callback has no created_at and no %s header", swTimestamp)
	}
	if b.Data.Status.Previous != "" {
		d.attrs["previous_status_id"] = b.Data.Status.Previous.String()
	}
	if b.StoreID != "" {
		d.attrs["store_id"] = b.StoreID.String()
	}
	if b.Producer != "" {
		d.attrs["producer"] = b.Producer
	}
	order := b.Data.ID.String()
	d.records = append(d.records, record{orderID: order, externalRef: order, field: "status_id", status: b.Data.Status.New.String(), occurredAt: at})
	return d, nil
}
