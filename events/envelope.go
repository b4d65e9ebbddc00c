package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxEventSize is the largest envelope accepted, in bytes (64 KiB).
const MaxEventSize = 64 << 10

// EnvelopeVersion is the version of the envelope described by
// schemas/event.schema.json. A change of meaning bumps it.
const EnvelopeVersion = 1

// Kind says what an event reports.
type Kind string

// Event kinds.
const (
	KindStatus   Kind = "status"   // a status change in the system
	KindAck      Kind = "ack"      // the system acknowledges another system's event (AckOf)
	KindSnapshot Kind = "snapshot" // a row of an imported export of the system's current states
)

// Actor says who caused a change.
type Actor string

// Actors.
const (
	ActorIntegration Actor = "integration"
	ActorManual      Actor = "manual"
	ActorSystem      Actor = "system"
)

// Event is the event envelope (CONTRACT.md section 3). OccurredAt keeps the
// string as sent, so its offset is shown as the source wrote it; Occurred is
// the parsed instant, set by Parse and Validate.
type Event struct {
	EventID     string          `json:"event_id"`
	OrderID     string          `json:"order_id"`
	System      string          `json:"system"`
	Kind        Kind            `json:"kind,omitempty"`
	Status      string          `json:"status,omitempty"`
	StatusField string          `json:"status_field,omitempty"`
	OccurredAt  string          `json:"occurred_at"`
	Actor       Actor           `json:"actor,omitempty"`
	AckOf       string          `json:"ack_of,omitempty"`
	ExternalRef string          `json:"external_ref,omitempty"`
	Attributes  json.RawMessage `json:"attributes,omitempty"`

	Occurred time.Time `json:"-"`
	// ZoneAssumed is the zone (an IANA name) occurred_at was read in
	// because it carried no offset and its system has a configured zone
	// (CheckZoned); OccurredAt then holds the sent time with that zone's
	// offset appended. Empty when the event carried its own offset.
	ZoneAssumed string `json:"-"`
}

// EffectiveKind is Kind with its default applied.
func (e *Event) EffectiveKind() Kind {
	if e.Kind == "" {
		return KindStatus
	}
	return e.Kind
}

// EffectiveActor is Actor with its default applied.
func (e *Event) EffectiveActor() Actor {
	if e.Actor == "" {
		return ActorIntegration
	}
	return e.Actor
}

// MsgID is the event's Nats-Msg-Id.
func (e *Event) MsgID() string { return MsgID(e.System, e.EventID) }

// AckTarget splits AckOf into the acknowledged event's system and event id.
func (e *Event) AckTarget() (system, eventID string, ok bool) {
	i := strings.IndexByte(e.AckOf, ':')
	if i <= 0 {
		return "", "", false
	}
	return e.AckOf[:i], e.AckOf[i+1:], true
}

// Marshal encodes the event as JSON.
func (e *Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// Parse decodes and validates one envelope. On failure it returns a
// *ValidationError that lists every problem with its field; the returned
// Event then holds whatever could be decoded (System in particular, so the
// caller can pick the dead-letter subject).
//
// The JSON is read strictly: text that is not valid UTF-8 (or an escape
// of half a surrogate pair) anywhere, keys and attributes included, is an
// invalid_utf8 problem, and a key repeated in any object a duplicate_key
// problem; nothing is repaired or resolved. Such problems come first (the
// error's code is theirs), the other fields are still checked, and a
// top-level field whose key or value has one is left empty in the
// returned Event: its value is in question (a repeated system sends the
// dead letter to _unknown, not to either system).
func Parse(data []byte) (Event, error) {
	var ev Event
	if len(data) > MaxEventSize {
		ve := &ValidationError{}
		ve.Add("", CodeTooLarge, fmt.Sprintf("event is %d bytes; the limit is %d (64 KiB)", len(data), MaxEventSize))
		return ev, ve
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		ve := &ValidationError{}
		ve.Add("", CodeMalformedJSON, "event must be a JSON object")
		return ev, ve
	}
	if fast, ok := parseFast(trimmed); ok {
		return fast, nil
	}
	return parseSlow(trimmed, len(data)-len(bytes.TrimLeftFunc(data, unicode.IsSpace)))
}

// parseSlow is Parse for what the fast path declines: it decodes data
// (trimmed, a JSON object; lead bytes of white space preceded it in the
// input, for the offsets in messages) and reports every problem.
func parseSlow(data []byte, lead int) (Event, error) {
	var ev Event
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		ve := &ValidationError{}
		ve.Add("", CodeMalformedJSON, "malformed JSON: "+err.Error())
		return ev, ve
	}
	text := textScanner{data: data, base: lead}
	if !text.document() {
		// encoding/json took it: the scanner must not be the stricter.
		ve := &ValidationError{}
		ve.Add("", CodeMalformedJSON, fmt.Sprintf("malformed JSON at offset %d", lead+text.i))
		return ev, ve
	}
	ve := &ValidationError{Problems: text.problems}
	for name, raw := range fields {
		if text.tainted[name] && fieldOf([]byte(name)) != fieldUnknown {
			continue // the key or its value is in question
		}
		switch name {
		case "event_id":
			decodeString(ve, name, raw, &ev.EventID)
		case "order_id":
			decodeString(ve, name, raw, &ev.OrderID)
		case "system":
			decodeString(ve, name, raw, &ev.System)
		case "kind":
			var s string
			decodeString(ve, name, raw, &s)
			ev.Kind = Kind(s)
			if s == "" && isJSONString(raw) {
				ev.Kind = "\x00" // present but empty: invalid, reported by validate
			}
		case "status":
			decodeString(ve, name, raw, &ev.Status)
		case "status_field":
			decodeString(ve, name, raw, &ev.StatusField)
			if ev.StatusField == "" && isJSONString(raw) {
				ve.Add(name, CodeInvalidField, "must not be empty when present")
			}
		case "occurred_at":
			decodeString(ve, name, raw, &ev.OccurredAt)
		case "actor":
			var s string
			decodeString(ve, name, raw, &s)
			ev.Actor = Actor(s)
			if s == "" && isJSONString(raw) {
				ev.Actor = "\x00"
			}
		case "ack_of":
			decodeString(ve, name, raw, &ev.AckOf)
			if ev.AckOf == "" && isJSONString(raw) {
				ev.AckOf = "\x00"
			}
		case "external_ref":
			decodeString(ve, name, raw, &ev.ExternalRef)
		case "attributes":
			if len(raw) == 0 || raw[0] != '{' {
				ve.Add(name, CodeInvalidField, "must be a JSON object")
				continue
			}
			ev.Attributes = append(json.RawMessage(nil), raw...)
		default:
			ve.Add(name, CodeUnknownField, "unknown field; the envelope (schemas/event.schema.json) has no such field")
		}
	}
	checks := &ValidationError{}
	ev.validate(checks, fields)
	for _, p := range checks.Problems {
		if !text.tainted[p.Field] {
			ve.Problems = append(ve.Problems, p)
		}
	}
	sortProblems(ve)
	if err := ve.OrNil(); err != nil {
		return ev, err
	}
	return ev, nil
}

func isJSONString(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

func decodeString(ve *ValidationError, field string, raw json.RawMessage, dst *string) {
	if !isJSONString(raw) {
		ve.Add(field, CodeInvalidField, "must be a string, got "+jsonType(raw))
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		ve.Add(field, CodeInvalidField, "must be a string: "+err.Error())
	}
}

func jsonType(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// Validate checks an event built in Go (not decoded by Parse) and sets
// Occurred. It returns a *ValidationError listing every problem. Text is
// held to Parse's rules: a string field that is not valid UTF-8 (which
// encoding/json would encode as U+FFFD) is an invalid_utf8 problem, and
// Attributes must be a JSON object without invalid UTF-8 or repeated keys
// (offsets in those messages count from the start of Attributes).
func (e *Event) Validate() error {
	ve := &ValidationError{}
	e.validateText(ve)
	e.validateAttributes(ve)
	e.validate(ve, nil)
	sortProblems(ve)
	return ve.OrNil()
}

// validateText reports the string fields that are not valid UTF-8.
func (e *Event) validateText(ve *ValidationError) {
	for _, f := range [...]struct{ name, val string }{
		{"event_id", e.EventID}, {"order_id", e.OrderID}, {"system", e.System}, {"kind", string(e.Kind)},
		{"status", e.Status}, {"status_field", e.StatusField}, {"occurred_at", e.OccurredAt},
		{"actor", string(e.Actor)}, {"ack_of", e.AckOf}, {"external_ref", e.ExternalRef},
	} {
		for i := 0; i < len(f.val); {
			r, size := utf8.DecodeRuneInString(f.val[i:])
			if r == utf8.RuneError && size == 1 {
				ve.Add(f.name, CodeInvalidUTF8, fmt.Sprintf("value is not valid UTF-8 (byte 0x%02X at offset %d of the value)", f.val[i], i))
				break
			}
			i += size
		}
	}
}

// validateAttributes checks the Attributes of an event built in Go.
func (e *Event) validateAttributes(ve *ValidationError) {
	if len(e.Attributes) == 0 {
		return
	}
	text := textScanner{data: e.Attributes, path: []pathStep{{key: []byte("attributes"), index: -1}}}
	text.space()
	if text.i == len(text.data) || text.data[text.i] != '{' || !text.document() {
		ve.Add("attributes", CodeInvalidField, "must be a JSON object")
		return
	}
	ve.Problems = append(ve.Problems, text.problems...)
}

// validate checks field values. present, when not nil, tells which fields
// the JSON held, so a field sent with a wrong type is not also reported
// missing.
func (e *Event) validate(ve *ValidationError, present map[string]json.RawMessage) {
	has := func(name string, val string) bool {
		if present != nil {
			_, ok := present[name]
			return ok
		}
		return val != ""
	}
	typed := func(name string) bool { // present with the right type (or built in Go)
		if present == nil {
			return true
		}
		raw, ok := present[name]
		return ok && isJSONString(raw)
	}
	checkID := func(name, val string) {
		if !has(name, val) {
			ve.Add(name, CodeMissingField, "is required")
			return
		}
		if !typed(name) {
			return
		}
		if msg := checkText(val, 1, 128); msg != "" {
			ve.Add(name, CodeInvalidField, msg)
		}
	}
	checkID("event_id", e.EventID)
	checkID("order_id", e.OrderID)

	if !has("system", e.System) {
		ve.Add("system", CodeMissingField, "is required")
	} else if typed("system") && !ValidSystemID(e.System) {
		ve.Add("system", CodeInvalidField, fmt.Sprintf("%q is not a system id: want [a-z][a-z0-9_-]{0,31}", e.System))
	}

	kind := e.Kind
	switch kind {
	case "", KindStatus, KindAck, KindSnapshot:
	default:
		if typed("kind") {
			ve.Add("kind", CodeInvalidField, fmt.Sprintf("%q is not a kind: want status, ack or snapshot", strings.Trim(string(kind), "\x00")))
		}
	}

	_, kindSent := present["kind"]
	if (kind == "" && !kindSent) || kind == KindStatus || kind == KindSnapshot {
		if !has("status", e.Status) {
			ve.Add("status", CodeMissingField, "is required for a "+string(e.EffectiveKind())+" event")
		}
	}
	if has("status", e.Status) && typed("status") {
		if msg := checkText(e.Status, 1, 256); msg != "" {
			ve.Add("status", CodeInvalidField, msg)
		} else if strings.Trim(e.Status, " ") == "" {
			ve.Add("status", CodeInvalidField, "must not be blank")
		}
	}
	if e.StatusField != "" && !validFieldName(e.StatusField) {
		ve.Add("status_field", CodeInvalidField, fmt.Sprintf("%q is not a field name: want [A-Za-z][A-Za-z0-9_.:-]{0,127}", e.StatusField))
	}

	if !has("occurred_at", e.OccurredAt) {
		ve.Add("occurred_at", CodeMissingField, "is required")
	} else if typed("occurred_at") {
		t, msg := ParseTimestamp(e.OccurredAt)
		if msg != "" {
			ve.Add("occurred_at", CodeInvalidField, msg)
		}
		e.Occurred = t
	}

	switch e.Actor {
	case "", ActorIntegration, ActorManual, ActorSystem:
	default:
		if typed("actor") {
			ve.Add("actor", CodeInvalidField, fmt.Sprintf("%q is not an actor: want integration, manual or system", strings.Trim(string(e.Actor), "\x00")))
		}
	}

	if kind == KindAck && !has("ack_of", e.AckOf) {
		ve.Add("ack_of", CodeMissingField, "is required for an ack event: <system>:<event_id> of the acknowledged event")
	}
	if has("ack_of", e.AckOf) && typed("ack_of") {
		sys, id, ok := e.AckTarget()
		if !ok || !ValidSystemID(sys) || checkText(id, 1, 128) != "" {
			ve.Add("ack_of", CodeInvalidField, fmt.Sprintf("%q is not <system>:<event_id>", strings.Trim(e.AckOf, "\x00")))
		}
	}
	if utf8.RuneCountInString(e.ExternalRef) > 128 {
		ve.Add("external_ref", CodeInvalidField, "is longer than 128 characters")
	}
}

// checkText checks a length in characters and the absence of control
// characters (C0, DEL, C1). It returns "" when s is fine.
func checkText(s string, min, max int) string {
	n := 0
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return fmt.Sprintf("must not contain control characters (found U+%04X)", r)
		}
		n++
	}
	if n < min {
		return "must not be empty"
	}
	if n > max {
		return fmt.Sprintf("is %d characters; at most %d", n, max)
	}
	return ""
}

func validFieldName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return false
		}
		if !(letter || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// ParseTimestamp parses an RFC 3339 timestamp that must carry an offset or
// Z (2026-11-27T10:04:05-04:00, 2026-11-27T14:04:05.123Z). It returns a
// sentence saying what is wrong, or "".
func ParseTimestamp(s string) (time.Time, string) {
	if !timestampShape(s) {
		if lacksOffset(s) {
			return time.Time{}, fmt.Sprintf("%q has no offset: want RFC 3339 with an offset or Z, e.g. 2026-11-27T10:04:05-04:00", s)
		}
		return time.Time{}, fmt.Sprintf("%q is not an RFC 3339 timestamp with an offset, e.g. 2026-11-27T10:04:05-04:00", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Sprintf("%q is not a valid date and time: %v", s, err)
	}
	return t, ""
}

// lacksOffset reports whether s is an RFC 3339 date and time that only
// lacks its offset (2026-11-27T10:04:05).
func lacksOffset(s string) bool {
	return len(s) >= 19 && s[10] == 'T' && !timestampShape(s) && timestampShape(s+"Z")
}

// assumeZone clears err when its only problem is an occurred_at without an
// offset and the event's system has a zone: the time is read in that zone,
// OccurredAt gets the zone's offset at that instant appended, and
// ZoneAssumed names the zone. Any other problem keeps err as it is.
func assumeZone(ev *Event, err error, zones ZoneOf) error {
	ve, ok := err.(*ValidationError)
	if !ok || len(ve.Problems) != 1 || ve.Problems[0].Field != "occurred_at" || !lacksOffset(ev.OccurredAt) || !ValidSystemID(ev.System) {
		return err
	}
	loc := zones(ev.System)
	if loc == nil {
		return err
	}
	t, perr := time.ParseInLocation("2006-01-02T15:04:05.999999999", ev.OccurredAt, loc)
	if perr != nil {
		return err
	}
	ev.Occurred = t
	if strings.HasPrefix(ev.OccurredAt, t.Format("2006-01-02T15:04:05")) {
		ev.OccurredAt += t.Format("Z07:00")
	} else {
		// A wall time the zone skips (the hour a change to daylight
		// saving time removes) reads as a time after the gap: say which.
		ev.OccurredAt = t.Format(time.RFC3339Nano)
	}
	ev.ZoneAssumed = loc.String()
	return nil
}

// timestampShape matches
// ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$
// without a regexp, the same pattern as the JSON Schema.
func timestampShape(s string) bool {
	digits := func(from, n int) bool {
		if from+n > len(s) {
			return false
		}
		for i := from; i < from+n; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2) ||
		s[10] != 'T' || !digits(11, 2) || s[13] != ':' || !digits(14, 2) || s[16] != ':' || !digits(17, 2) {
		return false
	}
	i := 19
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i-1 < 1 || j-i-1 > 9 {
			return false
		}
		i = j
	}
	rest := s[i:]
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && digits(i+1, 2) && rest[3] == ':' && digits(i+4, 2)
}

// sortProblems orders problems so output is stable: those with the text
// itself (invalid_utf8, duplicate_key) first, so the error's code is
// theirs, then by field.
func sortProblems(ve *ValidationError) {
	slices.SortStableFunc(ve.Problems, func(a, b Problem) int {
		if ta, tb := isTextCode(a.Code), isTextCode(b.Code); ta != tb {
			if ta {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Field, b.Field)
	})
}
