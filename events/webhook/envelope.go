package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/driftwatch/driftwatch/events"
)

// MaxEmbeddedPayload is the largest payload (compacted JSON) an envelope
// carries in attributes.payload. Larger payloads are not embedded: the
// envelope carries their size and SHA-256 instead (events are at most
// events.MaxEventSize, 64 KiB, and the log keeps every one).
const MaxEmbeddedPayload = 48 << 10

// delivery is what a platform's translator reads from a payload: the
// records (one per status field) and what they share.
type delivery struct {
	// id is the dedupe id: the same for every retry of the delivery.
	id string
	// topic is the platform's name for what happened.
	topic string
	// headerID is the platform's own delivery id header, when it differs
	// from id (kept in attributes.delivery_id).
	headerID string
	// attrs are attributes every envelope carries.
	attrs map[string]any
	// records are the status reports, in publishing order.
	records []record
}

// record is one envelope's worth: a raw status in one field.
type record struct {
	orderID     string
	externalRef string
	field       string
	status      string
	occurredAt  string
	attrs       map[string]any
}

// envelopes builds, validates and sizes the envelopes of d.
func (d *delivery) envelopes(platform, system string, body []byte) ([]events.Event, error) {
	if len(d.records) == 0 {
		return nil, fail(platform, ReasonNoStatus, "the %s payload reports no status", d.topic)
	}
	if d.id == "" {
		d.id = bodyID(d.topic, body)
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	var compact []byte
	if len(body) <= 4*MaxEmbeddedPayload {
		var buf bytes.Buffer
		if json.Compact(&buf, body) == nil && buf.Len() <= MaxEmbeddedPayload {
			compact = buf.Bytes()
		}
	}
	out := make([]events.Event, 0, len(d.records))
	for i, r := range d.records {
		attrs := map[string]any{
			"platform":       platform,
			"topic":          d.topic,
			"payload_sha256": digest,
			"payload_bytes":  len(body),
		}
		if d.headerID != "" && d.headerID != d.id {
			attrs["delivery_id"] = d.headerID
		}
		for k, v := range d.attrs {
			attrs[k] = v
		}
		for k, v := range r.attrs {
			attrs[k] = v
		}
		ev := events.Event{
			EventID:     eventID(d.id, r.field),
			OrderID:     r.orderID,
			System:      system,
			Kind:        events.KindStatus,
			Status:      r.status,
			StatusField: r.field,
			OccurredAt:  r.occurredAt,
			ExternalRef: r.externalRef,
		}
		if i == 0 {
			if compact != nil {
				attrs["payload"] = json.RawMessage(compact)
				if finish(&ev, attrs) == nil {
					out = append(out, ev)
					continue
				}
				delete(attrs, "payload")
			}
			attrs["payload_omitted"] = "too_large"
		} else {
			attrs["payload_event_id"] = out[0].EventID
		}
		if err := finish(&ev, attrs); err != nil {
			return nil, fail(platform, ReasonUntranslatable, "%s", problemText(err))
		}
		out = append(out, ev)
	}
	return out, nil
}

// finish sets ev's attributes and checks the whole envelope.
func finish(ev *events.Event, attrs map[string]any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the payload's own text, not \u0026 for &
	if err := enc.Encode(attrs); err != nil {
		return err
	}
	ev.Attributes = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err := ev.Validate(); err != nil {
		ev.Attributes = nil
		return err
	}
	data, err := ev.Marshal()
	if err != nil {
		return err
	}
	if len(data) > events.MaxEventSize {
		ev.Attributes = nil
		return fmt.Errorf("envelope is %d bytes; the limit is %d", len(data), events.MaxEventSize)
	}
	return nil
}

// problemText is an envelope validation error as a sentence without the
// "invalid event:" prefix.
func problemText(err error) string {
	var ve *events.ValidationError
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		parts := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			parts[i] = p.String()
		}
		return "the envelope would be invalid: " + strings.Join(parts, "; ")
	}
	return err.Error()
}

// checkBody refuses a body that is not one JSON object, or that holds text
// that is not UTF-8 or a key repeated in an object: two readers of such a
// payload could see different statuses. It reuses the envelope's strict
// reading of attributes.
func checkBody(platform string, body []byte) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return fail(platform, ReasonUntranslatable, "the body is not a JSON object")
	}
	probe := events.Event{Attributes: trimmed}
	var ve *events.ValidationError
	if errors.As(probe.Validate(), &ve) {
		for _, p := range ve.Problems {
			if p.Field == "attributes" || strings.HasPrefix(p.Field, "attributes.") || strings.HasPrefix(p.Field, "attributes[") {
				if at := strings.TrimPrefix(p.Field, "attributes"); at != "" {
					return fail(platform, ReasonUntranslatable, "the body is refused at %s: %s", at, p.Message)
				}
				return fail(platform, ReasonUntranslatable, "the body is refused: %s", p.Message)
			}
		}
	}
	return nil
}

// eventID is the event id of a delivery's record in field: readable when
// it fits the envelope's rules, a hash of the same text otherwise.
func eventID(deliveryID, field string) string {
	id := deliveryID + ":" + field
	if printable(id) && utf8.RuneCountInString(id) <= 128 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:20])
}

// bodyID is the dedupe id of a delivery without a delivery id: the hash of
// its topic and body, which a retry repeats.
func bodyID(topic string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(body)
	return "body-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// cleanID is a platform's id as a delivery id: itself when printable and
// short, else "".
func cleanID(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || !printable(s) || utf8.RuneCountInString(s) > 100 {
		return ""
	}
	return s
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return false
		}
	}
	return true
}

// sourceTime returns s when it is an RFC 3339 time with an offset.
func sourceTime(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	if _, msg := events.ParseTimestamp(s); msg != "" {
		return "", false
	}
	return s, true
}

// gmtTime reads a time the platform documents as GMT but writes without an
// offset (WooCommerce's *_gmt fields) and returns it with Z.
func gmtTime(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	if t, ok := sourceTime(s); ok {
		return t, true
	}
	return sourceTime(s + "Z")
}

// unixTime renders Unix seconds as RFC 3339 UTC.
func unixTime(sec int64) string {
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

// firstTime returns the first of the candidates that is a time with an
// offset.
func firstTime(candidates ...string) (string, bool) {
	for _, c := range candidates {
		if t, ok := sourceTime(c); ok {
			return t, true
		}
	}
	return "", false
}

// flexString is a JSON string or number read as text (ids that are numbers
// beyond float64's precision, like Shopify's, keep every digit).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*f = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = flexString(b)
	default:
		return fmt.Errorf("want a string or a number, got %s", b)
	}
	return nil
}

func (f flexString) String() string { return string(f) }

// optString tells a JSON null from an absent key and from a string.
type optString struct {
	set, null bool
	val       string
}

func (o *optString) UnmarshalJSON(b []byte) error {
	o.set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.null = true
		return nil
	}
	var f flexString
	if err := f.UnmarshalJSON(b); err != nil {
		return err
	}
	o.val = string(f)
	return nil
}

// decode reads body into v, numbers kept as text.
func decode(platform string, body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fail(platform, ReasonUntranslatable, "the body does not have the expected shape: %s", jsonProblem(err))
	}
	return nil
}

// jsonProblem is a decoding error without the Go type names encoding/json
// puts in it.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s is a JSON %s", te.Field, te.Value)
		}
		return "a value is a JSON " + te.Value
	}
	return err.Error()
}

// zeroDecimal and threeDecimal are the currencies whose minor unit is not
// the hundredth (Stripe's list of zero-decimal and three-decimal
// currencies).
var (
	zeroDecimal = map[string]bool{
		"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true, "KRW": true, "MGA": true,
		"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
	}
	threeDecimal = map[string]bool{"BHD": true, "JOD": true, "KWD": true, "OMR": true, "TND": true}
)

// minorToDecimal renders an amount in a currency's minor unit as decimal
// text in its major unit (1099 USD -> "10.99", 500 JPY -> "500").
func minorToDecimal(minor int64, currency string) string {
	cur := strings.ToUpper(currency)
	digits := 2
	switch {
	case zeroDecimal[cur]:
		digits = 0
	case threeDecimal[cur]:
		digits = 3
	}
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = uint64(-minor)
	}
	s := strconv.FormatUint(u, 10)
	if digits > 0 {
		for len(s) <= digits {
			s = "0" + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// decimalText returns s when it is a plain decimal amount ("29.35").
func decimalText(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil || strings.ContainsAny(s, "eE+xXpP_") || strings.EqualFold(s, "nan") {
		return "", false
	}
	return s, true
}

// setAmount puts amount and currency into attrs when both are usable.
func setAmount(attrs map[string]any, amount, currency string) {
	if a, ok := decimalText(amount); ok {
		attrs["amount"] = a
		if c := strings.ToUpper(strings.TrimSpace(currency)); c != "" && printable(c) && len(c) <= 8 {
			attrs["currency"] = c
		}
	}
}
