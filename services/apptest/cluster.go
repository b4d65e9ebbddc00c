package apptest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
)

// StartCluster runs n nats-servers clustered with JetStream on file
// storage, each in its own folder, on random 127.0.0.1 ports, and waits
// until JetStream has a meta leader. It returns the servers and a URL
// list of all of them.
func StartCluster(t testing.TB, n int) ([]*server.Server, string) {
	t.Helper()
	// The route ports are picked free, then bound by the servers: another
	// process may take one in between, and that node never starts. A
	// cluster that does not start is started again on other ports.
	var servers []*server.Server
	for attempt := 1; ; attempt++ {
		var err error
		if servers, err = startNodes(t, n); err == nil {
			break
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("cluster start %d: %v; again on other ports", attempt, err)
	}
	urls := make([]string, n)
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	url := strings.Join(urls, ",")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		_, err := js.AccountInfo(context.Background())
		return err
	})
	return servers, url
}

// startNodes starts n clustered nodes on free route ports, or shuts them
// down and says why when one is not ready within 20 s.
func startNodes(t testing.TB, n int) ([]*server.Server, error) {
	routes := make([]string, n)
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	servers := make([]*server.Server, 0, n)
	stop := func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "driftwatch", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			stop()
			return nil, err
		}
		go s.Start()
		servers = append(servers, s)
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	for i, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			stop()
			return nil, fmt.Errorf("node n%d (route port %d) did not start", i+1, ports[i])
		}
	}
	return servers, nil
}

// StreamMessages reads every message stream holds on filter now (as
// ReadStream), asking again for up to 10 s while it cannot (a replicated
// stream between leaders answers nothing), then failing the test.
func StreamMessages(t testing.TB, js jetstream.JetStream, stream, filter string) []jetstream.Msg {
	t.Helper()
	var msgs []jetstream.Msg
	CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var err error
		msgs, err = ReadStream(js, stream, filter)
		return err
	})
	return msgs
}

// ReadStream reads every message stream holds on filter now: as many as
// the stream's subject counts say, or an error (a stream electing a new
// leader answers none for a moment: poll it).
func ReadStream(js jetstream.JetStream, stream, filter string) ([]jetstream.Msg, error) {
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	want := 0
	for _, n := range info.State.Subjects {
		want += int(n)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s on %s: read %d of its %d messages: %v", stream, filter, len(out), want, batch.Error())
		}
	}
	return out, nil
}

// PublishAcked publishes one event and retries until JetStream
// acknowledges it (a stream electing a new leader refuses for a moment),
// failing after a minute. It returns how long the acknowledgement took:
// an acknowledged event is one the log holds.
func PublishAcked(t testing.TB, pub *events.Publisher, data string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		res, err := pub.PublishRaw(context.Background(), []byte(data))
		if err == nil && (res.Outcome == events.Accepted || res.Outcome == events.Duplicate) {
			return time.Since(start)
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no acknowledgement in 60 s: %+v %v", res, err)
		}
		time.Sleep(20 * time.Millisecond) // the pause between retries, not a wait for a condition
	}
}
