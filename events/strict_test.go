package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// strictCase is an envelope that is well-formed JSON as encoding/json reads
// it but must be rejected: its text is not valid UTF-8, or an object in it
// repeats a key.
type strictCase struct {
	name  string
	json  string
	field string // a field named in the problems
	code  string // with this code
}

// strictHead is a valid envelope's fields but for its closing brace.
const strictHead = `{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"`

func strictCases() []strictCase {
	many := func(dup bool) string { // an attributes object of 40 keys
		var b strings.Builder
		b.WriteString(`{`)
		for i := range 40 {
			fmt.Fprintf(&b, `"k%02d":%d,`, i, i)
		}
		if dup {
			b.WriteString(`"k07":"again"}`)
		} else {
			b.WriteString(`"last":true}`)
		}
		return b.String()
	}
	return []strictCase{
		{"invalid UTF-8 in order_id", `{"event_id":"e1","order_id":"O` + "\xff" + `1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, "order_id", CodeInvalidUTF8},
		{"invalid UTF-8 in status", `{"event_id":"e1","order_id":"O1","system":"shop","status":"pa` + "\xc3" + `id","occurred_at":"2026-11-27T10:04:05Z"}`, "status", CodeInvalidUTF8},
		{"overlong encoding in event_id", `{"event_id":"e` + "\xc0\xaf" + `","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, "event_id", CodeInvalidUTF8},
		{"encoded surrogate in external_ref", strictHead + `,"external_ref":"` + "\xed\xa0\x80" + `"}`, "external_ref", CodeInvalidUTF8},
		{"invalid UTF-8 in a value with escapes", `{"event_id":"e1","order_id":"O\"` + "\xfe" + `","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, "order_id", CodeInvalidUTF8},
		{"invalid UTF-8 in a key", strictHead + `,"x` + "\xff" + `":"1"}`, "x\ufffd", CodeInvalidUTF8},
		{"invalid UTF-8 in an attribute value", strictHead + `,"attributes":{"note":"caf` + "\xe9" + `"}}`, "attributes.note", CodeInvalidUTF8},
		{"invalid UTF-8 in an attribute key", strictHead + `,"attributes":{"caf` + "\xe9" + `":1}}`, "attributes.caf\ufffd", CodeInvalidUTF8},
		{"invalid UTF-8 deep in attributes", strictHead + `,"attributes":{"lines":[{"sku":"A1"},{"sku":"A` + "\xc3" + `"}]}}`, "attributes.lines[1].sku", CodeInvalidUTF8},
		{"unpaired surrogate escape in status", `{"event_id":"e1","order_id":"O1","system":"shop","status":"pa\ud800id","occurred_at":"2026-11-27T10:04:05Z"}`, "status", CodeInvalidUTF8},
		{"unpaired low surrogate escape in attributes", strictHead + `,"attributes":{"a":"\udc00\ud83d"}}`, "attributes.a", CodeInvalidUTF8},

		{"duplicate order_id", `{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z","order_id":"O2"}`, "order_id", CodeDuplicateKey},
		{"duplicate order_id same value", `{"event_id":"e1","order_id":"O1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, "order_id", CodeDuplicateKey},
		{"duplicate order_id spelled with an escape", `{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z","order\u005fid":"O2"}`, "order_id", CodeDuplicateKey},
		{"duplicate system", `{"event_id":"e1","order_id":"O1","system":"shop","system":"erp","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`, "system", CodeDuplicateKey},
		{"duplicate unknown key", strictHead + `,"x":1,"x":2}`, "x", CodeDuplicateKey},
		{"duplicate attributes", strictHead + `,"attributes":{"a":1},"attributes":{"b":2}}`, "attributes", CodeDuplicateKey},
		{"duplicate key in attributes", strictHead + `,"attributes":{"amount":"12.50","currency":"EUR","amount":"99.00"}}`, "attributes.amount", CodeDuplicateKey},
		{"duplicate key in a nested object", strictHead + `,"attributes":{"customer":{"id":"C1","name":"A","id":"C2"}}}`, "attributes.customer.id", CodeDuplicateKey},
		{"duplicate key in an object in an array", strictHead + `,"attributes":{"lines":[{"sku":"A"},{"sku":"B","sku":"C"}]}}`, "attributes.lines[1].sku", CodeDuplicateKey},
		{"duplicate key among many", strictHead + `,"attributes":` + many(true) + `}`, "attributes.k07", CodeDuplicateKey},
	}
}

// strictValidCases are envelopes near the strict cases that must be
// accepted.
func strictValidCases() []string {
	var many strings.Builder
	many.WriteString(`{`)
	for i := range 100 {
		fmt.Fprintf(&many, `"k%03d":{"k":%d},`, i, i)
	}
	many.WriteString(`"K000":0}`)
	return []string{
		strictHead + `,"attributes":{"a":{"k":1},"b":{"k":2},"l":[{"k":1},{"k":2}]}}`,
		strictHead + `,"attributes":{"Amount":1,"amount":2,"amount ":3}}`,
		strictHead + `,"attributes":` + many.String() + `}`,
		strictHead + `,"external_ref":"\ud83d\ude00 \u00e9 ` + "é 😀" + `"}`,
		`{"event_id":"e\u0031","order_id":"O1","system":"shop","status":"caf\u00e9 ` + "\xef\xbf\xbd" + `","occurred_at":"2026-11-27T10:04:05Z"}`,
		strictHead + `,"attributes":{"a\"b":1,"a\\b":2,"a/b":3,"a\/c":4,"s":"\ufffd"}}`,
	}
}

func TestParseRejectsInvalidUTF8AndDuplicateKeys(t *testing.T) {
	for _, c := range strictCases() {
		t.Run(c.name, func(t *testing.T) {
			if !json.Valid([]byte(c.json)) {
				t.Fatalf("the case is not JSON as encoding/json reads it: %q", c.json)
			}
			if _, ok := parseFast([]byte(c.json)); ok {
				t.Errorf("the fast path accepts %q", c.json)
			}
			_, err := Parse([]byte(c.json))
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			found := false
			for _, p := range ve.Problems {
				if p.Field == c.field && p.Code == c.code {
					found = true
				}
			}
			if !found {
				t.Fatalf("want a problem %s/%s, got %v", c.field, c.code, ve.Problems)
			}
			if ErrorCode(err) != c.code {
				t.Errorf("error code %q, want %q first: %v", ErrorCode(err), c.code, err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Errorf("the error text is not valid UTF-8: %q", err.Error())
			}
		})
	}
}

func TestParseAcceptsStrictValidCases(t *testing.T) {
	for _, data := range strictValidCases() {
		ev, err := Parse([]byte(data))
		if err != nil {
			t.Errorf("Parse(%q): %v", data, err)
			continue
		}
		if !bytes.Contains([]byte(data), []byte(`\`)) {
			if _, ok := parseFast([]byte(data)); !ok {
				t.Errorf("the fast path declines %q", data)
			}
		}
		if ev.OrderID != "O1" {
			t.Errorf("order_id %q", ev.OrderID)
		}
	}
}

// TestDuplicateKeyDecidesNoValue: a repeated key's value is in question, so
// the event carries neither value (the dead letter of a repeated system
// goes under _unknown, not under either system).
func TestDuplicateKeyDecidesNoValue(t *testing.T) {
	ev, err := Parse([]byte(`{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z","order_id":"O2"}`))
	if err == nil || ev.OrderID != "" || ev.System != "shop" || ev.EventID != "e1" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	if !strings.Contains(err.Error(), "order_id:") || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("the message does not say what is wrong: %v", err)
	}
	ev, err = Parse([]byte(`{"event_id":"e1","order_id":"O1","system":"shop","system":"erp","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`))
	if err == nil || ev.System != "" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	if s := DeadLetterMsg(ev.System, nil, err).Subject; s != "driftwatch.dlq._unknown" {
		t.Errorf("dead letter subject %s", s)
	}
}

// TestStrictProblemsDoNotHideOthers: the other fields are still checked.
func TestStrictProblemsDoNotHideOthers(t *testing.T) {
	_, err := Parse([]byte(`{"event_id":"e1","order_id":"O` + "\xff" + `","system":"Shop","status":"x","status":"y"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := map[string]string{"order_id": CodeInvalidUTF8, "status": CodeDuplicateKey, "system": CodeInvalidField, "occurred_at": CodeMissingField}
	got := map[string]string{}
	for _, p := range ve.Problems {
		if _, dup := got[p.Field]; dup {
			t.Errorf("%s reported twice: %v", p.Field, ve.Problems)
		}
		got[p.Field] = p.Code
	}
	for f, code := range want {
		if got[f] != code {
			t.Errorf("%s: got %q, want %q (%v)", f, got[f], code, ve.Problems)
		}
	}
	if len(got) != len(want) {
		t.Errorf("problems %v, want %v", got, want)
	}
}

func TestStrictMessages(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"event_id":"e1","order_id":"O` + "\xff" + `1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z"}`,
			`order_id: value is not valid UTF-8 (byte 0xFF at offset 30)`},
		{strictHead + `,"x` + "\xff" + `":"1"}`, "x\ufffd: key is not valid UTF-8 (byte 0xFF at offset 104)"},
		{strictHead + `,"attributes":{"a":"\ud800"}}`, `attributes.a: value holds \ud800, half of a UTF-16 surrogate pair without the other half (at offset 121), which is not a character`},
		{" \n\t" + strictHead + `,"attributes":{"a":"` + "\xff" + `"}}`, // offsets count from the input as sent
			`attributes.a: value is not valid UTF-8 (byte 0xFF at offset 124)`},
		{`{"event_id":"e1","order_id":"O1","system":"shop","status":"paid","occurred_at":"2026-11-27T10:04:05Z","order_id":"O2"}`,
			`order_id: key appears more than once in the same object (at offsets 17 and 102); each key may appear only once`},
	} {
		_, err := Parse([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q):\n got %v\nwant %s", c.json, err, c.want)
		}
	}
}

// TestStrictProblemsAreBounded: input made of problems does not make a
// huge error.
func TestStrictProblemsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(strictHead + `,"attributes":{`)
	for i := 0; b.Len() < MaxEventSize-100; i++ {
		fmt.Fprintf(&b, `"a":"`+"\xff"+`",`)
	}
	b.WriteString(`"z":0}}`)
	_, err := Parse([]byte(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	if len(ve.Problems) > maxTextProblems+1 {
		t.Fatalf("got %d problems", len(ve.Problems))
	}
}

// TestNestingDepthAgrees: both paths draw the line on nesting where
// encoding/json does, counting from the envelope itself.
func TestNestingDepthAgrees(t *testing.T) {
	for _, depth := range []int{9999, 10000} {
		attrs := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
		data := []byte(strictHead + `,"attributes":` + attrs + `}`)
		var v any
		jsonOK := json.Unmarshal(data, &v) == nil
		_, fastOK := parseFast(data)
		_, err := Parse(data)
		if fastOK && !jsonOK || (err == nil) != jsonOK {
			t.Errorf("attributes %d deep: encoding/json ok=%v, fast path ok=%v, Parse: %v", depth, jsonOK, fastOK, err)
		}
	}
}

func TestValidateBuiltEventText(t *testing.T) {
	ev := Event{EventID: "e1", OrderID: "O\xff", System: "shop", Status: "paid", OccurredAt: "2026-11-27T10:04:05Z"}
	if err := ev.Validate(); ErrorCode(err) != CodeInvalidUTF8 || !strings.Contains(err.Error(), "order_id") {
		t.Errorf("invalid UTF-8 order_id: %v", err)
	}
	ev = Event{EventID: "e1", OrderID: "O1", System: "shop", Status: "paid", OccurredAt: "2026-11-27T10:04:05Z", ExternalRef: "r\xc3"}
	if err := ev.Validate(); ErrorCode(err) != CodeInvalidUTF8 || !strings.Contains(err.Error(), "external_ref") {
		t.Errorf("invalid UTF-8 external_ref: %v", err)
	}
	ev = Event{EventID: "e1", OrderID: "O1", System: "shop", Status: "paid", OccurredAt: "2026-11-27T10:04:05Z", Attributes: json.RawMessage(`{"a":1,"a":2}`)}
	if err := ev.Validate(); ErrorCode(err) != CodeDuplicateKey || !strings.Contains(err.Error(), "attributes.a") {
		t.Errorf("repeated attribute: %v", err)
	}
}

func TestStrictRejectionIsDeadLettered(t *testing.T) {
	data := []byte(strictCases()[0].json)
	ev, err := Check(data, nil)
	if err == nil {
		t.Fatal("accepted")
	}
	res := RejectedResult(ev, err)
	if res.Outcome != Rejected || res.Code != CodeInvalidUTF8 {
		t.Errorf("result %+v", res)
	}
	msg := DeadLetterMsg(ev.System, data, err)
	if !bytes.Equal(msg.Data, data) || msg.Header.Get(HeaderErrorCode) != CodeInvalidUTF8 || !utf8.ValidString(msg.Header.Get(HeaderError)) {
		t.Errorf("dead letter %s %q %q", msg.Subject, msg.Header.Get(HeaderErrorCode), msg.Header.Get(HeaderError))
	}
}

// TestEventFilesParseStrictly: an NDJSON line keeps its bytes, and a CSV
// row keeps its invalid bytes and repeated columns, so Parse rejects them
// with the reason instead of the conversion repairing them.
func TestEventFilesParseStrictly(t *testing.T) {
	line := strictCases()[0].json
	fr, err := NewFileReader(strings.NewReader("\n"+line+"\n"), FormatNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	data, err := fr.Next()
	if err != nil || string(data) != line {
		t.Fatalf("NDJSON line changed: %q, %v", data, err)
	}
	if _, err := Parse(data); ErrorCode(err) != CodeInvalidUTF8 {
		t.Errorf("NDJSON line: %v", err)
	}

	for _, c := range []struct {
		csv, field, code string
	}{
		{"event_id,order_id,system,status,occurred_at\ne1,O\xff1,shop,paid,2026-11-27T10:04:05Z\n", "order_id", CodeInvalidUTF8},
		{"event_id,order_id,system,status,occurred_at,order_id\ne1,O1,shop,paid,2026-11-27T10:04:05Z,O2\n", "order_id", CodeDuplicateKey},
		{"event_id,order_id,system,status,occurred_at,attributes.a,attributes.a\ne1,O1,shop,paid,2026-11-27T10:04:05Z,1,2\n", "attributes.a", CodeDuplicateKey},
		{"event_id,order_id,system,status,occurred_at,attributes.caf\xe9\ne1,O1,shop,paid,2026-11-27T10:04:05Z,x\n", "attributes.caf\ufffd", CodeInvalidUTF8},
		{"event_id,order_id,system,status,occurred_at,attributes.note\ne1,O1,shop,paid,2026-11-27T10:04:05Z,caf\xe9\n", "attributes.note", CodeInvalidUTF8},
		{"event_id,order_id,system,status,occurred_at,attributes\ne1,O1,shop,paid,2026-11-27T10:04:05Z,\"{\"\"a\"\":1,\"\"a\"\":2}\"\n", "attributes.a", CodeDuplicateKey},
	} {
		fr, err := NewFileReader(strings.NewReader(c.csv), FormatCSV)
		if err != nil {
			t.Fatal(err)
		}
		data, err := fr.Next()
		if err != nil {
			t.Fatalf("%q: %v", c.csv, err)
		}
		_, err = Parse(data)
		var ve *ValidationError
		if !errors.As(err, &ve) || ErrorCode(err) != c.code {
			t.Errorf("%q -> %q: want %s, got %v", c.csv, data, c.code, err)
			continue
		}
		found := false
		for _, p := range ve.Problems {
			found = found || p.Field == c.field && p.Code == c.code
		}
		if !found {
			t.Errorf("%q: want %s/%s, got %v", c.csv, c.field, c.code, ve.Problems)
		}
		if _, err := fr.Next(); err != io.EOF {
			t.Errorf("after the row: %v", err)
		}
	}
}

// TestCSVRowToJSONUnchangedForValidRows pins the bytes of a converted row:
// keys sorted, strings encoded as encoding/json encodes them.
func TestCSVRowToJSONUnchangedForValidRows(t *testing.T) {
	header := []string{"system", "order_id", "event_id", "status", "occurred_at", "attributes.z", "attributes.amount", "external_ref"}
	row := []string{"shop", "O<1>&", "e1", "Pending \"x\"\t\u2028", "2026-11-27T10:04:05Z", "zz", "12.50", ""}
	got, err := CSVRowToJSON(header, row)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"attributes":{"amount":12.50,"z":"zz"},"event_id":"e1","occurred_at":"2026-11-27T10:04:05Z","order_id":"O\u003c1\u003e\u0026","status":"Pending \"x\"\t\u2028","system":"shop"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got, err = CSVRowToJSON([]string{"event_id", "attributes"}, []string{"e1", `{ "b" : [1, "<"], "a":{} }`})
	if err != nil || string(got) != `{"attributes":{"b":[1,"\u003c"],"a":{}},"event_id":"e1"}` {
		t.Errorf("attributes column: %s, %v", got, err)
	}
}

// BenchmarkParseAttributes: the fast path with a larger attributes object.
func BenchmarkParseAttributes(b *testing.B) {
	data := []byte(`{"event_id":"B-00000001-3","order_id":"B-00000001","system":"wms","status":"confirmed","occurred_at":"2026-11-27T10:04:05.123+05:30","attributes":{"amount":"12.50","currency":"EUR","customer":{"id":"C-1","name":"Zoë Müller","tier":"gold"},"lines":[{"sku":"A-1","qty":2,"price":3.5},{"sku":"B-2","qty":1,"price":5.5}],"tags":["a","b","c"],"note":"leave at the door \"back\"","paid":true,"coupon":null}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSlowPath: an escape in a value sends the event down the
// slow path.
func BenchmarkParseSlowPath(b *testing.B) {
	data := []byte(`{"event_id":"B-00000001-3","order_id":"B-00000001","system":"wms","status":"confirmed \u00e9","status_field":"status","occurred_at":"2026-11-27T10:04:05.123+05:30","attributes":{"amount":"12.50","currency":"EUR"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPublishRejectsInvalidUTF8 checks an event built in Go whose text is
// not UTF-8 is rejected before it is encoded (which would turn the bad
// bytes into U+FFFD) and sent: the Publisher here has no stream to send to.
func TestPublishRejectsInvalidUTF8(t *testing.T) {
	p := &Publisher{}
	ev := Event{EventID: "e1", OrderID: "O\xff", System: "shop", Status: "paid", OccurredAt: "2026-11-27T10:04:05Z"}
	res, err := p.Publish(t.Context(), ev)
	if !errors.Is(err, ErrInvalidEvent) || res.Outcome != Rejected || res.Code != CodeInvalidUTF8 {
		t.Fatalf("got %+v, %v", res, err)
	}
}

// FuzzTextScanner checks the strict scanner against encoding/json: it takes
// exactly the text json.Valid takes, finds no problem in text that is
// valid UTF-8 without a repeated key or a \u escape, and finds one in any
// other text.
func FuzzTextScanner(f *testing.F) {
	for _, c := range envelopeCases() {
		f.Add([]byte(c.json))
	}
	for _, c := range strictCases() {
		f.Add([]byte(c.json))
	}
	for _, c := range strictValidCases() {
		f.Add([]byte(c))
	}
	for _, c := range []string{`[1,-0.5e+3,true,false,null,"\"",{}]`, `01`, `1.`, `-`, `"\u12"`, `{"a":1,}`, `[1,]`, ` "x" `, `{"a" 1}`, `tru`, `"a` + "\x01" + `"`} {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := textScanner{data: data}
		ok := s.document()
		if ok != json.Valid(data) {
			t.Fatalf("scanner ok=%v, json.Valid=%v: %q", ok, !ok, data)
		}
		if !ok {
			return
		}
		plain := utf8.Valid(data) && !repeatsAKey(data)
		if len(s.problems) == 0 && !plain {
			t.Fatalf("no problem found in %q", data)
		}
		if len(s.problems) > 0 && plain && !bytes.Contains(data, []byte(`\u`)) {
			t.Fatalf("problems %v in %q", s.problems, data)
		}
		for _, p := range s.problems {
			if !utf8.ValidString(p.Field) || !utf8.ValidString(p.Message) {
				t.Fatalf("problem text is not UTF-8: %q", p)
			}
		}
		q := textScanner{data: data, quick: true}
		if q.document() != (len(s.problems) == 0) || q.bad == (len(s.problems) == 0) {
			t.Fatalf("quick mode disagrees (bad=%v) with %v: %q", q.bad, s.problems, data)
		}
	})
}

// TestGateValidateRejectsInvalidUTF8: the gate is not asked about an event
// whose text would change in encoding (nc is nil: nothing is sent).
func TestGateValidateRejectsInvalidUTF8(t *testing.T) {
	ev := Event{EventID: "e1", OrderID: "O\xff", System: "shop", Status: "paid", OccurredAt: "2026-11-27T10:04:05Z"}
	if _, err := Validate(t.Context(), nil, ev, ""); ErrorCode(err) != CodeInvalidUTF8 || !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("got %v", err)
	}
}
