package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// wireEvent is the envelope as encoding/json decodes it on the reference fast path.
type wireEvent struct {
	EventID     string          `json:"event_id"`
	OrderID     string          `json:"order_id"`
	System      string          `json:"system"`
	Kind        *string         `json:"kind"`
	Status      *string         `json:"status"`
	StatusField *string         `json:"status_field"`
	OccurredAt  string          `json:"occurred_at"`
	Actor       *string         `json:"actor"`
	AckOf       *string         `json:"ack_of"`
	ExternalRef string          `json:"external_ref"`
	Attributes  json.RawMessage `json:"attributes"`
}

// plainTopLevel reports whether data is a JSON object none of whose keys
// holds an upper-case ASCII letter and none of whose values is null.
// encoding/json matches field names without regard to case and reads a
// null as an absent field; the envelope does neither ("Event_ID" is an
// unknown field, a null a wrong type), so such input takes the slow path.
// Keys and nulls inside attributes do not matter: they stay raw JSON.
func plainTopLevel(data []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	for key, value := range top {
		if strings.ContainsFunc(key, func(r rune) bool { return r >= 'A' && r <= 'Z' }) || string(value) == "null" {
			return false
		}
	}
	return true
}

// parseFastReference is the fast path as it was before the hand-written
// decoder, kept as the reference the decoder is checked against. It decodes a well-formed envelope straight into a struct, the
// common case, and validates it. Anything unusual (an unknown field, a
// null, a wrong type, an empty optional field, any validation problem)
// returns ok false and the caller takes the slow path, which reports every
// problem with its field: the fast path never decides that an event is bad.
func parseFastReference(data []byte) (Event, bool) {
	if !plainTopLevel(data) {
		return Event{}, false
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil || dec.More() {
		return Event{}, false
	}
	if w.Attributes != nil && (len(w.Attributes) == 0 || w.Attributes[0] != '{') {
		return Event{}, false
	}
	ev := Event{EventID: w.EventID, OrderID: w.OrderID, System: w.System, OccurredAt: w.OccurredAt, ExternalRef: w.ExternalRef, Attributes: w.Attributes}
	for _, opt := range []struct {
		p   *string
		dst *string
	}{{w.Status, &ev.Status}, {w.StatusField, &ev.StatusField}, {w.AckOf, &ev.AckOf}} {
		if opt.p != nil {
			if *opt.p == "" {
				return Event{}, false
			}
			*opt.dst = *opt.p
		}
	}
	if w.Kind != nil {
		if *w.Kind == "" {
			return Event{}, false
		}
		ev.Kind = Kind(*w.Kind)
	}
	if w.Actor != nil {
		if *w.Actor == "" {
			return Event{}, false
		}
		ev.Actor = Actor(*w.Actor)
	}
	if ev.EventID == "" || ev.OrderID == "" || ev.System == "" || ev.OccurredAt == "" {
		return Event{}, false
	}
	ve := ValidationError{}
	ev.validate(&ve, nil)
	if len(ve.Problems) > 0 {
		return Event{}, false
	}
	if ev.Attributes != nil {
		ev.Attributes = append(json.RawMessage(nil), ev.Attributes...)
	}
	return ev, true
}

// FuzzParseFast checks the hand-written decoder against encoding/json: what
// it accepts, the reference accepts with the same fields. (It may decline
// more: the slow path then decides.) It also checks it against the slow
// path: what the fast path accepts, the slow path accepts with the same
// event, so Parse's answer does not depend on the path taken.
func FuzzParseFast(f *testing.F) {
	for _, c := range envelopeCases() {
		f.Add([]byte(c.json))
	}
	for _, c := range strictCases() {
		f.Add([]byte(c.json))
	}
	for _, c := range strictValidCases() {
		f.Add([]byte(c))
	}
	f.Add([]byte(`{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","status_field":"financial_status","occurred_at":"2026-11-27T10:00:00Z","attributes":{"amount":"12.50","x":[1,{"y":"}"}]}}`))
	f.Add([]byte(`{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:00:00Z","external_ref":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		got, ok := parseFast(data)
		if !ok {
			return
		}
		want, wok := parseFastReference(data)
		if !wok {
			t.Fatalf("the decoder accepts what encoding/json does not: %s", data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded differently:\n got %+v\nwant %+v", got, want)
		}
		slow, err := parseSlow(data, 0)
		if err != nil {
			t.Fatalf("the slow path rejects what the fast path accepts: %v\n%q", err, data)
		}
		if !reflect.DeepEqual(got, slow) {
			t.Fatalf("the slow path decoded differently:\n fast %+v\n slow %+v", got, slow)
		}
	})
}

// TestParseFastTakesTheCommonCase checks the decoder does accept the
// envelopes the reference accepts in the table of cases, so the fast path
// is really taken.
func TestParseFastTakesTheCommonCase(t *testing.T) {
	n := 0
	for _, c := range envelopeCases() {
		data := bytes.TrimSpace([]byte(c.json))
		if _, ok := parseFastReference(data); !ok {
			continue
		}
		if bytes.IndexByte(data, '\\') >= 0 {
			continue // escapes take the slow path on purpose
		}
		n++
		if _, ok := parseFast(data); !ok {
			t.Errorf("fast path declined %s", data)
		}
	}
	if n == 0 {
		t.Fatal("no case exercised the fast path")
	}
}
