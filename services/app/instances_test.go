package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/cluster"
	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// clusterYAML is the test stack as instance name of a cluster of
// instances sharing 8 partitions with a 2 s lease, on R3 streams.
func clusterYAML(name string) string {
	return strings.Replace(apptest.StackYAML, "ingest:\n", "ingest:\n  replicas: 3\n  placement: {cluster: driftwatch}\n", 1) +
		"cluster:\n  instance: " + name + "\n  partitions: 8\n  lease: 2s\n"
}

// startInstances runs instances a and b on a 3-node cluster and waits
// until they own 4 of the 8 partitions each.
func startInstances(t *testing.T) (a, b *apptest.Env) {
	t.Helper()
	_, url := apptest.StartCluster(t, 3)
	withURL := func(o *app.Options) { o.NATSURL = url }
	a = apptest.Start(t, apptest.Config(t, clusterYAML("a")), "", withURL)
	b = apptest.Start(t, apptest.Config(t, clusterYAML("b")), "", withURL)
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if oa, ob := a.App.Owned.Owned(), b.App.Owned.Owned(); len(oa) != 4 || len(ob) != 4 {
			return fmt.Errorf("a owns %v, b owns %v", oa, ob)
		}
		return nil
	})
	return a, b
}

// TestInstancesShareThePartitions runs two driftwatch instances on a
// 3-node JetStream cluster: they split the 8 partitions, each keeps only
// its orders, every fault of a 300-order stack raises its alert exactly
// once, and when one instance stops the other takes its partitions,
// catches them up from the log and holds every order without publishing
// any alert again.
func TestInstancesShareThePartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster and two instances")
	}
	a, b := startInstances(t)
	t.Logf("a owns %v, b owns %v", a.App.Owned.Owned(), b.App.Owned.Owned())

	pub, err := events.NewPublisher(a.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC().Format(time.RFC3339)
	const orders = 300
	faults := map[string]bool{}
	for i := range orders {
		order := fmt.Sprintf("IN-%03d", i)
		mustPublish(t, pub, fmt.Sprintf(`{"event_id":"s-%d","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, i, order, now))
		if i%10 == 3 {
			faults[order] = true // the ERP never hears of it
			continue
		}
		mustPublish(t, pub, fmt.Sprintf(`{"event_id":"e-%d","order_id":"%s","system":"erp","status":"Pending Fulfillment","occurred_at":"%s"}`, i, order, now))
	}
	// Published with the order in the subject, each event is delivered
	// only to its partition's owner.
	a.WaitSettled(t, 30*time.Second)
	b.WaitSettled(t, 30*time.Second)
	if pa, pb := a.App.Projector.PassedOver(), b.App.Projector.PassedOver(); pa != 0 || pb != 0 {
		t.Fatalf("events of the other instance's orders delivered: %d to a, %d to b", pa, pb)
	}
	// Idle, each moves its checkpoints over the other's events to the
	// log's end.
	apptest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		st, err := a.JS.Stream(ctx, events.EventsStream)
		if err != nil {
			return err
		}
		last := st.CachedInfo().State.LastSeq
		if da, db := a.App.Detector.Applied(), b.App.Detector.Applied(); da != last || db != last {
			return fmt.Errorf("checkpoints %d (a) and %d (b), the log ends at %d", da, db, last)
		}
		return nil
	})
	checkRoutedAlone(t, a, b)
	for _, e := range []*apptest.Env{a, b} {
		st, err := e.App.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := "driftwatch.in.*"
		for _, q := range e.App.Owned.Owned() {
			want += fmt.Sprintf(" driftwatch.in.*.%d", q)
		}
		i := slices.IndexFunc(st.Consumers, func(c consume.Status) bool { return c.Name == projector.PassConsumer })
		if i < 0 || st.Consumers[i].Filter != want || st.Consumers[i].Durable != consume.InstanceName(projector.PassConsumer, e.App.Cluster.Instance()) {
			t.Fatalf("the status of the one pass: %+v, want the filter %q and its consumer's name", st.Consumers, want)
		}
		if i := slices.IndexFunc(st.Consumers, func(c consume.Status) bool { return c.System == "shop" }); i < 0 || st.Consumers[i].Filter != "driftwatch.in.shop driftwatch.in.shop.*" {
			t.Fatalf("the status of shop's checkpoint: %+v, want both of its subjects", st.Consumers)
		}
	}
	for i := range orders {
		order := fmt.Sprintf("IN-%03d", i)
		owner, other := a, b
		if !a.App.Owned.Owns(order) {
			owner, other = b, a
		}
		checkHeld(t, owner.App.Store, order, faults[order])
		if _, err := other.App.Store.Row(order, "shop"); err == nil {
			t.Fatalf("%s: in both instances' stores", order)
		}
	}
	checkAlertsOnce(t, a.JS, len(faults))
	checkReadsSpanInstances(t, a, b)

	// On b, one fault is resolved by hand and another handed to a team:
	// records only b's store and its mirror hold.
	var bFaults []string
	for order := range faults {
		if b.App.Owned.Owns(order) {
			bFaults = append(bFaults, order)
		}
	}
	slices.Sort(bFaults)
	resolvedID := detector.AlertID(bFaults[0], detector.OrderNotAcknowledged, "shop", "erp")
	assignedID := detector.AlertID(bFaults[1], detector.OrderNotAcknowledged, "shop", "erp")
	// Both asked of a: the owner, b, answers.
	if status, body := a.Do(t, "POST", "/v1/mismatches/"+resolvedID+"/resolve", "application/json", `{"note":"entered in the ERP by hand","by":"ops@example.com"}`); status != 200 || !strings.Contains(body, `"state":"resolved"`) {
		t.Fatalf("resolve on a of b's mismatch: %d %s", status, body)
	}
	if status, body := a.Do(t, "POST", "/v1/mismatches/"+assignedID+"/assign", "application/json", `{"owner":"team-erp","by":"ops@example.com"}`); status != 200 || !strings.Contains(body, `"owner":"team-erp"`) {
		t.Fatalf("assign on a of b's mismatch: %d %s", status, body)
	}
	if m, err := detector.GetMismatch(b.App.Store, resolvedID); err != nil || m.State != detector.StateResolved {
		t.Fatalf("resolved through a, b's record: %+v %v", m, err)
	}
	b.WaitSettled(t, 30*time.Second)

	// b stops; a takes its partitions, catches them up from the log
	// without publishing again what b published, and adopts b's records.
	published, err := a.NC.SubscribeSync(events.AlertsPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	b.Stop()
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if got := a.App.Owned.Owned(); len(got) != 8 {
			return fmt.Errorf("a owns %v", got)
		}
		return nil
	})
	t.Logf("a took b's partitions: %+v", a.App.Cluster.LastChange())
	a.WaitSettled(t, 30*time.Second)
	for i := range orders {
		order := fmt.Sprintf("IN-%03d", i)
		checkHeld(t, a.App.Store, order, faults[order])
	}
	checkAlertsOnce(t, a.JS, len(faults))
	if err := a.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := published.Pending(); n != 0 {
		m, _ := published.NextMsg(time.Second)
		t.Fatalf("the take-over published %d alert records again, the first %s %v: %s", n, m.Subject, m.Header, m.Data)
	}
	if m, err := detector.GetMismatch(a.App.Store, resolvedID); err != nil || m.State != detector.StateResolved {
		t.Fatalf("the mismatch resolved by hand on b is not resolved on a: %+v %v", m, err)
	}
	if m, err := detector.GetMismatch(a.App.Store, assignedID); err != nil || m.Owner != "team-erp" || m.State != detector.StateOpen {
		t.Fatalf("the mismatch assigned on b is not team-erp's on a: %+v %v", m, err)
	}
	_ = ctx
}

// checkReadsSpanInstances asks a about an order b owns: the order view
// (HTTP) and the gate (NATS) answer from b's store, and b's micro
// endpoint lists what it owns.
func checkReadsSpanInstances(t *testing.T, a, b *apptest.Env) {
	t.Helper()
	var order string
	for i := range 300 {
		if o := fmt.Sprintf("IN-%03d", i); i%10 != 3 && b.App.Owned.Owns(o) {
			order = o
			break
		}
	}
	status, body := a.Do(t, "GET", "/v1/orders/"+order, "", "")
	if status != 200 || !strings.Contains(body, `"order_id":"`+order+`"`) || !strings.Contains(body, "Pending Fulfillment") {
		t.Fatalf("GET /v1/orders/%s on a (b owns it): %d %s", order, status, body)
	}
	req := fmt.Sprintf(`{"event":{"event_id":"g-1","order_id":"%s","system":"erp","status":"Billed","occurred_at":"%s"},"target":"erp"}`, order, time.Now().UTC().Format(time.RFC3339))
	msg, err := a.NC.Request(events.ValidateSubject, []byte(req), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply events.ValidateReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		t.Fatalf("gate reply %s: %v", msg.Data, err)
	}
	if !reply.Current.HasRecord || reply.Current.Status != "Pending Fulfillment" {
		t.Fatalf("gate about %s (b's) judged without b's state: %+v", order, reply)
	}
	// The list is every instance's, from either.
	for _, env := range []*apptest.Env{a, b} {
		status, body := env.Do(t, "GET", "/v1/mismatches?pattern=order_not_acknowledged&limit=1000", "", "")
		var page struct {
			Total      int `json:"total"`
			Mismatches []struct {
				OrderID string `json:"order_id"`
			} `json:"mismatches"`
		}
		if err := json.Unmarshal([]byte(body), &page); status != 200 || err != nil || page.Total != 30 || len(page.Mismatches) != 30 {
			t.Fatalf("GET /v1/mismatches: %d, total %d, %d listed (want 30): %v %.300s", status, page.Total, len(page.Mismatches), err, body)
		}
	}
	// The statistics are both instances' added up.
	want := 0
	for _, env := range []*apptest.Env{a, b} {
		_, n, err := detector.ListMismatches(env.App.Store, detector.Filter{Owns: env.App.Owned.Owns}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want += n
	}
	for _, env := range []*apptest.Env{a, b} {
		status, body := env.Do(t, "GET", "/v1/stats?window=1h&bucket=10m", "", "")
		var st struct {
			OpenTotal int `json:"open_total"`
			Buckets   []struct {
				Detected int `json:"detected"`
			} `json:"buckets"`
		}
		detected := 0
		if err := json.Unmarshal([]byte(body), &st); err == nil {
			for _, bk := range st.Buckets {
				detected += bk.Detected
			}
		}
		if status != 200 || st.OpenTotal != want || detected != want || want < 30 {
			t.Fatalf("GET /v1/stats: %d, open %d, detected %d (want %d, at least 30): %.300s", status, st.OpenTotal, detected, want, body)
		}
	}
	id := detector.AlertID(fmt.Sprintf("IN-%03d", 3), detector.OrderNotAcknowledged, "shop", "erp")
	for _, env := range []*apptest.Env{a, b} {
		if status, body := env.Do(t, "GET", "/v1/mismatches/"+id, "", ""); status != 200 || !strings.Contains(body, `"order_id":"IN-003"`) {
			t.Fatalf("GET /v1/mismatches/%s: %d %s", id, status, body)
		}
	}
	// What `nats micro ls` reads: each instance's service, with what it
	// owns in its description and metadata.
	infos, err := a.NC.SubscribeSync(nats.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.NC.PublishRequest("$SRV.INFO."+cluster.ServiceName, infos.Subject, nil); err != nil {
		t.Fatal(err)
	}
	described := map[string]string{}
	for len(described) < 2 {
		m, err := infos.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("service infos: %v (have %v)", err, described)
		}
		var info struct {
			Description string            `json:"description"`
			Metadata    map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		described[info.Metadata["instance"]] = info.Metadata["owned"] + " | " + info.Description
	}
	for _, name := range []string{"a", "b"} {
		if d := described[name]; strings.HasPrefix(d, "none") || !strings.Contains(d, "driftwatch instance "+name+": owns 4 of 8 partitions") {
			t.Fatalf("the instances' services say %v", described)
		}
	}
	msg, err = a.NC.Request(cluster.InstanceSubject("b", "partitions"), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var parts struct {
		Owned []int `json:"owned"`
	}
	if err := json.Unmarshal(msg.Data, &parts); err != nil || !slices.Equal(parts.Owned, b.App.Owned.Owned()) {
		t.Fatalf("b's partitions endpoint: %s (%v), b owns %v", msg.Data, err, b.App.Owned.Owned())
	}
}

// mustPublish publishes one event and fails unless the log took it.
func mustPublish(t *testing.T, pub *events.Publisher, data string) {
	t.Helper()
	res, err := pub.PublishRaw(context.Background(), []byte(data))
	if err != nil || res.Outcome != events.Accepted {
		t.Fatalf("publish: %+v %v", res, err)
	}
}

// checkHeld checks that store holds order's acknowledged shop event, and
// its order_not_acknowledged mismatch exactly when the order is a fault.
func checkHeld(t *testing.T, store *projections.Store, order string, fault bool) {
	t.Helper()
	if _, err := store.Row(order, "shop"); err != nil {
		t.Fatalf("%s: its acknowledged event is not in the store: %v", order, err)
	}
	_, err := detector.GetMismatch(store, detector.AlertID(order, detector.OrderNotAcknowledged, "shop", "erp"))
	if fault != (err == nil) {
		t.Fatalf("%s: fault %v, mismatch %v", order, fault, err)
	}
}

// checkAlertsOnce reads every order_not_acknowledged record of the
// alerts stream: each message id is there once, and want alerts opened.
func checkAlertsOnce(t *testing.T, js jetstream.JetStream, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range apptest.StreamMessages(t, js, events.AlertsStream, events.AlertsPrefix+"*."+detector.OrderNotAcknowledged) {
		seen[m.Headers().Get(nats.MsgIdHdr)]++
	}
	var opened []string
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("alert %s published %d times", id, c)
		}
		if strings.HasSuffix(id, ":"+detector.StateOpen) {
			opened = append(opened, id)
		}
	}
	if len(opened) != want {
		slices.Sort(opened)
		t.Fatalf("%d order_not_acknowledged alerts opened, want %d: %v", len(opened), want, opened)
	}
}

// TestInstancesHoldASystemFindingOnce: a status missing from a mapping
// table shows in the events of both instances' orders; the finding about
// the system is opened, published, listed and counted once, by the
// instance that saw it first, and it moves with that instance's
// partitions when it stops.
func TestInstancesHoldASystemFindingOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster and two instances")
	}
	a, b := startInstances(t)
	pub, err := events.NewPublisher(a.NC)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := b.NC.SubscribeSync(events.AlertsPrefix + "*." + detector.UnmappedStatus)
	if err != nil {
		t.Fatal(err)
	}
	orderOf := func(env *apptest.Env) string {
		for i := 0; ; i++ {
			if o := fmt.Sprintf("SYS-%d", i); env.App.Owned.Owns(o) {
				return o
			}
		}
	}
	unmapped := func(order string) {
		mustPublish(t, pub, fmt.Sprintf(`{"event_id":"u-%s","order_id":"%s","system":"wms","status":"teleported","occurred_at":"%s"}`,
			order, order, time.Now().UTC().Format(time.RFC3339)))
	}
	held := func(env *apptest.Env) []*detector.Mismatch {
		t.Helper()
		page, _, err := detector.ListMismatches(env.App.Store, detector.Filter{Pattern: detector.UnmappedStatus}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	// a sees it first; its record is mirrored before b sees it.
	unmapped(orderOf(a))
	var id string
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if h := held(a); len(h) != 1 {
			return fmt.Errorf("a holds %d unmapped_status findings", len(h))
		}
		id = held(a)[0].AlertID
		return nil
	})
	kv, err := b.JS.KeyValue(context.Background(), cluster.HandoverBucket)
	if err != nil {
		t.Fatal(err)
	}
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, err := kv.Get(context.Background(), "mismatch."+id)
		return err
	})
	unmapped(orderOf(b))
	a.WaitSettled(t, 30*time.Second)
	b.WaitSettled(t, 30*time.Second)
	if ha, hb := held(a), held(b); len(ha) != 1 || len(hb) != 0 {
		t.Fatalf("unmapped_status records: %d on a, %d on b; want the one on a", len(ha), len(hb))
	}
	for _, env := range []*apptest.Env{a, b} {
		status, body := env.Do(t, "GET", "/v1/mismatches?pattern=unmapped_status", "", "")
		if status != 200 || !strings.Contains(body, `"total":1,`) {
			t.Fatalf("GET /v1/mismatches?pattern=unmapped_status: %d %.300s", status, body)
		}
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := opened.Pending(); n != 1 {
		t.Fatalf("the finding was published %d times", n)
	}
	if e, err := kv.Get(context.Background(), "system."+id); err != nil || string(e.Value()) != "a" {
		t.Fatalf("the claim of %s: %v", id, err)
	}

	// a stops: b adopts the record with a's partitions, and publishes
	// nothing.
	a.Stop()
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if got := b.App.Owned.Owned(); len(got) != 8 {
			return fmt.Errorf("b owns %v", got)
		}
		return nil
	})
	b.WaitSettled(t, 30*time.Second)
	if h := held(b); len(h) != 1 || h[0].AlertID != id || h[0].State != detector.StateOpen {
		t.Fatalf("b after taking a's partitions holds %+v, want %s open", h, id)
	}
	if n, _, _ := opened.Pending(); n != 1 {
		t.Fatalf("the finding was published %d times", n)
	}
}

// TestInstanceRefusesAnotherPartitionCount: an instance configured with a
// partition count other than the cluster's does not start, and says why.
func TestInstanceRefusesAnotherPartitionCount(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster")
	}
	_, url := apptest.StartCluster(t, 3)
	apptest.Start(t, apptest.Config(t, clusterYAML("a")), "", func(o *app.Options) { o.NATSURL = url })
	cfg := apptest.Config(t, strings.Replace(clusterYAML("b"), "partitions: 8", "partitions: 4", 1))
	a, err := app.New(app.Options{Config: cfg, DataDir: t.TempDir(), NATSURL: url, HTTPAddr: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = a.Start(ctx)
	defer a.Stop(context.Background())
	if !errors.Is(err, cluster.ErrPartitions) || !strings.Contains(err.Error(), "the cluster runs with 8 partitions, this instance with 4") {
		t.Fatalf("start with 4 partitions in a cluster of 8: %v", err)
	}
}

// TestInstanceStandsStillWithoutItsLeases: an instance whose leases cannot
// be renewed (here their bucket is gone) stops owning its partitions
// before the leases could expire, so that it never judges orders another
// instance may have taken; once it can renew again it takes them back.
func TestInstanceStandsStillWithoutItsLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster")
	}
	_, url := apptest.StartCluster(t, 3)
	a := apptest.Start(t, apptest.Config(t, clusterYAML("a")), "", func(o *app.Options) { o.NATSURL = url })
	owns := func(n int) func() error {
		return func() error {
			if got := a.App.Owned.Owned(); len(got) != n {
				return fmt.Errorf("a owns %v, want %d partitions", got, n)
			}
			return nil
		}
	}
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, owns(8))
	ctx := context.Background()
	kv, err := a.JS.KeyValue(ctx, cluster.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := status.(*jetstream.KeyValueBucketStatus).Config()
	if err := a.JS.DeleteKeyValue(ctx, cluster.Bucket); err != nil {
		t.Fatal(err)
	}
	// Two rounds fail (a third of the 2 s lease apart): then it stands
	// still, before the lease would have run out.
	apptest.CheckFor(t, 10*time.Second, 20*time.Millisecond, owns(0))
	if c := a.App.Cluster.Status().LastChange; len(c.Lost) != 8 {
		t.Fatalf("the last change lost %v, want the 8 partitions", c.Lost)
	}
	if _, err := a.JS.CreateKeyValue(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, owns(8))
}

// checkRoutedAlone: events published on the bare subject reach every
// instance and are passed over by all but the owner; an event whose
// subject names another order than its order_id is dead-lettered once,
// by the owner of the partition its subject names, saying so.
func checkRoutedAlone(t *testing.T, a, b *apptest.Env) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Format(time.RFC3339)
	before := a.App.Projector.PassedOver() + b.App.Projector.PassedOver()
	const bare = 20
	for i := range bare {
		data := fmt.Sprintf(`{"event_id":"bare-%d","order_id":"IN-%03d","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, i, i, now)
		if _, err := a.JS.Publish(ctx, events.InSubject("shop"), []byte(data), jetstream.WithMsgID(events.MsgID("shop", fmt.Sprintf("bare-%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	// IN-000's event on a subject that names an order of another partition.
	forged := "IN-000"
	other := ""
	for i := 1; other == ""; i++ {
		if o := fmt.Sprintf("X-%d", i); events.Partition(o, a.App.Owned.N()) != events.Partition(forged, a.App.Owned.N()) {
			other = o
		}
	}
	data := fmt.Sprintf(`{"event_id":"forged-1","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, forged, now)
	ack, err := a.JS.Publish(ctx, events.OrderSubject("shop", other), []byte(data), jetstream.WithMsgID("shop:forged-1"))
	if err != nil {
		t.Fatal(err)
	}
	a.WaitSettled(t, 30*time.Second)
	b.WaitSettled(t, 30*time.Second)
	if got := a.App.Projector.PassedOver() + b.App.Projector.PassedOver() - before; got != bare {
		t.Fatalf("%d bare events passed over, want %d (each by the instance that does not own it)", got, bare)
	}
	dlq, err := a.JS.Stream(ctx, events.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	var found int
	apptest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		found = 0
		info, err := dlq.Info(ctx)
		if err != nil {
			return err
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
			m, err := dlq.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			if m.Header.Get("Driftwatch-Log-Seq") == fmt.Sprint(ack.Sequence) {
				found++
				if reason := m.Header.Get(events.HeaderError); !strings.Contains(reason, "order_id") || !strings.Contains(reason, "names partition") {
					return fmt.Errorf("dead-lettered with %q", reason)
				}
			}
		}
		if found != 1 {
			return fmt.Errorf("the forged event dead-lettered %d times", found)
		}
		return nil
	})
}

// TestInstanceStopsWhereTheLogLostWhatItHadNotRead: an instance that reads
// its partitions' subjects alone cannot see a hole in the log from the
// sequences it is delivered; restarted after the log dropped events past
// its checkpoint, it refuses to go on and names them, as the one
// instance's pass does.
func TestInstanceStopsWhereTheLogLostWhatItHadNotRead(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster and two instances")
	}
	a, b := startInstances(t)
	url := a.App.Broker.ClientURL
	pub, err := events.NewPublisher(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC().Format(time.RFC3339)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			mustPublish(t, pub, fmt.Sprintf(`{"event_id":"g-%d","order_id":"GAP-%03d","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, i, i, now))
		}
	}
	publish(0, 40)
	stream, err := b.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		last = info.State.LastSeq
		if got := a.App.Detector.Applied(); got != last {
			return fmt.Errorf("a's checkpoint %d, the log ends at %d", got, last)
		}
		return nil
	})
	cfg, dir := apptest.Config(t, clusterYAML("a")), a.DataDir
	a.Stop()
	publish(40, 60) // read by b alone
	if err := stream.Purge(ctx, jetstream.WithPurgeSequence(last+11)); err != nil {
		t.Fatal(err)
	}
	again, err := app.New(app.Options{Config: cfg, DataDir: dir, NATSURL: url, HTTPAddr: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = again.Start(startCtx)
	defer again.Stop(context.Background())
	if want := fmt.Sprintf("events %d to %d", last+1, last+10); !errors.Is(err, consume.ErrLogGap) || !strings.Contains(err.Error(), want) {
		t.Fatalf("restarted after the log lost what it had not read: %v, want the gap of %s", err, want)
	}
}

// TestInstanceNamesWhatTheLogLostOfPartitionsItTakesBack: a gives half
// its partitions to c; while c owns them the log loses events a had not
// read; when c stops and a takes them back, a catches up what the log
// still holds and its change names the partitions and the events lost.
func TestInstanceNamesWhatTheLogLostOfPartitionsItTakesBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster and two instances")
	}
	_, url := apptest.StartCluster(t, 3)
	withURL := func(o *app.Options) { o.NATSURL = url }
	a := apptest.Start(t, apptest.Config(t, clusterYAML("a")), "", withURL)
	owns := func(env *apptest.Env, n int) func() error {
		return func() error {
			if got := env.App.Owned.Owned(); len(got) != n {
				return fmt.Errorf("%s owns %v, want %d partitions", env.App.Cluster.Instance(), got, n)
			}
			return nil
		}
	}
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, owns(a, 8))
	pub, err := events.NewPublisher(a.NC)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	publish := func(env *apptest.Env, from, to int) {
		for i := from; i < to; i++ {
			order := fmt.Sprintf("BACK-%03d", i)
			if env == nil || env.App.Owned.Owns(order) {
				mustPublish(t, pub, fmt.Sprintf(`{"event_id":"k-%d","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, i, order, now))
			}
		}
	}
	publish(nil, 0, 40)
	a.WaitSettled(t, 30*time.Second)
	c := apptest.Start(t, apptest.Config(t, clusterYAML("c")), "", withURL)
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, owns(c, 4))
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, owns(a, 4))
	ctx := context.Background()
	stream, err := a.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq // a gave c's partitions up here, or before
	publish(c, 40, 200)        // read by c alone
	c.WaitSettled(t, 30*time.Second)
	if info, err = stream.Info(ctx); err != nil || info.State.LastSeq < last+20 {
		t.Fatalf("the log after c's orders: %+v %v", info.State, err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSequence(last+11)); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, owns(a, 8))
	change := a.App.Cluster.LastChange()
	t.Logf("a took c's partitions back: %+v", change)
	u := change.Unread
	if u == nil || !slices.Equal(u.Partitions, change.Gained) || u.From > last+1 || u.To != last+10 {
		t.Fatalf("the change names as lost %+v, want partitions %v, events up to %d to %d", u, change.Gained, last+1, last+10)
	}
	st, err := a.App.Status(ctx)
	if err != nil || st.Cluster == nil || st.Cluster.LastChange.Unread == nil {
		t.Fatalf("status: %+v %v", st.Cluster, err)
	}
}

// TestInstancesStartTogether starts two instances at the same moment on
// a new 3-node cluster, stops them, and starts them together again: both
// create the replicated streams and buckets at once, then race for the
// partitions their leave deleted, and each start must succeed.
func TestInstancesStartTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster and two instances, twice")
	}
	_, url := apptest.StartCluster(t, 3)
	dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
	for round := range 2 {
		apps := map[string]*app.App{}
		errs := make(chan error, len(dirs))
		for name, dir := range dirs {
			a, err := app.New(app.Options{Config: apptest.Config(t, clusterYAML(name)), DataDir: dir, NATSURL: url,
				HTTPAddr: "127.0.0.1:0", Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			apps[name] = a
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for name, a := range apps {
			go func() {
				began := time.Now()
				if err := a.Start(ctx); err != nil {
					errs <- fmt.Errorf("start %d of %s: %w", round+1, name, err)
					return
				}
				t.Logf("start %d of %s took %v", round+1, name, time.Since(began))
				errs <- nil
			}()
		}
		var failed []error
		for range apps {
			if err := <-errs; err != nil {
				failed = append(failed, err)
			}
		}
		cancel()
		if len(failed) == 0 {
			apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
				if oa, ob := apps["a"].Owned.Owned(), apps["b"].Owned.Owned(); len(oa) != 4 || len(ob) != 4 {
					return fmt.Errorf("a owns %v, b owns %v", oa, ob)
				}
				return nil
			})
		}
		for _, a := range apps {
			a.Stop(context.Background())
		}
		if err := errors.Join(failed...); err != nil {
			t.Fatal(err)
		}
	}
}
