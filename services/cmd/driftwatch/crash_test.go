package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/projector"
	"github.com/driftwatch/driftwatch/services/rebuild"
)

// TestProjectorSurvivesSIGKILL runs the projector in a child process against
// a NATS server owned by the test, kills it with SIGKILL at random points
// while events stream in, and finally checks that the projections equal a
// rebuild from the log byte for byte (nothing lost, nothing applied twice).
//
// Default: 5 kills over 6,000 events. DRIFTWATCH_CRASH_LONG=1: 20 kills over
// 100,000 events (the acceptance run).
func TestProjectorSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	kills, total := 5, 6000
	if os.Getenv("DRIFTWATCH_CRASH_LONG") != "" {
		kills, total = 20, 100000
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	dataDir := t.TempDir()
	extra := []string{"--nats-url", srv.ClientURL(), "--services", "projector,api"}
	c := startServe(t, dataDir, extra...) // creates the streams

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var published atomic.Int64
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewSource(1))
		systems := []string{"shop", "amazon", "erp", "wms"}
		statuses := map[string][]string{"shop": {"unfulfilled", "partial", "fulfilled"}, "amazon": {"Pending", "Unshipped", "Shipped"}, "erp": {"Pending Fulfillment", "Billed", "Closed"}, "wms": {"confirmed", "picked", "packed", "shipped"}}
		for i := 0; i < total; i++ {
			sys := systems[i%len(systems)]
			st := statuses[sys][rng.Intn(len(statuses[sys]))]
			at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(rng.Intn(100000)) * time.Second)
			data := []byte(fmt.Sprintf(`{"event_id":"c%d","order_id":"C%d","system":"%s","status":"%s","occurred_at":"%s"}`, i, rng.Intn(total/8+1), sys, st, at.In(time.FixedZone("", 3600*(rng.Intn(9)-4))).Format(time.RFC3339)))
			msg := nats.NewMsg("driftwatch.in." + sys)
			msg.Data = data
			if i%17 != 0 { // every 17th has no message id, so a copy can reach the log
				msg.Header.Set(events.HeaderMsgID, fmt.Sprintf("%s:c%d", sys, i))
			}
			if _, err := js.PublishMsgAsync(msg); err != nil {
				done <- err
				return
			}
			if i%23 == 0 {
				if _, err := js.PublishMsgAsync(msg); err != nil { // a duplicate
					done <- err
					return
				}
			}
			if i%500 == 0 {
				<-js.PublishAsyncComplete()
			}
			published.Add(1)
		}
		<-js.PublishAsyncComplete()
		done <- nil
	}()
	rng := rand.New(rand.NewSource(2))
	for k := 0; k < kills; k++ {
		target := int64((k + 1) * total / (kills + 1))
		for published.Load() < target {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Intn(150)) * time.Millisecond)
		c.kill()
		c = startServe(t, dataDir, extra...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitApplied(t, c.httpAddr, js)
	// Stop gracefully, then compare the store with a rebuild from the log.
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
	cfg, err := config.LoadFile("../../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	live, err := projections.Open(filepath.Join(dataDir, app.StoreDir), projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	fresh := filepath.Join(t.TempDir(), "rebuilt")
	st, err := rebuild.Build(context.Background(), rebuild.Options{JS: js, Applier: projector.NewApplier(cfg), Dir: fresh})
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := projections.Open(fresh, projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	var a, b bytes.Buffer
	if err := live.Dump(&a); err != nil {
		t.Fatal(err)
	}
	if err := rebuilt.Dump(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("after %d kills the projections differ from a rebuild of the log (%d vs %d bytes)", kills, a.Len(), b.Len())
	}
	if st.Duplicates == 0 || st.Applied+st.Late != uint64(total) {
		t.Fatalf("rebuild stats %+v: want %d status events applied or late and some duplicates", st, total)
	}
	t.Logf("%d kills, %d events, %d log messages, %d duplicates in the log", kills, total, st.Events, st.Duplicates)
}

// waitApplied polls GET /v1/status until every projector consumer has no
// pending messages and the stream has everything.
func waitApplied(t *testing.T, httpAddr string, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + httpAddr + "/v1/status")
		if err == nil {
			var st app.Status
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil {
				pending := uint64(0)
				for _, c := range st.Consumers {
					pending += c.Pending
				}
				if pending == 0 && len(st.Consumers) > 0 {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("projector did not catch up")
}
