package app_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
)

// TestExportMismatchesCSVNeutralisesFormulas raises a missing_event for an
// order whose id a spreadsheet would run as a formula, and checks that the
// CSV export writes it with a leading quote.
func TestExportMismatchesCSVNeutralisesFormulas(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	pub, err := events.NewPublisher(env.NC)
	if err != nil {
		t.Fatal(err)
	}
	const order = `=HYPERLINK("http://x","y")`
	ev := `{"event_id":"snap-1","order_id":"=HYPERLINK(\"http://x\",\"y\")","system":"erp","kind":"snapshot","actor":"system","status":"Pending Fulfillment","occurred_at":"` +
		time.Now().UTC().Format(time.RFC3339) + `"}`
	res, err := pub.PublishBatch(context.Background(), [][]byte{[]byte(ev)})
	if err != nil || res[0].Outcome != events.Accepted {
		t.Fatalf("publish: %v %+v", err, res)
	}
	var rows [][]string
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		status, body := env.Do(t, "GET", "/v1/export/mismatches?format=csv", "", "")
		if status != 200 {
			return fmt.Errorf("export: %d %s", status, body)
		}
		rows, err = csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, body)
		}
		if len(rows) < 2 {
			return fmt.Errorf("no mismatch exported yet:\n%s", body)
		}
		return nil
	})
	col := -1
	for i, h := range rows[0] {
		if h == "order_id" {
			col = i
		}
	}
	if col < 0 || rows[1][col] != "'"+order {
		t.Fatalf("order_id cell: want %q, got row %q", "'"+order, rows[1])
	}
}
