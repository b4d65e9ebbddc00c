package events

import (
	"encoding/json"
	"unicode/utf8"
)

// parseFast decodes a well-formed envelope in one pass over its bytes, the
// common case, and validates it. It understands exactly the envelope's
// shape: one object of known keys, each at most once, with plain string
// values (no escapes) and an optional attributes object, walked by a
// textScanner in the same pass. Anything else (an unknown or repeated key,
// a null, a number where a string belongs, an escape sequence, an empty
// optional field, invalid UTF-8 or a repeated key anywhere, attributes
// included, any validation problem) returns ok false and the caller takes
// the slow path, which reports every problem with its field: the fast path
// never decides that an event is bad, so both paths accept and reject the
// same input.
//
// All string fields share one allocation (a copy of data); attributes are
// copied once. data must be trimmed of surrounding white space.
func parseFast(data []byte) (Event, bool) {
	var ev Event
	p := fastParser{data: data}
	if !p.byte('{') {
		return ev, false
	}
	// spans of the string values in data, by field
	var spans [nFields][2]int
	var present [nFields]bool
	attrs := [2]int{-1, -1}
	p.space()
	if p.peek() == '}' {
		return ev, false // no required field
	}
	for {
		ks, ke, ok := p.plainString()
		if !ok || !p.byte(':') {
			return ev, false
		}
		f := fieldOf(data[ks:ke])
		switch {
		case f == fieldUnknown:
			return ev, false
		case f == fieldAttributes:
			if attrs[0] >= 0 {
				return ev, false
			}
			p.space()
			start := p.i
			if p.peek() != '{' {
				return ev, false
			}
			// The envelope encloses the attributes object: depth 1.
			text := textScanner{data: data, i: start, quick: true}
			if !text.value(1) {
				return ev, false
			}
			p.i = text.i
			attrs = [2]int{start, p.i}
		default:
			if present[f] {
				return ev, false
			}
			vs, ve, ok := p.plainString()
			if !ok {
				return ev, false
			}
			present[f] = true
			spans[f] = [2]int{vs, ve}
		}
		p.space()
		switch p.next() {
		case ',':
			continue
		case '}':
		default:
			return ev, false
		}
		break
	}
	p.space()
	if p.i != len(data) {
		return ev, false
	}
	// Required fields present and non-empty; optional ones, when present,
	// non-empty (except external_ref, which may be empty).
	for f := range nFields {
		empty := spans[f][0] == spans[f][1]
		switch {
		case fieldRequired[f] && (!present[f] || empty):
			return ev, false
		case present[f] && empty && f != fieldExternalRef:
			return ev, false
		}
	}
	s := string(data) // one allocation for every string field
	get := func(f int) string { return s[spans[f][0]:spans[f][1]] }
	ev.EventID, ev.OrderID, ev.System, ev.OccurredAt = get(fieldEventID), get(fieldOrderID), get(fieldSystem), get(fieldOccurredAt)
	ev.Kind, ev.Status, ev.StatusField = Kind(get(fieldKind)), get(fieldStatus), get(fieldStatusField)
	ev.Actor, ev.AckOf, ev.ExternalRef = Actor(get(fieldActor)), get(fieldAckOf), get(fieldExternalRef)
	ve := ValidationError{}
	ev.validate(&ve, nil)
	if len(ve.Problems) > 0 {
		return Event{}, false
	}
	if attrs[0] >= 0 {
		ev.Attributes = append(json.RawMessage(nil), data[attrs[0]:attrs[1]]...)
	}
	return ev, true
}

// The envelope's fields, as the fast path knows them.
const (
	fieldEventID = iota
	fieldOrderID
	fieldSystem
	fieldKind
	fieldStatus
	fieldStatusField
	fieldOccurredAt
	fieldActor
	fieldAckOf
	fieldExternalRef
	nFields
	fieldAttributes = nFields
	fieldUnknown    = nFields + 1
)

var fieldRequired = [nFields]bool{fieldEventID: true, fieldOrderID: true, fieldSystem: true, fieldOccurredAt: true}

func fieldOf(key []byte) int {
	switch string(key) { // no allocation: the compiler compares in place
	case "event_id":
		return fieldEventID
	case "order_id":
		return fieldOrderID
	case "system":
		return fieldSystem
	case "kind":
		return fieldKind
	case "status":
		return fieldStatus
	case "status_field":
		return fieldStatusField
	case "occurred_at":
		return fieldOccurredAt
	case "actor":
		return fieldActor
	case "ack_of":
		return fieldAckOf
	case "external_ref":
		return fieldExternalRef
	case "attributes":
		return fieldAttributes
	}
	return fieldUnknown
}

// fastParser walks JSON bytes. Every method reports false on anything it
// does not accept; the caller then gives up on the fast path.
type fastParser struct {
	data []byte
	i    int
}

func (p *fastParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) peek() byte {
	if p.i < len(p.data) {
		return p.data[p.i]
	}
	return 0
}

func (p *fastParser) next() byte {
	c := p.peek()
	p.i++
	return c
}

// byte skips white space and then c.
func (p *fastParser) byte(c byte) bool {
	p.space()
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

// plainString reads a string without escapes or control characters, in
// valid UTF-8, and returns the span of its contents.
func (p *fastParser) plainString() (start, end int, ok bool) {
	if !p.byte('"') {
		return 0, 0, false
	}
	start = p.i
	ascii := true
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			end = p.i
			p.i++
			if !ascii && !utf8.Valid(p.data[start:end]) {
				return 0, 0, false
			}
			return start, end, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return 0, 0, false
}

// skipValue moves past one JSON object or array, tracking strings (with
// escapes) so brackets inside them do not count. It checks nesting only.
func (p *fastParser) skipValue() bool {
	depth := 0
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case '"':
			if !p.skipString() {
				return false
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		p.i++
		if depth == 0 {
			return true
		}
	}
	return false
}

// skipString moves past one string, escapes included, from its opening
// quote.
func (p *fastParser) skipString() bool {
	p.i++
	for p.i < len(p.data) && p.data[p.i] != '"' {
		if p.data[p.i] == '\\' {
			p.i++
		}
		p.i++
	}
	if p.i >= len(p.data) {
		return false
	}
	p.i++
	return true
}

// ObjectMembers calls fn with each member of a JSON object, in order: its
// key (which must be a plain string, without escapes) and its value's raw
// bytes. It returns false, having called fn for some members or none, when
// obj is not such an object; the caller then decodes it the slow way. It
// does not validate the values: obj should come from a validated envelope.
func ObjectMembers(obj []byte, fn func(key, value []byte)) bool {
	p := fastParser{data: obj}
	if !p.byte('{') {
		return false
	}
	p.space()
	if p.peek() == '}' {
		p.i++
		p.space()
		return p.i == len(obj)
	}
	for {
		ks, ke, ok := p.plainString()
		if !ok || !p.byte(':') {
			return false
		}
		p.space()
		vs := p.i
		if !p.skipAny() {
			return false
		}
		fn(obj[ks:ke], obj[vs:p.i])
		p.space()
		switch p.next() {
		case ',':
			continue
		case '}':
			p.space()
			return p.i == len(obj)
		}
		return false
	}
}

// skipAny moves past one JSON value of any kind.
func (p *fastParser) skipAny() bool {
	switch c := p.peek(); {
	case c == '{' || c == '[':
		return p.skipValue()
	case c == '"':
		return p.skipString()
	default: // a number, true, false or null
		start := p.i
		for p.i < len(p.data) {
			switch p.data[p.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return p.i > start
			}
			p.i++
		}
		return p.i > start
	}
}
