package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/driftwatch/driftwatch/events"
)

// GateClientOptions configures a gate load generator.
type GateClientOptions struct {
	URL    string        // the NATS server
	Orders int           // requests name orders B-00000000 .. of the workload
	Rate   int           // requests per second
	For    time.Duration // how long to send
	// IngestRate, when set, publishes the workload's events at this many
	// per second through events.Publisher on a connection of its own
	// while the requests run (PublishEach: one by one).
	IngestRate  int
	PublishEach bool
	// Subject the requests go to (default events.ValidateSubject, the
	// gate).
	Subject string
	// PairSubject, when set, receives each request right after Subject
	// does (Rate counts both), and its latencies are kept apart: two
	// responders compared under exactly the same load and at the same
	// moments.
	PairSubject string
	// IngestOffset shifts the ingested orders' numbers, so a second window
	// in the same log publishes fresh events rather than duplicates.
	IngestOffset int
}

func (o GateClientOptions) subject() string {
	if o.Subject == "" {
		return events.ValidateSubject
	}
	return o.Subject
}

// GateClientResult is what a gate load generator measured.
type GateClientResult struct {
	Sent    int                `json:"sent"`    // to both subjects when paired
	Replies int                `json:"replies"` // from Subject
	Elapsed time.Duration      `json:"elapsed_ns"`
	Latency map[string]float64 `json:"latency_ms"` // p50 p99 p99.9 max
	Flagged int                `json:"flagged"`    // of Replies, those that flagged the request
	// PairReplies and PairLatency: the PairSubject's (p50 p99 p99.9 max).
	PairReplies int                `json:"pair_replies,omitempty"`
	PairLatency map[string]float64 `json:"pair_latency_ms,omitempty"`
	// Events published meanwhile, and over how long.
	Ingested  int           `json:"ingested"`
	IngestFor time.Duration `json:"ingest_ns"`
}

// GateClient sends gate requests open-loop at opts.Rate on a connection of
// its own, as a middleware would, and records each one's latency from send
// to reply. Every millisecond (the timer resolution here: a 200 µs sleep
// lasts about 1.1 ms) the requests due by then are sent, each in its own
// goroutine, so none waits for an earlier reply and a stalled gate shows
// as slow replies, not as fewer requests.
func GateClient(ctx context.Context, opts GateClientOptions) (*GateClientResult, error) {
	nc, err := nats.Connect(opts.URL, nats.Name("driftwatch-bench-gate"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	// Requests about orders of the workload (their rows exist).
	reqs := make([][]byte, 0, 1000)
	for i := 0; i < 1000; i++ {
		reqs = append(reqs, gateRequest(i, opts.Orders))
	}
	lat, pairLat := &latencies{}, &latencies{}
	subject := opts.subject()
	var wg sync.WaitGroup
	var sent, flagged atomic.Int64
	ictx, stopIngest := context.WithCancel(ctx)
	defer stopIngest()
	ingest := make(chan ingested, 1)
	go func() { ingest <- ingestWorkload(ictx, opts) }()
	gctx, cancel := context.WithTimeout(ctx, opts.For)
	defer cancel()
	startAt := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for gctx.Err() == nil {
		due := int64(time.Since(startAt).Seconds() * float64(opts.Rate))
		for ; sent.Load() < due; sent.Add(1) {
			n := sent.Load()
			req := reqs[n%int64(len(reqs))]
			subj, into := subject, lat
			if opts.PairSubject != "" {
				// Each request goes to both, one after the other.
				req = reqs[(n/2)%int64(len(reqs))]
				if n%2 == 1 {
					subj, into = opts.PairSubject, pairLat
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				defer rcancel()
				t0 := time.Now()
				if m, err := nc.RequestWithContext(rctx, subj, req); err == nil {
					into.add(float64(time.Since(t0).Microseconds()) / 1000)
					if into == lat && bytes.Contains(m.Data, []byte(`"decision":"flag"`)) {
						flagged.Add(1)
					}
				}
			}()
		}
		select {
		case <-gctx.Done():
		case <-tick.C:
		}
	}
	elapsed := time.Since(startAt)
	wg.Wait()
	stopIngest()
	in := <-ingest
	if in.err != nil {
		return nil, in.err
	}
	res := &GateClientResult{Sent: int(sent.Load()), Replies: lat.count(), Elapsed: elapsed, Latency: lat.percentiles([]float64{50, 99, 99.9, 100}), Flagged: int(flagged.Load()),
		Ingested: in.events, IngestFor: in.took}
	if opts.PairSubject != "" {
		res.PairReplies, res.PairLatency = pairLat.count(), pairLat.percentiles([]float64{50, 99, 99.9, 100})
	}
	return res, nil
}

// gateRequest is the i-th of the requests the load sends: a storefront's
// "fulfilled" about one of the workload's orders, checked against the ERP.
func gateRequest(i, orders int) []byte {
	return fmt.Appendf(nil, `{"event":{"event_id":"g%d","order_id":"B-%08d","system":"shop","status":"fulfilled","status_field":"fulfillment_status","occurred_at":"%s"},"target":"erp"}`,
		i, i%max(orders, 1), time.Now().UTC().Format(time.RFC3339))
}

type ingested struct {
	events int
	took   time.Duration
	err    error
}

// ingestWorkload publishes fresh orders of the workload at opts.IngestRate
// until ctx ends, in 10 ms slices, each as driftwatch publish sends it: one
// PublishBatch call (an atomic batch when the stream syncs every write),
// waiting for its acknowledgements.
func ingestWorkload(ctx context.Context, opts GateClientOptions) ingested {
	start := time.Now()
	if opts.IngestRate <= 0 {
		return ingested{took: time.Since(start)}
	}
	nc, err := nats.Connect(opts.URL, nats.Name("driftwatch-bench-ingest"))
	if err != nil {
		return ingested{err: err}
	}
	defer nc.Close()
	var popts []events.PublisherOption
	if opts.PublishEach {
		popts = append(popts, events.WithAtomicBatches(0))
	}
	pub, err := events.NewPublisher(nc, popts...)
	if err != nil {
		return ingested{err: err}
	}
	wl := NewWorkload(2)
	wl.FaultShare = 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	per := max(opts.IngestRate/100, 1)
	n := opts.Orders + 1000000 + opts.IngestOffset
	var slice [][]byte
	total := 0
	for {
		select {
		case <-ctx.Done():
			return ingested{events: total, took: time.Since(start)}
		case <-tick.C:
		}
		slice = slice[:0]
		for len(slice) < per {
			lines, _ := wl.Order(n)
			n++
			slice = append(slice, lines...)
		}
		if _, err := pub.PublishBatch(ctx, slice); err == nil {
			total += len(slice)
		}
	}
}

// gateClientProcess runs GateClient in a child process (this executable's
// `bench --gate-client`), so the requests come from a process that is not
// itself busy with the server and the ingest, as a middleware's would. It
// sends to the gate's subject only (Subject, PairSubject and IngestOffset
// are for a client in this process).
func gateClientProcess(ctx context.Context, opts GateClientOptions) (*GateClientResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "bench", "--gate-client", opts.URL, "--orders", strconv.Itoa(opts.Orders),
		"--gate-rate", strconv.Itoa(opts.Rate), "--gate-for", opts.For.String(), "--ingest-rate", strconv.Itoa(opts.IngestRate),
		"--publish-each="+strconv.FormatBool(opts.PublishEach))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gate client process: %w: %s", err, errOut.String())
	}
	var res GateClientResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("gate client process output: %w", err)
	}
	return &res, nil
}
