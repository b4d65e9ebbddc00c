// Package apptest runs a whole driftwatch in-process for tests: a real
// embedded nats-server with JetStream on file storage and a real store, in
// t.TempDir(), on random 127.0.0.1 ports.
package apptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/config"
)

// StackYAML is a six-system stack with second-scale SLAs for tests.
var StackYAML = config.SixSystems + config.ReferenceFlows("2s", "2s", "2s", "3s", "2s") + `detect:
  settle: 200ms
  max_future_skew: 5m
ingest:
  dedupe_window: 2h
  max_age: 30d
`

// Config parses yaml (StackYAML when empty).
func Config(t testing.TB, yaml string) *config.Config {
	t.Helper()
	if yaml == "" {
		yaml = StackYAML
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Env is a running driftwatch.
type Env struct {
	App     *app.App
	DataDir string
	BaseURL string
	NC      *nats.Conn // a separate client connection over TCP
	JS      jetstream.JetStream
}

// Start runs a driftwatch with cfg in dataDir ("" = a new t.TempDir()).
func Start(t testing.TB, cfg *config.Config, dataDir string, mutate ...func(*app.Options)) *Env {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	opts := app.Options{
		Config:     cfg,
		DataDir:    dataDir,
		NATSListen: "127.0.0.1:-1",
		HTTPAddr:   "127.0.0.1:0",
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	for _, m := range mutate {
		m(&opts)
	}
	a, err := app.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	env := &Env{App: a, DataDir: dataDir, BaseURL: "http://" + a.HTTPAddr()}
	nc, err := nats.Connect(a.Broker.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	env.NC = nc
	env.JS, _ = jetstream.New(nc)
	t.Cleanup(env.Stop)
	return env
}

// Stop stops the driftwatch (idempotent).
func (e *Env) Stop() {
	if e.NC != nil {
		e.NC.Close()
		e.NC = nil
	}
	if e.App != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = e.App.Stop(ctx)
		e.App = nil
	}
}

// Do sends an HTTP request and returns the status and body.
func (e *Env) Do(t testing.TB, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.BaseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// CheckFor polls f every interval until it returns nil or timeout passes.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(interval)
	}
	t.Fatalf("condition not met after %v: %v", timeout, err)
}

// LastDLQ returns the last dead letter on driftwatch.dlq.<system>.
func (e *Env) LastDLQ(t testing.TB, system string) (*jetstream.RawStreamMsg, error) {
	t.Helper()
	s, err := e.JS.Stream(context.Background(), "DRIFTWATCH_DLQ")
	if err != nil {
		return nil, err
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), "driftwatch.dlq."+system)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("no dead letter for %s", system)
		}
		return nil, err
	}
	return msg, nil
}

// WaitApplied polls until every consumer (the projectors and the detector)
// has nothing pending and the detector's checkpoint has reached the end of
// the log as it was when called (the server's pending counts alone may
// lag a publish just acknowledged).
func (e *Env) WaitApplied(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	var last uint64
	if s, err := e.JS.Stream(ctx, events.EventsStream); err == nil {
		last = s.CachedInfo().State.LastSeq
	}
	CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := e.App.Status(ctx)
		if err != nil {
			return err
		}
		for _, c := range st.Consumers {
			if c.Pending > 0 {
				return fmt.Errorf("%s has %d pending", c.Name, c.Pending)
			}
		}
		if d := e.App.Detector; d != nil && d.Applied() < last {
			return fmt.Errorf("the detector is at %d, the log ended at %d", d.Applied(), last)
		}
		return nil
	})
}

// WaitSettled waits until every consumer applied the stream and the
// detector has judged every expectation and published every alert: after
// it, no alert can come from the events published so far.
func (e *Env) WaitSettled(t testing.TB, timeout time.Duration) {
	t.Helper()
	e.WaitApplied(t)
	CheckFor(t, timeout, 20*time.Millisecond, func() error {
		ok, err := e.App.Detector.Settled()
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("expectations or alerts still pending")
		}
		return nil
	})
	if err := e.NC.Flush(); err != nil { // alerts published before now have reached our subscriptions
		t.Fatal(err)
	}
}
