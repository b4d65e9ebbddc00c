package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestClusterNodeLossLosesNothing runs driftwatch against a 3-node
// JetStream cluster with R3 streams placed on it (ingest.replicas: 3,
// ingest.placement.cluster) and kills the
// events stream's leader mid-stream: every event JetStream acknowledged is
// applied, each fault order raises its alert exactly once, and no alert
// is published twice. The failover gap (from the kill to the next
// acknowledged publish) is measured and printed.
func TestClusterNodeLossLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster")
	}
	servers, url := apptest.StartCluster(t, 3)
	cfg := apptest.Config(t, strings.Replace(apptest.StackYAML, "ingest:\n", "ingest:\n  replicas: 3\n  sync_interval: always\n  placement: {cluster: driftwatch}\n", 1))
	env := apptest.Start(t, cfg, "", func(o *app.Options) { o.NATSURL = url })

	pubConn, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	pub, err := events.NewPublisher(pubConn)
	if err != nil {
		t.Fatal(err)
	}
	// publish retries until JetStream acknowledges (a leader election
	// refuses for a moment): an acknowledged event is one the log holds.
	publish := func(data string) time.Duration { return apptest.PublishAcked(t, pub, data) }
	now := time.Now().UTC().Format(time.RFC3339)
	const orders = 120
	faults := map[string]bool{}
	var gap time.Duration
	for i := range orders {
		if i == orders/2 {
			leader := streamLeader(t, env.JS)
			for _, s := range servers {
				if s.Name() == leader {
					s.Shutdown()
				}
			}
			gap = publish(fmt.Sprintf(`{"event_id":"gap","order_id":"CL-GAP","system":"erp","status":"Pending Fulfillment","occurred_at":"%s"}`, now))
			t.Logf("killed the events stream's leader %s: the next publish was acknowledged after %v", leader, gap)
		}
		order := fmt.Sprintf("CL-%03d", i)
		publish(fmt.Sprintf(`{"event_id":"s-%d","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, i, order, now))
		if i%10 == 0 {
			faults[order] = true // the ERP never hears of it
			continue
		}
		publish(fmt.Sprintf(`{"event_id":"e-%d","order_id":"%s","system":"erp","status":"Pending Fulfillment","occurred_at":"%s"}`, i, order, now))
	}
	env.WaitSettled(t, 60*time.Second)
	for i := range orders {
		order := fmt.Sprintf("CL-%03d", i)
		checkHeld(t, env.App.Store, order, faults[order])
	}
	// Each alert record was published once.
	seen := map[string]int{}
	for _, m := range apptest.StreamMessages(t, env.JS, events.AlertsStream, events.AlertsPrefix+"*."+detector.OrderNotAcknowledged) {
		seen[m.Headers().Get(jetstream.MsgIDHeader)]++
	}
	opened := 0
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("alert %s published %d times", id, c)
		}
		if strings.HasSuffix(id, ":"+detector.StateOpen) {
			opened++
		}
	}
	if opened != len(faults) {
		t.Fatalf("%d order_not_acknowledged alerts opened, want %d (one per fault)", opened, len(faults))
	}
}

// streamLeader names the server leading the events stream.
func streamLeader(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	s, err := js.Stream(context.Background(), events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("no stream leader: %+v %v", info, err)
	}
	if info.Config.Placement == nil || info.Config.Placement.Cluster != "driftwatch" {
		t.Fatalf("the events stream's placement: %+v", info.Config.Placement)
	}
	if len(info.Cluster.Replicas)+1 != 3 {
		t.Fatalf("the events stream has %d replicas, want 3", len(info.Cluster.Replicas)+1)
	}
	return info.Cluster.Leader
}

// TestClusterConfigsLoad: the deploy folder's three cluster configurations
// are valid nats-server configuration (routes, JetStream, the users with
// their permissions).
func TestClusterConfigsLoad(t *testing.T) {
	for _, n := range []string{"n1", "n2", "n3"} {
		opts, err := server.ProcessConfigFile("../../deploy/nats-cluster/" + n + ".conf")
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if !opts.JetStream || opts.Cluster.Name != "driftwatch" || len(opts.Routes) != 3 || len(opts.Nkeys) != 3 {
			t.Fatalf("%s: jetstream %v, cluster %q, %d routes, %d users", n, opts.JetStream, opts.Cluster.Name, len(opts.Routes), len(opts.Nkeys))
		}
	}
}
