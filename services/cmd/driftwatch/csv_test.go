package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/replay"
)

// captureStdout runs f with os.Stdout sent to a pipe and returns what it
// printed.
func captureStdout(t *testing.T, f func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	ferr := f()
	_ = w.Close()
	os.Stdout = old
	s := <-out
	if ferr != nil {
		t.Fatal(ferr)
	}
	return s
}

// csvCells parses a CSV output and returns its cells keyed by header name,
// one map per data row.
func csvCells(t *testing.T, out string) []map[string]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("csv output (%v):\n%s", err, out)
	}
	var cells []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = row[i]
		}
		cells = append(cells, m)
	}
	return cells
}

// checkCells fails unless every named cell of row holds its wanted value.
func checkCells(t *testing.T, row map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if row[k] != v {
			t.Errorf("column %s: %q, want %q", k, row[k], v)
		}
	}
}

func TestPrintMismatchesCSVNeutralisesFormulas(t *testing.T) {
	m := &detector.Mismatch{}
	m.AlertID, m.OrderID, m.Amount, m.Currency, m.Message = "a1", `=HYPERLINK("http://x")`, "-12.50", "@EUR", "+1 order"
	out := captureStdout(t, func() error { return printMismatches([]*detector.Mismatch{m}, "csv", "") })
	checkCells(t, csvCells(t, out)[0], map[string]string{
		"alert_id": "a1", "order_id": `'=HYPERLINK("http://x")`, "amount": "'-12.50", "currency": "'@EUR", "message": "'+1 order",
	})
}

func TestPrintReplayCSVNeutralisesFormulas(t *testing.T) {
	v := replay.View{OrderID: "o", Events: []replay.Event{{Notes: []string{"-late"}}}}
	e := &v.Events[0]
	e.Seq, e.System, e.EventID, e.Status, e.Actor = 7, "erp", "\tid", "=2+3", "integration"
	out := captureStdout(t, func() error { return printReplay(v, "csv") })
	checkCells(t, csvCells(t, out)[0], map[string]string{
		"seq": "7", "system": "erp", "event_id": "'\tid", "status": "'=2+3", "notes": "'-late",
	})
}

func TestExportEventsCSVNeutralisesFormulas(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	pub, err := events.NewPublisher(env.NC)
	if err != nil {
		t.Fatal(err)
	}
	ev := `{"event_id":"x1","order_id":"=1+1","system":"shop","status":"@SUM(A1)","external_ref":"-3","occurred_at":"` +
		time.Now().UTC().Format(time.RFC3339) + `"}`
	res, err := pub.PublishBatch(context.Background(), [][]byte{[]byte(ev)})
	if err != nil || res[0].Outcome != events.Accepted {
		t.Fatalf("publish: %v %+v", err, res)
	}
	var buf bytes.Buffer
	if err := exportEvents(context.Background(), env.JS, &buf, time.Time{}, time.Time{}, "", "csv", nil); err != nil {
		t.Fatal(err)
	}
	checkCells(t, csvCells(t, buf.String())[0], map[string]string{
		"event_id": "x1", "order_id": "'=1+1", "status": "'@SUM(A1)", "external_ref": "'-3",
	})
}
