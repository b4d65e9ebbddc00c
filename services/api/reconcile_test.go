package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

// acceptAll is a reconcile.Publisher that accepts every event.
type acceptAll struct{ events int }

func (p *acceptAll) PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error) {
	p.events += len(batch)
	res := make([]events.Result, len(batch))
	for i := range res {
		res[i].Outcome = events.Accepted
	}
	return res, nil
}

// snapshotServer serves the snapshot route with lim and pub.
func snapshotServer(t *testing.T, lim reconcile.Limits, pub reconcile.Publisher) *httptest.Server {
	t.Helper()
	cfg, err := config.Parse("snap.yaml", []byte(config.SixSystems))
	if err != nil {
		t.Fatal(err)
	}
	s := New(zerolog.Nop())
	(&SnapshotHandlers{Config: cfg, Publisher: pub, Limits: lim}).Register(s)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// stoppedReply is the reply to an import that stopped early.
type stoppedReply struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	reconcile.ImportStats
}

func postCSV(t *testing.T, srv *httptest.Server, body io.Reader) (int, stoppedReply, string) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/v1/snapshots/erp", "text/csv", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var r stoppedReply
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	return resp.StatusCode, r, string(data)
}

// onlyReader hides a reader's type, so the request has no Content-Length.
type onlyReader struct{ io.Reader }

// TestSnapshotBodyLimit: a streamed body over the limit stops the import
// with 413 and a clear message; the reply keeps the result of the rows
// read before. A body declared over the limit is refused unread.
func TestSnapshotBodyLimit(t *testing.T) {
	pub := &acceptAll{}
	srv := snapshotServer(t, reconcile.Limits{MaxBytes: 1 << 20}, pub)
	row := "ORDER-000001,Pending Fulfillment\n"
	body := "order_id,status\n" + strings.Repeat(row, (2<<20)/len(row))
	status, r, raw := postCSV(t, srv, onlyReader{strings.NewReader(body)})
	if status != http.StatusRequestEntityTooLarge || r.Code != reconcile.CodeTooLarge ||
		!strings.Contains(r.Error, "over 1 MiB") || r.Stopped == nil {
		t.Fatalf("%d %.400s", status, raw)
	}
	rowsIn := (1<<20 - len("order_id,status\n")) / len(row)
	if r.Rows != rowsIn || r.Accepted != rowsIn || len(r.Applied) != 1 || r.Applied[0].To != rowsIn+1 || r.Stopped.Line != rowsIn+2 {
		t.Errorf("rows %d accepted %d applied %v stopped %+v; want %d rows", r.Rows, r.Accepted, r.Applied, r.Stopped, rowsIn)
	}
	before := pub.events
	status, r, raw = postCSV(t, srv, strings.NewReader(body))
	if status != http.StatusRequestEntityTooLarge || r.Code != reconcile.CodeTooLarge || !strings.Contains(r.Error, "at most 1 MiB") || pub.events != before {
		t.Fatalf("declared over the limit: %d %.400s (%d events published)", status, raw, pub.events-before)
	}
}

// TestSnapshotRowLimit: more rows than the limit is a 413 naming the first
// row not read.
func TestSnapshotRowLimit(t *testing.T) {
	srv := snapshotServer(t, reconcile.Limits{MaxRows: 2}, &acceptAll{})
	status, r, raw := postCSV(t, srv, strings.NewReader("order_id,status\nA,x\nB,x\nC,x\n"))
	if status != http.StatusRequestEntityTooLarge || r.Code != reconcile.CodeTooManyRows || r.Stopped == nil || r.Stopped.Line != 4 || r.Accepted != 2 {
		t.Fatalf("%d %s", status, raw)
	}
	status, r, raw = postCSV(t, srv, strings.NewReader("order_id,status\nA,x\nB,x\n"))
	if status != http.StatusOK || r.Error != "" || r.Accepted != 2 || len(r.Refused) != 0 || len(r.Applied) != 1 {
		t.Fatalf("within the limit: %d %s", status, raw)
	}
}
