package projections

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAmountOf checks the in-place reading of attributes.amount and
// .currency against encoding/json on valid JSON objects.
func FuzzAmountOf(f *testing.F) {
	for _, s := range []string{
		`{"amount":"12.50","currency":"EUR"}`, `{"amount":12.5}`, `{"amount":-0.5e+3,"currency":"USD","x":[1,{"amount":2}]}`,
		`{"amount":"abc"}`, `{"amount":null}`, `{"amount":1,"amount":2}`, `{"currency":"EUR","amount":"1\u0030"}`,
		`{"amount":"01"}`, `{"x":{"amount":3}}`, `{"amount":1,"currency":5}`, `{ "amount" : 7 , "currency" : "GBP" }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, attrs []byte) {
		if !bytes.Contains(attrs, []byte(`"amount"`)) || !json.Valid(attrs) || bytes.TrimSpace(attrs)[0] != '{' {
			return // attributes are always a valid object here
		}
		attrs = bytes.TrimSpace(attrs)
		gotA, gotC := amountOf(attrs)
		wantA, wantC := amountByDecoder(attrs)
		if gotA != wantA || gotC != wantC {
			t.Fatalf("%s: got (%q, %q), encoding/json says (%q, %q)", attrs, gotA, gotC, wantA, wantC)
		}
	})
}
