package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/config"
)

// benchPartitions is the partition count of the instances bench.
const benchPartitions = 16

// BenchmarkInstances measures the end-to-end rate of the bench's workload
// (DRIFTWATCH_BENCH_ORDERS orders, default 10,000, about 12 events each,
// published in atomic batches) with one driftwatch without a cluster
// section (the reference), then 1, 2 and 4 driftwatch instances in this
// process sharing 16 partitions on one JetStream server (file storage,
// sync every second): from the first publish until every instance has
// applied and judged the whole log. With two instances it then stops one
// and times the other's take-over of its 8 partitions (a catch-up from
// the log's start, as on a machine that never owned them): the cost per
// partition. DRIFTWATCH_BENCH_RATE (events/s) paces the publisher, for a
// steady load instead of a burst.
//
//	go test ./services/bench -run XXX -bench Instances -benchtime 1x
func BenchmarkInstances(b *testing.B) {
	payloads, _ := NewWorkload(1).Payloads(benchOrders(10000))
	for _, n := range []int{0, 1, 2, 4} {
		name := fmt.Sprintf("instances=%d", n)
		if n == 0 {
			name = "default" // one instance, no cluster section: the reference
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				runInstances(b, n, payloads)
			}
		})
	}
}

func runInstances(b *testing.B, n int, payloads [][]byte) {
	ctx := context.Background()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(),
		SyncInterval: time.Second, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	url := srv.ClientURL()
	apps := make([]*app.App, max(n, 1))
	for i := range apps {
		yaml := fmt.Sprintf(Config, "1s")
		if n > 0 {
			yaml += fmt.Sprintf("cluster:\n  instance: i%d\n  partitions: %d\n  lease: 2s\n", i+1, benchPartitions)
		}
		cfg, err := config.Parse("bench.yaml", []byte(yaml))
		if err != nil {
			b.Fatal(err)
		}
		a, err := app.New(app.Options{Config: cfg, DataDir: b.TempDir(), NATSURL: url, Logger: zerolog.Nop(),
			Services: []string{app.ServiceProjector, app.ServiceDetector}})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Start(ctx); err != nil {
			b.Fatal(err)
		}
		apps[i] = a
		defer func() {
			stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = a.Stop(stop)
		}()
	}
	share := (benchPartitions + n - 1) / max(n, 1)
	apptest.CheckFor(b, 30*time.Second, 20*time.Millisecond, func() error {
		if n == 0 {
			return nil
		}
		total := 0
		for _, a := range apps {
			o := len(a.Owned.Owned())
			if o > share {
				return fmt.Errorf("an instance owns %d partitions, more than its share of %d", o, share)
			}
			total += o
		}
		if total != benchPartitions {
			return fmt.Errorf("the instances own %d of %d partitions", total, benchPartitions)
		}
		return nil
	})

	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	pub, err := events.NewPublisher(nc)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	publish := publishEvents
	if rate := benchRate(); rate > 0 {
		publish = func(ctx context.Context, pub *events.Publisher, payloads [][]byte) error {
			return publishPaced(ctx, pub, payloads, rate)
		}
	}
	if err := publish(ctx, pub, payloads); err != nil {
		b.Fatal(err)
	}
	for _, a := range apps {
		if err := waitApplied(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(len(payloads)) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(0, "ns/op")
	// What each instance reads beyond its own orders: 0 when every event
	// reaches its owner alone, n-1 when each reads the whole log.
	var passed uint64
	for _, a := range apps {
		passed += a.Projector.PassedOver()
	}
	b.ReportMetric(float64(passed)/float64(len(payloads)), "passed-over/event")
	if n != 2 {
		return
	}
	// The take-over: i2 leaves, i1 catches its partitions up from the
	// log's start.
	stop, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := apps[1].Stop(stop); err != nil {
		b.Fatal(err)
	}
	apptest.CheckFor(b, 60*time.Second, 20*time.Millisecond, func() error {
		if got := apps[0].Owned.Owned(); len(got) != benchPartitions {
			return fmt.Errorf("i1 owns %v", got)
		}
		return nil
	})
	c := apps[0].Cluster.LastChange()
	b.ReportMetric(float64(c.Took.Milliseconds()), "takeover-ms")
	b.ReportMetric(float64(c.Paused.Microseconds())/1000, "paused-ms")
	b.ReportMetric(float64(c.Took.Milliseconds())/float64(max(len(c.Gained), 1)), "ms/partition")
	b.ReportMetric(float64(c.Replayed)/c.Took.Seconds(), "catchup-events/s")
}

// benchRate is DRIFTWATCH_BENCH_RATE in events/s (0: as fast as the
// publisher goes).
func benchRate() int {
	n, _ := strconv.Atoi(os.Getenv("DRIFTWATCH_BENCH_RATE"))
	return max(n, 0)
}
