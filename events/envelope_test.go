package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/driftwatch/driftwatch/schemas"
)

// envelopeCase is one row of the table that the Go validation and the JSON
// Schema must agree on.
type envelopeCase struct {
	name  string
	json  string
	valid bool
	field string // for invalid cases: a field named in the Go problems
	code  string // and its code
}

func envelopeCases() []envelopeCase {
	long := strings.Repeat("x", 129)
	return []envelopeCase{
		{"minimal status", `{"event_id":"e1","order_id":"ORD-1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05-04:00"}`, true, "", ""},
		{"full status", `{"event_id":"e1","order_id":"ORD-1","system":"shop","kind":"status","status":"Pending Fulfillment","status_field":"financial_status","occurred_at":"2026-11-27T14:04:05.123456789Z","actor":"manual","external_ref":"#1001","attributes":{"amount":12.5,"currency":"EUR"}}`, true, "", ""},
		{"ack", `{"event_id":"a1","order_id":"ORD-1","system":"erp","kind":"ack","ack_of":"shop:e1","occurred_at":"2026-11-27T10:04:05+05:30"}`, true, "", ""},
		{"ack with status", `{"event_id":"a1","order_id":"ORD-1","system":"erp","kind":"ack","ack_of":"shop:e:1","status":"x","occurred_at":"2026-11-27T10:04:05+05:30"}`, true, "", ""},
		{"snapshot", `{"event_id":"s1","order_id":"ORD-1","system":"erp","kind":"snapshot","status":"Billed","occurred_at":"2026-11-27T10:04:05Z"}`, true, "", ""},
		{"unicode ids", `{"event_id":"ü-1 2","order_id":"заказ-1","system":"a","status":"déjà","occurred_at":"2026-11-27T10:04:05Z"}`, true, "", ""},
		{"128 char ids", `{"event_id":"` + long[:128] + `","order_id":"` + long[:128] + `","system":"shop","status":"x","occurred_at":"2026-11-27T10:04:05Z"}`, true, "", ""},
		{"status with inner spaces", `{"event_id":"e","order_id":"o","system":"shop","status":"  Pending  Approval ","occurred_at":"2026-11-27T10:04:05Z"}`, true, "", ""},

		{"missing event_id", `{"order_id":"ORD-1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "event_id", CodeMissingField},
		{"empty event_id", `{"event_id":"","order_id":"ORD-1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "event_id", CodeInvalidField},
		{"long event_id", `{"event_id":"` + long + `","order_id":"ORD-1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "event_id", CodeInvalidField},
		{"control char in order_id", `{"event_id":"e1","order_id":"ORD\u00071","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "order_id", CodeInvalidField},
		{"tab in event_id", `{"event_id":"e\t1","order_id":"o","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "event_id", CodeInvalidField},
		{"missing order_id", `{"event_id":"e1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "order_id", CodeMissingField},
		{"missing system", `{"event_id":"e1","order_id":"o","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "system", CodeMissingField},
		{"bad system id", `{"event_id":"e1","order_id":"o","system":"Shop Store","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "system", CodeInvalidField},
		{"system with dot", `{"event_id":"e1","order_id":"o","system":"shop.eu","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, false, "system", CodeInvalidField},
		{"missing status", `{"event_id":"e1","order_id":"o","system":"shop","occurred_at":"2026-11-27T10:04:05Z"}`, false, "status", CodeMissingField},
		{"snapshot without status", `{"event_id":"e1","order_id":"o","system":"shop","kind":"snapshot","occurred_at":"2026-11-27T10:04:05Z"}`, false, "status", CodeMissingField},
		{"blank status", `{"event_id":"e1","order_id":"o","system":"shop","status":"   ","occurred_at":"2026-11-27T10:04:05Z"}`, false, "status", CodeInvalidField},
		{"empty status", `{"event_id":"e1","order_id":"o","system":"shop","status":"","occurred_at":"2026-11-27T10:04:05Z"}`, false, "status", CodeInvalidField},
		{"status not a string", `{"event_id":"e1","order_id":"o","system":"shop","status":3,"occurred_at":"2026-11-27T10:04:05Z"}`, false, "status", CodeInvalidField},
		{"status null", `{"event_id":"e1","order_id":"o","system":"shop","status":null,"occurred_at":"2026-11-27T10:04:05Z"}`, false, "status", CodeInvalidField},
		{"bad kind", `{"event_id":"e1","order_id":"o","system":"shop","kind":"update","status":"x","occurred_at":"2026-11-27T10:04:05Z"}`, false, "kind", CodeInvalidField},
		{"empty kind", `{"event_id":"e1","order_id":"o","system":"shop","kind":"","status":"x","occurred_at":"2026-11-27T10:04:05Z"}`, false, "kind", CodeInvalidField},
		{"kind number no status", `{"event_id":"e1","order_id":"o","system":"shop","kind":1,"occurred_at":"2026-11-27T10:04:05Z"}`, false, "kind", CodeInvalidField},
		{"no offset", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":"2026-11-27T10:04:05"}`, false, "occurred_at", CodeInvalidField},
		{"date only", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":"2026-11-27"}`, false, "occurred_at", CodeInvalidField},
		{"space separator", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":"2026-11-27 10:04:05Z"}`, false, "occurred_at", CodeInvalidField},
		{"bad month", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":"2026-13-27T10:04:05Z"}`, false, "occurred_at", CodeInvalidField},
		{"bad offset", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":"2026-11-27T10:04:05+0530"}`, false, "occurred_at", CodeInvalidField},
		{"unix seconds", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":1764237845}`, false, "occurred_at", CodeInvalidField},
		{"missing occurred_at", `{"event_id":"e1","order_id":"o","system":"shop","status":"x"}`, false, "occurred_at", CodeMissingField},
		{"bad actor", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","actor":"bot","occurred_at":"2026-11-27T10:04:05Z"}`, false, "actor", CodeInvalidField},
		{"ack without ack_of", `{"event_id":"a1","order_id":"o","system":"erp","kind":"ack","occurred_at":"2026-11-27T10:04:05Z"}`, false, "ack_of", CodeMissingField},
		{"ack_of without colon", `{"event_id":"a1","order_id":"o","system":"erp","kind":"ack","ack_of":"shop-e1","occurred_at":"2026-11-27T10:04:05Z"}`, false, "ack_of", CodeInvalidField},
		{"ack_of empty event", `{"event_id":"a1","order_id":"o","system":"erp","kind":"ack","ack_of":"shop:","occurred_at":"2026-11-27T10:04:05Z"}`, false, "ack_of", CodeInvalidField},
		{"bad status_field", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","status_field":"1field","occurred_at":"2026-11-27T10:04:05Z"}`, false, "status_field", CodeInvalidField},
		{"attributes array", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","attributes":[1],"occurred_at":"2026-11-27T10:04:05Z"}`, false, "attributes", CodeInvalidField},
		{"long external_ref", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","external_ref":"` + long + `","occurred_at":"2026-11-27T10:04:05Z"}`, false, "external_ref", CodeInvalidField},
		{"unknown field", `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occured_at":"2026-11-27T10:04:05Z","occurred_at":"2026-11-27T10:04:05Z"}`, false, "occured_at", CodeUnknownField},
		{"not an object", `["e1"]`, false, "", CodeMalformedJSON},
		{"malformed", `{"event_id":"e1",`, false, "", CodeMalformedJSON},
	}
}

func TestParseTable(t *testing.T) {
	for _, c := range envelopeCases() {
		t.Run(c.name, func(t *testing.T) {
			ev, err := Parse([]byte(c.json))
			if c.valid {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if ev.Occurred.IsZero() {
					t.Fatal("Occurred not set")
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			for _, p := range ve.Problems {
				if p.Field == c.field && p.Code == c.code {
					return
				}
			}
			t.Fatalf("want a problem %s/%s, got %v", c.field, c.code, ve.Problems)
		})
	}
}

func TestGoValidationAgreesWithJSONSchema(t *testing.T) {
	compiler := jsonschema.NewCompiler()
	compiler.AssertFormat()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.EventSchema))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if err := compiler.AddResource("event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := compiler.Compile("event.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	for _, c := range envelopeCases() {
		t.Run(c.name, func(t *testing.T) {
			_, goErr := Parse([]byte(c.json))
			inst, jerr := jsonschema.UnmarshalJSON(strings.NewReader(c.json))
			schemaOK := jerr == nil && sch.Validate(inst) == nil
			if (goErr == nil) != schemaOK {
				t.Fatalf("disagree: Go valid=%v (%v), schema valid=%v", goErr == nil, goErr, schemaOK)
			}
			if schemaOK != c.valid {
				t.Fatalf("table says valid=%v, both say %v", c.valid, schemaOK)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	attrs := strings.Repeat("a", MaxEventSize)
	data := `{"event_id":"e1","order_id":"o","system":"shop","status":"x","occurred_at":"2026-11-27T10:04:05Z","attributes":{"pad":"` + attrs + `"}}`
	_, err := Parse([]byte(data))
	if ErrorCode(err) != CodeTooLarge {
		t.Fatalf("want too_large, got %v", err)
	}
}

func TestEveryProblemReported(t *testing.T) {
	_, err := Parse([]byte(`{"order_id":"","system":"Shop","kind":"ack","occurred_at":"yesterday"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	fields := map[string]bool{}
	for _, p := range ve.Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"event_id", "order_id", "system", "occurred_at", "ack_of"} {
		if !fields[f] {
			t.Errorf("no problem reported for %s; got %v", f, ve.Problems)
		}
	}
}

func TestValidateBuiltEvent(t *testing.T) {
	ev := Event{EventID: "e1", OrderID: "o1", System: "shop", Status: "paid", OccurredAt: "2026-11-27T10:04:05+05:30", Attributes: json.RawMessage(`{"amount":3}`)}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if ev.Occurred.UTC().Hour() != 4 {
		t.Fatalf("offset not applied: %v", ev.Occurred.UTC())
	}
	bad := Event{EventID: "e1", OrderID: "o1", System: "shop", Kind: KindAck, OccurredAt: "2026-11-27T10:04:05Z"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "ack_of") {
		t.Fatalf("want ack_of problem, got %v", err)
	}
	// A Go-built event round-trips through Parse.
	data, _ := ev.Marshal()
	back, err := Parse(data)
	if err != nil || back.OrderID != "o1" || string(back.Attributes) != `{"amount":3}` {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestSubjects(t *testing.T) {
	if s, ok := SystemFromSubject("driftwatch.in.shop"); !ok || s != "shop" {
		t.Fatalf("got %q %v", s, ok)
	}
	for _, good := range []string{"driftwatch.in.shop.A-1001", "driftwatch.in.shop.7"} {
		if s, ok := SystemFromSubject(good); !ok || s != "shop" {
			t.Errorf("%q: got %q %v", good, s, ok)
		}
	}
	for _, bad := range []string{"driftwatch.in.", "driftwatch.in.a.b.c", "driftwatch.in.a.", "driftwatch.in..b", "driftwatch.in.a.*", "driftwatch.dlq.shop"} {
		if _, ok := SystemFromSubject(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	for subj, want := range map[string]int{"driftwatch.in.shop.0": 0, "driftwatch.in.shop.15": 15, "driftwatch.in.shop.1023": 1023} {
		if p, ok := PartitionFromSubject(subj); !ok || p != want {
			t.Errorf("PartitionFromSubject(%q) = %d, %v", subj, p, ok)
		}
	}
	for _, subj := range []string{"driftwatch.in.shop", "driftwatch.in.shop.A-1", "driftwatch.in.shop.07", "driftwatch.in.shop.-1", "driftwatch.in.a.b.3", "driftwatch.dlq.shop.3", "driftwatch.in.shop.99999"} {
		if p, ok := PartitionFromSubject(subj); ok {
			t.Errorf("PartitionFromSubject(%q) = %d", subj, p)
		}
	}
	if got := OrderSubject("shop", "#1001"); got != "driftwatch.in.shop.#1001" {
		t.Errorf("OrderSubject = %q", got)
	}
	for _, id := range []string{"", "A.1", "A 1", "A*", "A>", "caf\u00e9", strings.Repeat("x", MaxOrderToken+1)} {
		if got := OrderSubject("shop", id); got != "driftwatch.in.shop" {
			t.Errorf("OrderSubject(%q) = %q: not a token, the bare subject", id, got)
		}
	}
	if DLQSubject("Bad System") != "driftwatch.dlq._unknown" || DLQSubject("erp") != "driftwatch.dlq.erp" {
		t.Error("DLQSubject")
	}
}

func BenchmarkParse(b *testing.B) {
	data := []byte(`{"event_id":"B-00000001-3","order_id":"B-00000001","system":"wms","status":"confirmed","status_field":"status","occurred_at":"2026-11-27T10:04:05.123+05:30","attributes":{"amount":"12.50","currency":"EUR"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFastPathKeepsKeysCaseSensitive(t *testing.T) {
	data := []byte(`{"Event_ID":"e1","event_id":"e1","order_id":"o","system":"shop","status":"Pending: A","occurred_at":"2026-11-27T10:04:05Z"}`)
	if _, err := Parse(data); ErrorCode(err) != CodeUnknownField {
		t.Fatalf("a key in another case must be an unknown field, got %v", err)
	}
	if !plainTopLevel([]byte(`{"status":"Pending: A","a":{"B":null}}`)) || plainTopLevel([]byte(`{"Amount":1}`)) || plainTopLevel([]byte(`{"a":null}`)) {
		t.Fatal("plainTopLevel")
	}
}

// TestCheckZoned: an occurred_at without an offset is read in its system's
// zone when one is given, and rejected with the reason otherwise.
func TestCheckZoned(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	zones := func(sys string) *time.Location {
		if sys == "wms" {
			return tokyo
		}
		return nil
	}
	body := []byte(`{"event_id":"e1","order_id":"O1","system":"wms","status":"picked","occurred_at":"2026-11-28T00:00:00.5"}`)
	ev, err := CheckZoned(body, nil, zones)
	if err != nil || ev.ZoneAssumed != "Asia/Tokyo" || ev.OccurredAt != "2026-11-28T00:00:00.5+09:00" ||
		!ev.Occurred.Equal(time.Date(2026, 11, 27, 15, 0, 0, 5e8, time.UTC)) {
		t.Fatalf("zoned: %+v %v", ev, err)
	}
	if _, err := Check(body, nil); err == nil || !strings.Contains(err.Error(), "has no offset") {
		t.Fatalf("without zones: %v", err)
	}
	other := []byte(`{"event_id":"e1","order_id":"O1","system":"shop","status":"picked","occurred_at":"2026-11-28T00:00:00"}`)
	if _, err := CheckZoned(other, nil, zones); err == nil {
		t.Fatal("a system without a zone accepted a time without an offset")
	}
	withOffset := []byte(`{"event_id":"e1","order_id":"O1","system":"wms","status":"picked","occurred_at":"2026-11-28T00:00:00Z"}`)
	if ev, err := CheckZoned(withOffset, nil, zones); err != nil || ev.ZoneAssumed != "" {
		t.Fatalf("an offset sent is kept: %+v %v", ev, err)
	}
}
