package detector

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/driftwatch/driftwatch/schemas"
)

var (
	alertSchemaOnce sync.Once
	alertSchema     *jsonschema.Schema
	alertSchemaKeys map[string]bool
	alertSchemaErr  error
)

// compiledAlertSchema compiles schemas/alert.schema.json once, asserting
// formats (date-time, uri), and lists its top-level properties.
func compiledAlertSchema(t testing.TB) (*jsonschema.Schema, map[string]bool) {
	t.Helper()
	alertSchemaOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.AlertSchema))
		if err != nil {
			alertSchemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if alertSchemaErr = c.AddResource("alert.schema.json", doc); alertSchemaErr != nil {
			return
		}
		if alertSchema, alertSchemaErr = c.Compile("alert.schema.json"); alertSchemaErr != nil {
			return
		}
		var top struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		alertSchemaErr = json.Unmarshal(schemas.AlertSchema, &top)
		alertSchemaKeys = map[string]bool{}
		for k := range top.Properties {
			alertSchemaKeys[k] = true
		}
	})
	if alertSchemaErr != nil {
		t.Fatalf("schemas/alert.schema.json: %v", alertSchemaErr)
	}
	return alertSchema, alertSchemaKeys
}

// CheckAlertRecord is checkAlertRecord, for the tests outside the package.
var CheckAlertRecord = checkAlertRecord

// checkAlertRecord fails unless data, a published alert record, validates
// against the alert schema and every field it holds is described there
// (the schema allows fields it does not know, for its readers; driftwatch
// adds none without describing it).
func checkAlertRecord(t testing.TB, data []byte) {
	t.Helper()
	sch, keys := compiledAlertSchema(t)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("alert record is not JSON: %v\n%s", err, data)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("alert record does not match schemas/alert.schema.json: %v\n%s", err, data)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for k := range fields {
		if !keys[k] {
			t.Fatalf("alert record field %q is not in schemas/alert.schema.json\n%s", k, data)
		}
	}
}
