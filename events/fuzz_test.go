package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse checks the envelope decoder never panics, that every failure is
// a *ValidationError with at least one problem and text that is UTF-8, that
// an accepted input is valid UTF-8 without a repeated key (checked here
// with encoding/json's tokenizer), and that an accepted event re-encodes to
// an envelope that is accepted again with the same meaning.
func FuzzParse(f *testing.F) {
	for _, c := range envelopeCases() {
		f.Add([]byte(c.json))
	}
	for _, c := range strictCases() {
		f.Add([]byte(c.json))
	}
	for _, c := range strictValidCases() {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error text is not UTF-8: %q", err.Error())
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted invalid UTF-8: %q", data)
		}
		if repeatsAKey(data) {
			t.Fatalf("accepted a repeated key: %q", data)
		}
		out, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, out)
		}
		if back.EventID != ev.EventID || back.OrderID != ev.OrderID || back.Status != ev.Status || !back.Occurred.Equal(ev.Occurred) {
			t.Fatalf("round trip changed the event: %+v vs %+v", back, ev)
		}
	})
}

// FuzzCheckZoned checks that reading times in a system's zone never panics,
// never accepts what Parse rejects for another reason, and that an accepted
// event's occurred_at (with the zone's offset appended where one was
// assumed) parses to the same instant on its own.
func FuzzCheckZoned(f *testing.F) {
	for _, c := range envelopeCases() {
		f.Add([]byte(c.json))
	}
	f.Add([]byte(`{"event_id":"e1","order_id":"O1","system":"wms","status":"picked","occurred_at":"2026-03-29T02:30:00"}`))
	f.Add([]byte(`{"event_id":"e1","order_id":"O1","system":"wms","status":"picked","occurred_at":"2026-11-27T09:00:00.123456789"}`))
	f.Add([]byte(`{"event_id":"e1","order_id":"O1","system":"wms","occurred_at":"2026-11-27T09:00:00"}`))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	zones := func(string) *time.Location { return berlin }
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := CheckZoned(data, nil, zones)
		_, plainErr := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			if plainErr == nil {
				t.Fatalf("rejected with a zone what is valid without one: %v", err)
			}
			return
		}
		if plainErr == nil {
			if ev.ZoneAssumed != "" {
				t.Fatalf("assumed a zone for a time with an offset: %q", ev.OccurredAt)
			}
			return
		}
		if ev.ZoneAssumed != "Europe/Berlin" {
			t.Fatalf("accepted %q without an assumed zone", ev.OccurredAt)
		}
		at, msg := ParseTimestamp(ev.OccurredAt)
		if msg != "" || !at.Equal(ev.Occurred) {
			t.Fatalf("occurred_at %q reads %v (%s), the event says %v", ev.OccurredAt, at, msg, ev.Occurred)
		}
	})
}

// repeatsAKey reports whether an object in the JSON value data holds a key
// twice, reading it with encoding/json's tokenizer (keys compared after
// decoding their escapes).
func repeatsAKey(data []byte) bool {
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				if stack[n-1].keys[key] {
					return true
				}
				stack[n-1].keys[key] = true
				stack[n-1].wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
		if len(stack) == 0 {
			return false
		}
	}
}
