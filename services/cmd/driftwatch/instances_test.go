package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/cluster"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestInstancesFailOver runs two `driftwatch serve --instance` processes
// on a 3-node JetStream cluster (R3 streams, 8 partitions, a 2 s lease)
// and publishes a stack of orders, one in ten with a fault (the ERP never
// hears of it):
//
//   - mid-stream, instance b is killed with SIGKILL: a takes its
//     partitions (the failover gap, from the kill until a owns them all,
//     is printed), and every acknowledged event is in a's projections,
//     every fault's alert is raised once, none twice;
//   - b is started again on its data folder and takes half back (caught
//     up from its own store's marks), and mid-stream the NATS node
//     leading the events stream is shut down: the same holds, every order
//     read through either instance.
func TestInstancesFailOver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a 3-node cluster and two instances")
	}
	servers, url := apptest.StartCluster(t, 3)
	cfgPath := filepath.Join(t.TempDir(), "driftwatch.yaml")
	yaml := strings.Replace(apptest.StackYAML, "ingest:\n", "ingest:\n  replicas: 3\n  placement: {cluster: driftwatch}\n", 1) +
		"cluster:\n  partitions: 8\n  lease: 2s\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	dataA, dataB := t.TempDir(), t.TempDir()
	serve := func(name, data string) *child {
		return startServe(t, data, "--config", cfgPath, "--nats-url", url, "--instance", name)
	}
	a, b := serve("a", dataA), serve("b", dataB)

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	owned := func(name string) []int {
		msg, err := nc.Request(cluster.InstanceSubject(name, "partitions"), nil, 2*time.Second)
		if err != nil {
			return nil
		}
		var p struct {
			Owned []int `json:"owned"`
		}
		_ = json.Unmarshal(msg.Data, &p)
		return p.Owned
	}
	waitShares := func(wantA, wantB int) {
		apptest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if oa, ob := owned("a"), owned("b"); len(oa) != wantA || len(ob) != wantB {
				return fmt.Errorf("a owns %v, b owns %v", oa, ob)
			}
			return nil
		})
	}
	waitShares(4, 4)

	pub, err := events.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	publish := func(data string) { apptest.PublishAcked(t, pub, data) }
	now := time.Now().UTC().Format(time.RFC3339)
	faults := map[string]bool{}
	stack := func(from, to int, midway func()) {
		for i := from; i < to; i++ {
			if i == (from+to)/2 {
				midway()
			}
			order := fmt.Sprintf("FO-%03d", i)
			publish(fmt.Sprintf(`{"event_id":"s-%d","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, i, order, now))
			if i%10 == 7 {
				faults[order] = true
				continue
			}
			publish(fmt.Sprintf(`{"event_id":"e-%d","order_id":"%s","system":"erp","status":"Pending Fulfillment","occurred_at":"%s"}`, i, order, now))
		}
	}
	check := func(to int, via ...*child) {
		t.Helper()
		waitAlerts(t, js, faults)
		for i := range to {
			order := fmt.Sprintf("FO-%03d", i)
			c := via[i%len(via)]
			status, body := httpGet(t, c.httpAddr, "/v1/orders/"+order)
			if status != http.StatusOK || !strings.Contains(body, `"system":"shop","platform":"shopify","role":"storefront","has_record":true`) {
				t.Fatalf("acknowledged event of %s not applied: %d %s", order, status, body)
			}
		}
	}

	// Phase 1: SIGKILL of an instance.
	var killed time.Time
	gap := make(chan time.Duration, 1)
	var badSeq uint64
	stack(0, 400, func() {
		bOwned := owned("b")
		b.kill()
		killed = time.Now()
		// Bad input for one of b's orders while its partition has no
		// owner: a passes over it, then dead-letters it when it takes
		// the partition.
		order := ""
		for i := 0; order == ""; i++ {
			if o := fmt.Sprintf("BAD-%d", i); slices.Contains(bOwned, events.Partition(o, 8)) {
				order = o
			}
		}
		ack, err := js.Publish(ctx, events.InSubject("shop"), []byte(`{"event_id":"bad-1","order_id":"`+order+`","system":"shop","status":"unfulfilled"}`))
		if err != nil {
			t.Fatal(err)
		}
		badSeq = ack.Sequence
		go func() {
			for len(owned("a")) != 8 {
				time.Sleep(20 * time.Millisecond)
			}
			gap <- time.Since(killed)
		}()
	})
	select {
	case g := <-gap:
		t.Logf("instance b killed (SIGKILL): a owned all 8 partitions %v later (lease 2s)", g.Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("a did not take b's partitions: owns %v", owned("a"))
	}
	check(400, a)
	dead := apptest.StreamMessages(t, js, events.DLQStream, events.DLQSubject("shop"))
	if len(dead) != 1 || dead[0].Headers().Get("Driftwatch-Log-Seq") != strconv.FormatUint(badSeq, 10) {
		t.Fatalf("dead letters of shop: %d, want the one at log seq %d", len(dead), badSeq)
	}

	// Phase 2: b back, then the events stream's leader node shut down.
	b = serve("b", dataB)
	waitShares(4, 4)
	stack(400, 600, func() {
		leader := streamLeaderOf(t, js)
		for _, s := range servers {
			if s.Name() == leader {
				s.Shutdown()
				t.Logf("shut down NATS node %s, the events stream's leader", leader)
			}
		}
	})
	check(600, a, b)
}

// waitAlerts polls the alerts stream until every fault's
// order_not_acknowledged alert is there, and fails at once on an alert
// published twice or opened for an order without a fault.
func waitAlerts(t *testing.T, js jetstream.JetStream, faults map[string]bool) {
	t.Helper()
	apptest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		seen := map[string]int{}
		opened := map[string]bool{}
		msgs, err := apptest.ReadStream(js, events.AlertsStream, events.AlertsPrefix+"*."+detector.OrderNotAcknowledged)
		if err != nil {
			return err // a leader election under way: poll again
		}
		for _, m := range msgs {
			var a struct {
				OrderID string `json:"order_id"`
				State   string `json:"state"`
			}
			if err := json.Unmarshal(m.Data(), &a); err != nil {
				t.Fatalf("alert record: %v", err)
			}
			id := m.Headers().Get(nats.MsgIdHdr)
			if seen[id]++; seen[id] > 1 {
				t.Fatalf("alert %s published twice", id)
			}
			if a.State == detector.StateOpen {
				if !faults[a.OrderID] {
					t.Fatalf("alert opened for %s, which has no fault", a.OrderID)
				}
				opened[a.OrderID] = true
			}
		}
		if len(opened) != len(faults) {
			return fmt.Errorf("%d of %d faults alerted", len(opened), len(faults))
		}
		return nil
	})
}

// streamLeaderOf names the server leading the events stream.
func streamLeaderOf(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	s, err := js.Stream(context.Background(), events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.Cluster.Leader
}

// httpGet GETs path from addr, retrying a 503 (a partition between
// owners) for a while.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return resp.StatusCode, string(body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
