package detector

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	storedjson "github.com/segmentio/encoding/json"

	"github.com/driftwatch/driftwatch/events/canonical"
)

// TestStoredMismatchJSON: stored mismatches are written and read with
// segmentio's encoding/json (faster on the sweep's re-sightings); records
// written by the standard library before must read the same, and the
// bytes written must be what the standard library writes.
func TestStoredMismatchJSON(t *testing.T) {
	resolved := "2026-11-27T15:04:00Z"
	m := Mismatch{
		Alert: Alert{AlertID: "dw-1", State: StateResolved, OrderID: "R-<1>&", Pattern: ShipmentNotReflected, Severity: "high",
			Source:  &Side{System: "wms", Status: "Shipped", Field: "status", Canonical: "shipped", OccurredAt: "2026-11-27T15:00:00+05:30", Seq: 7, EventID: "e-7"},
			Target:  &Side{System: "erp", Status: "Pending Fulfillment", Canonical: "confirmed"},
			OnsetAt: "2026-11-27T15:00:00Z", Deadline: "2026-11-27T15:03:00Z", DetectedAt: "2026-11-27T15:03:01Z", ResolvedAt: &resolved,
			DetectedBy: BySLA, MappingVersions: map[string]int{"netsuite": 2, "shipstation": 1}, Message: "a \"quoted\" message\u2028",
			ReplaySeqs: []uint64{7, 9}, Amount: "12.50", Currency: "EUR", Occurrences: 3},
		OnsetNanos: 1, DeadlineNanos: 2, DetectedNanos: 3, ResolvedNanos: 4,
		Audit:    []AuditEntry{{At: "2026-11-27T15:03:01Z", Action: "opened", By: BySLA}, {At: "2026-11-27T15:04:00Z", Action: "resolved", Note: "ok"}},
		ExpState: canonical.Shipped, ExpPayment: canonical.Paid, FlowFrom: "wms", FlowTo: "erp",
	}
	std, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := storedjson.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(std, fast) {
		t.Errorf("written differently:\nstd  %s\nfast %s", std, fast)
	}
	var back Mismatch
	if err := storedjson.Unmarshal(std, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("read back differently:\n%+v\nwant\n%+v", back, m)
	}
}
