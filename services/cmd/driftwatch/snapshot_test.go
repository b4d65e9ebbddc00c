package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/config"
)

// countingLog accepts every event and counts the batches and events.
type countingLog struct {
	mu      sync.Mutex
	batches int
	events  int
}

func (p *countingLog) PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batches++
	p.events += len(batch)
	res := make([]events.Result, len(batch))
	for i := range res {
		res[i].Outcome = events.Accepted
	}
	return res, nil
}

// TestSnapshotImportSplitsLargeFiles: snapshot import sends a file of more
// rows than one request takes in several requests, and reports refused
// rows by their line in the file.
func TestSnapshotImportSplitsLargeFiles(t *testing.T) {
	cfg, err := config.Parse("snap.yaml", []byte(config.SixSystems))
	if err != nil {
		t.Fatal(err)
	}
	pub := &countingLog{}
	s := api.New(zerolog.Nop())
	(&api.SnapshotHandlers{Config: cfg, Publisher: pub}).Register(s)
	s.Handle("GET /v1/config", api.NewConfigHandler(cfg)) // the systems, checked first
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			requests.Add(1)
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	const rows = 250_001
	var b strings.Builder
	b.WriteString("order_id,status,attributes.note\n")
	for i := 0; i < rows; i++ {
		note := ""
		if i == 149_998 { // line 150,000
			note = strings.Repeat("n", 9<<10)
		}
		fmt.Fprintf(&b, "ORD-%06d,Pending Fulfillment,%s\n", i, note)
	}
	file := filepath.Join(t.TempDir(), "erp.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newSnapshotCmd()
	cmd.SetArgs([]string{"import", "--system", "erp", "--http", srv.URL, "-q", file})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var runErr error
	var stderr string
	stdout := captureStdout(t, func() error {
		stderr = captureStderr(t, func() { runErr = cmd.ExecuteContext(context.Background()) })
		return nil
	})
	if runErr == nil || runErr.Error() != "1 rows refused" {
		t.Errorf("error: %v", runErr)
	}
	pub.mu.Lock()
	published := pub.events
	pub.mu.Unlock()
	if requests.Load() != 3 || published != rows-1 {
		t.Errorf("%d requests, %d events published; want 3 and %d", requests.Load(), published, rows-1)
	}
	if want := "line 150000 (order ORD-149998) refused: field_too_long:"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	for _, want := range []string{"imported 250001 rows of erp: 250000 new, 0 already in the log, 1 refused\n", "applied: lines 2-149999, 150001-250002\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

// captureStderr runs f with os.Stderr sent to a pipe and returns what it
// printed.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	f()
	_ = w.Close()
	os.Stderr = old
	return <-out
}
