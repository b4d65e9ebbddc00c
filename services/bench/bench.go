package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
	"github.com/driftwatch/driftwatch/services/rebuild"
	"github.com/driftwatch/driftwatch/services/replay"
)

// Options configures a run.
type Options struct {
	Orders       int
	SyncInterval string        // "always" (the default durability) or a duration
	GateRate     int           // gate requests per second
	GateFor      time.Duration // how long the gate is measured
	IngestRate   int           // events per second published while the gate is measured
	Skip         map[string]bool
	Log          func(format string, args ...any)
	// SLA, when set, replaces every flow's SLA (3s in the workload): a
	// longer one keeps more expectations open at once.
	SLA time.Duration
	// LargeMemory runs driftwatch with LargeMemory's settings instead of
	// the memory defaults.
	LargeMemory bool
	// GateProcess sends the gate requests, and publishes the ingest that
	// runs meanwhile, from a child process, as a middleware would, instead
	// of the bench's own.
	GateProcess bool
	// PublishEach publishes driftwatch's events one by one (asynchronously)
	// instead of in atomic batches, the default of events.Publisher.
	PublishEach bool
	// Rate, when set, paces driftwatch's publish at this many events per
	// second (a steady load instead of a burst), to measure detection
	// latency with the detector keeping up.
	Rate int
	// Phase, when set, is called with a step's name ("e2e", "gate") and
	// true as it starts and false as it ends, e.g. to profile only that step.
	Phase PhaseFunc
	// Extra steps run after the gate, each on a settled store.
	Extra []Step
	// Secure runs the embedded server with NATS authentication and TLS:
	// driftwatch's events are published over TLS by a publisher user
	// (NKey), as a middleware would; the plain-stream baselines and the
	// alerts subscription use driftwatch's own in-process identity. The
	// gate is not measured (its load generator connects anonymously).
	Secure bool
	// PerSystem reads the log with a consumer per system and the
	// detector's own, as earlier versions did, instead of
	// the one pass (app.Options.PerSystemReaders).
	PerSystem bool
}

// Step is extra work measured in a run after the gate, on the same
// running driftwatch and the same workload (Options.Extra): the test
// benchmarks compare driftwatch this way, in the same run, with pipelines
// that only exist to judge it. It records its figures in res.Baselines.
type Step func(ctx context.Context, env *Env, res *Result) error

// Env is what a Step gets: the running driftwatch, a JetStream context on
// its server, the workload's payloads and, for a stream prefix, the
// subject of each payload, the run's folder and the options.
type Env struct {
	App      *app.App
	JS       jetstream.JetStream
	Payloads [][]byte
	Subject  func(prefix string) func(int) string
	Dir      string
	Options  Options
}

// PhaseFunc is told when a step of a run starts and ends.
type PhaseFunc func(name string, start bool)

func (f PhaseFunc) call(name string, start bool) {
	if f != nil {
		f(name, start)
	}
}

// LargeMemory is a memory section for a machine with memory to spare:
// no heap limit, and Pebble and row caches twice the defaults.
var LargeMemory = config.Memory{LimitMB: 0, BlockCacheMB: 64, MemtableMB: 32, RowCache: 131072}

// Result holds the figures.
type Result struct {
	Machine      string  `json:"machine"`
	SyncInterval string  `json:"sync_interval"`
	Orders       int     `json:"orders"`
	Events       int     `json:"events"`
	RawRate      float64 `json:"raw_publish_per_sec"`
	// With sync_interval always, driftwatch publishes in atomic batches:
	// the plain stream's rate with the same batches, and the ratio to it.
	RawAtomicRate float64 `json:"raw_atomic_publish_per_sec,omitempty"`
	// RawMsgIDRate (throughput setting only): the plain stream fed the
	// same payloads, each with its Nats-Msg-Id, as the events stream is,
	// and RatioMsgID the end-to-end rate over it.
	RawMsgIDRate        float64            `json:"raw_msgid_publish_per_sec,omitempty"`
	RatioMsgID          float64            `json:"end_to_end_over_raw_msgid,omitempty"`
	RatioAtomic         float64            `json:"end_to_end_over_raw_atomic,omitempty"`
	PublishRate         float64            `json:"publish_per_sec"`
	EndToEndRate        float64            `json:"end_to_end_per_sec"`
	Ratio               float64            `json:"end_to_end_over_raw"`
	DetectLatency       map[string]float64 `json:"detect_latency_ms"` // p50 p90 p99 max
	MaxOpenExpectations int                `json:"max_open_expectations"`
	Alerts              int                `json:"alerts"`
	GateLatency         map[string]float64 `json:"gate_latency_ms"` // p50 p99 p999 max
	// While the gate was measured: how long runnable goroutines waited for
	// a CPU, and the collector's stop-the-world pauses (runtime/metrics),
	// p99 in ms: the part of the gate's tail that is the machine's.
	SchedLatencyP99 float64 `json:"sched_latency_p99_ms"`
	GCPauseP99      float64 `json:"gc_pause_p99_ms"`
	GCCycles        uint64  `json:"gc_cycles_during_gate"`
	GateRequests    int     `json:"gate_requests"`
	GateFlagged     int     `json:"gate_flagged"` // of them, answered flag (each recorded and published)
	// GateClientProcess: the requests came from a separate process, as a
	// middleware's would (else from the bench's own process).
	GateClientProcess bool    `json:"gate_client_process"`
	GateRate          float64 `json:"gate_rate_per_sec"`
	IngestDuringGate  float64 `json:"ingest_during_gate_per_sec"`
	SweepSeconds      float64 `json:"reconcile_sweep_seconds"`
	SweepOrders       int     `json:"reconcile_orders"`
	ReplayRate        float64 `json:"replay_per_sec"`
	RebuildRate       float64 `json:"rebuild_per_sec"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
	// Secure: the run had NATS authentication and TLS on (Options.Secure).
	Secure bool `json:"secure,omitempty"`
	// Baselines are the figures of the run's extra steps, by name.
	Baselines map[string]float64 `json:"baselines,omitempty"`
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// Run runs the benchmark on an embedded driftwatch in a temporary folder.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.SyncInterval == "" {
		o.SyncInterval = "always"
	}
	res := &Result{Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()), SyncInterval: o.SyncInterval, Orders: o.Orders}
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(Config, o.SyncInterval)))
	if err != nil {
		return nil, err
	}
	if o.LargeMemory {
		cfg.Memory = LargeMemory
	}
	if o.SLA > 0 {
		for i := range cfg.Flows {
			cfg.Flows[i].SLA = config.Duration(o.SLA)
		}
	}
	dir, err := os.MkdirTemp("", "driftwatch-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logger := zerolog.Nop()
	if os.Getenv("DRIFTWATCH_BENCH_DEBUG") != "" {
		logger = zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	}
	var pubOpts []nats.Option
	if o.Secure {
		if pubOpts, err = secureSetup(cfg, dir); err != nil {
			return nil, err
		}
		if o.Skip == nil {
			o.Skip = map[string]bool{}
		}
		o.Skip["gate"] = true
		res.Secure = true
	}
	a, err := app.New(app.Options{Config: cfg, DataDir: dir, NATSListen: "127.0.0.1:-1", HTTPAddr: "", Logger: logger,
		Services: []string{app.ServiceProjector, app.ServiceDetector, app.ServiceGate, app.ServiceReconcile}, PerSystemReaders: o.PerSystem})
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Stop(stop)
	}()
	// nc creates the baselines' streams and subscribes to the alerts;
	// pubNC publishes driftwatch's events (the same connection unless
	// Secure).
	var nc, pubNC *nats.Conn
	if o.Secure {
		if nc, err = a.Broker.Connect("driftwatch-bench"); err != nil {
			return nil, err
		}
		if pubNC, err = nats.Connect(a.Broker.ClientURL, append(pubOpts, nats.Name("driftwatch-bench-publisher"))...); err != nil {
			nc.Close()
			return nil, err
		}
		defer pubNC.Close()
	} else {
		if nc, err = nats.Connect(a.Broker.ClientURL, nats.Name("driftwatch-bench")); err != nil {
			return nil, err
		}
		pubNC = nc
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))

	// The workload, generated once so both runs publish the same bytes.
	payloads, subjects := NewWorkload(1).Payloads(o.Orders)
	res.Events = len(payloads)
	o.logf("workload: %d orders, %d events (%s)", o.Orders, len(payloads), o.SyncInterval)

	// 1. Raw JetStream: the same payloads to a plain stream, same storage.
	onSubject := func(prefix string) func(int) string {
		return func(i int) string { return prefix + strings.TrimPrefix(subjects[i], "driftwatch.in.") }
	}
	if res.RawRate, err = timePlainStream(ctx, js, "BENCH_RAW", false, len(payloads), func(prefix string) error {
		return publishAll(ctx, js, payloads, onSubject(prefix), false)
	}); err != nil {
		return nil, err
	}
	o.logf("raw JetStream publish: %.0f msgs/s", res.RawRate)
	if !cfg.SyncAlways() {
		// The same, each message carrying its Nats-Msg-Id as driftwatch's
		// events do: what JetStream's deduplication alone costs.
		if res.RawMsgIDRate, err = timePlainStream(ctx, js, "BENCH_RAW_IDS", false, len(payloads), func(prefix string) error {
			return publishAll(ctx, js, payloads, onSubject(prefix), true)
		}); err != nil {
			return nil, err
		}
		o.logf("raw JetStream publish with message ids: %.0f msgs/s", res.RawMsgIDRate)
	}
	if cfg.SyncAlways() && !o.PublishEach {
		// driftwatch publishes in atomic batches here: measure the plain
		// stream that way too.
		if res.RawAtomicRate, err = timePlainStream(ctx, js, "BENCH_RAW_ATOMIC", true, len(payloads), func(prefix string) error {
			return publishAtomicBatches(ctx, nc, payloads, onSubject(prefix))
		}); err != nil {
			return nil, err
		}
		o.logf("raw JetStream atomic batches of %d: %.0f msgs/s", events.DefaultAtomicBatch, res.RawAtomicRate)
	}

	// 2. driftwatch: publish, then wait until every consumer applied all.
	alerts := &latencies{}
	sub, err := nc.Subscribe("driftwatch.alerts.*.*", func(m *nats.Msg) { alerts.addAlert(m, cfg.Detect.Settle.D()) })
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	var maxOpen atomic.Int64
	sampleDone := make(chan struct{})
	go func() {
		for {
			if n, err := a.Detector.OpenExpectations(); err == nil && int64(n) > maxOpen.Load() {
				maxOpen.Store(int64(n))
			}
			select {
			case <-sampleDone:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	o.Phase.call("e2e", true)
	var popts []events.PublisherOption
	if o.PublishEach {
		popts = append(popts, events.WithAtomicBatches(0))
	}
	pub, err := events.NewPublisher(pubNC, popts...)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if o.Rate > 0 {
		if err := publishPaced(ctx, pub, payloads, o.Rate); err != nil {
			return nil, err
		}
	} else if err := publishEvents(ctx, pub, payloads); err != nil {
		return nil, err
	}
	pubDone := time.Since(start)
	res.PublishRate = float64(len(payloads)) / pubDone.Seconds()
	if err := waitApplied(ctx, a); err != nil {
		return nil, err
	}
	e2e := time.Since(start)
	o.Phase.call("e2e", false)
	if os.Getenv("DRIFTWATCH_BENCH_DEBUG") != "" {
		fmt.Fprintln(os.Stderr, a.Store.Metrics().String())
	}
	res.EndToEndRate = float64(len(payloads)) / e2e.Seconds()
	res.Ratio = res.EndToEndRate / res.RawRate
	if res.RawAtomicRate > 0 {
		res.RatioAtomic = res.EndToEndRate / res.RawAtomicRate
	}
	if res.RawMsgIDRate > 0 {
		res.RatioMsgID = res.EndToEndRate / res.RawMsgIDRate
	}
	o.logf("driftwatch: publish %.0f/s, end to end %.0f/s (%.2fx raw)", res.PublishRate, res.EndToEndRate, res.Ratio)

	// 3. Detection latency: wait for the faults' alerts.
	time.Sleep(cfg.Flows[0].SLA.D() + 2*time.Second)
	res.DetectLatency, res.Alerts = alerts.percentiles([]float64{50, 90, 99, 100}), alerts.count()
	close(sampleDone)
	res.MaxOpenExpectations = int(maxOpen.Load())
	o.logf("detection: %d alerts, latency after judgement p50 %.1fms p99 %.1fms, up to %d open expectations", res.Alerts, res.DetectLatency["p50"], res.DetectLatency["p99"], res.MaxOpenExpectations)

	// 4. Gate at a fixed rate while ingesting.
	if !o.Skip["gate"] {
		// The gate starts on a settled store, so it is not timed beside
		// the burst's compactions.
		settle(a.Store)
		o.Phase.call("gate", true)
		err := gateBench(ctx, o, a, res)
		o.Phase.call("gate", false)
		if err != nil {
			return nil, err
		}
		o.logf("gate: %d requests at %.0f/s while ingesting %.0f/s: p50 %.3fms p99 %.3fms p999 %.3fms (scheduler latency p99 %.3fms, GC pause p99 %.3fms, %d GC cycles)", res.GateRequests, res.GateRate, res.IngestDuringGate, res.GateLatency["p50"], res.GateLatency["p99"], res.GateLatency["p99.9"], res.SchedLatencyP99, res.GCPauseP99, res.GCCycles)
		if err := waitApplied(ctx, a); err != nil {
			return nil, err
		}
	}
	for _, step := range o.Extra {
		env := &Env{App: a, JS: js, Payloads: payloads, Subject: onSubject, Dir: dir, Options: o}
		settle(a.Store)
		if err := step(ctx, env, res); err != nil {
			return nil, err
		}
		if err := waitApplied(ctx, a); err != nil {
			return nil, err
		}
	}

	// 5. Reconciliation sweep over every order.
	t0 := time.Now()
	rep, err := a.Reconcile.Run(ctx)
	if err != nil {
		return nil, err
	}
	res.SweepSeconds, res.SweepOrders = time.Since(t0).Seconds(), rep.Orders
	o.logf("reconcile: %d orders in %.2fs", rep.Orders, res.SweepSeconds)

	// 6. Replay (dry-run detection over the whole log) and rebuild.
	if !o.Skip["replay"] {
		t0 = time.Now()
		wr, err := replay.Window(ctx, replay.WindowOptions{JS: js, Config: cfg, FromSeq: 1, Until: time.Now()})
		if err != nil {
			return nil, err
		}
		res.ReplayRate = float64(wr.Events) / time.Since(t0).Seconds()
		o.logf("replay: %.0f events/s", res.ReplayRate)
	}
	st, err := rebuild.Build(ctx, rebuild.Options{JS: js, Applier: projector.NewApplier(cfg), Dir: filepath.Join(dir, "rebuilt")})
	if err != nil {
		return nil, err
	}
	res.RebuildRate = st.EventsPerSec
	o.logf("rebuild: %d events at %.0f/s", st.Events, st.EventsPerSec)
	res.PeakRSSMiB = peakRSS()
	return res, nil
}

func systemOf(line []byte) string {
	s := string(line)
	i := strings.Index(s, `"system":"`)
	if i < 0 {
		return "unknown"
	}
	s = s[i+10:]
	return s[:strings.IndexByte(s, '"')]
}

// publishAll publishes payloads asynchronously with a bounded window,
// waiting for every acknowledgement. With msgID, Nats-Msg-Id is set as the
// events Publisher does.
func publishAll(ctx context.Context, js jetstream.JetStream, payloads [][]byte, subject func(int) string, msgID bool) error {
	const window = 4096
	futs := make([]jetstream.PubAckFuture, 0, window)
	drain := func() error {
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futs = futs[:0]
		return nil
	}
	for i, p := range payloads {
		m := nats.NewMsg(subject(i))
		m.Data = p
		if msgID {
			m.Header.Set(events.HeaderMsgID, idOf(p))
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futs = append(futs, f)
		if len(futs) == window {
			if err := drain(); err != nil {
				return err
			}
		}
	}
	return drain()
}

// publishEvents publishes payloads the way driftwatch publish and POST
// /v1/events do: through events.Publisher.PublishBatch, in calls of up to
// 8192 events.
func publishEvents(ctx context.Context, pub *events.Publisher, payloads [][]byte) error {
	for start := 0; start < len(payloads); start += 8192 {
		results, err := pub.PublishBatch(ctx, payloads[start:min(start+8192, len(payloads))])
		if err != nil {
			return err
		}
		for _, r := range results {
			if r.Outcome == events.Rejected || r.Outcome == "" {
				return fmt.Errorf("bench: event %s of %s not stored: %s", r.EventID, r.System, r.Error)
			}
		}
	}
	return nil
}

// publishAtomicBatches publishes payloads as JetStream atomic batches of
// events.DefaultAtomicBatch (the protocol events.Publisher speaks, without
// its validation, message ids or fallbacks: a plain stream's best case),
// eight batches in flight, and fails on any refused batch.
func publishAtomicBatches(ctx context.Context, nc *nats.Conn, payloads [][]byte, subject func(int) string) error {
	replies := make(chan *nats.Msg, 8)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	inFlight := 0
	await := func() error {
		select {
		case m := <-replies:
			inFlight--
			if bytes.Contains(m.Data, []byte(`"error"`)) || len(m.Data) == 0 {
				return fmt.Errorf("bench: atomic batch refused: %s", m.Data)
			}
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("bench: no answer to an atomic batch")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for start := 0; start < len(payloads); start += events.DefaultAtomicBatch {
		end := min(start+events.DefaultAtomicBatch, len(payloads))
		id := nats.NewInbox()[len(nats.InboxPrefix):]
		for i := start; i < end; i++ {
			m := nats.NewMsg(subject(i))
			m.Data = payloads[i]
			m.Header.Set(events.HeaderBatchID, id)
			m.Header.Set(events.HeaderBatchSeq, strconv.Itoa(i-start+1))
			if i == end-1 {
				m.Header.Set(events.HeaderBatchCommit, "1")
				m.Reply = inbox
			}
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
		}
		if inFlight++; inFlight == 8 {
			if err := await(); err != nil {
				return err
			}
		}
	}
	for inFlight > 0 {
		if err := await(); err != nil {
			return err
		}
	}
	return nil
}

// publishPaced publishes at rate events per second, in 10ms slices.
func publishPaced(ctx context.Context, pub *events.Publisher, payloads [][]byte, rate int) error {
	per := max(rate/100, 1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(payloads); i += per {
		end := min(i+per, len(payloads))
		if err := publishEvents(ctx, pub, payloads[i:end]); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func idOf(line []byte) string {
	s := string(line)
	i := strings.Index(s, `"event_id":"`)
	s = s[i+12:]
	return systemOf(line) + ":" + s[:strings.IndexByte(s, '"')]
}

// waitApplied polls until the projectors and the detector have applied the
// whole stream.
func waitApplied(ctx context.Context, a *app.App) error {
	lastLog := time.Now()
	for {
		st, err := a.Status(ctx)
		if err != nil {
			return err
		}
		done := true
		for _, c := range st.Consumers {
			if c.Pending > 0 {
				done = false
			}
		}
		if done && a.Detector.Applied() >= st.Stream.LastSeq {
			return nil
		}
		// An instance of a cluster is delivered its own partitions'
		// events alone: the log's last may be another's.
		if done && a.Owned != nil {
			if caught, err := a.Projector.CaughtUp(ctx); err == nil && caught {
				return nil
			}
		}
		if os.Getenv("DRIFTWATCH_BENCH_DEBUG") != "" && time.Since(lastLog) > time.Second {
			lastLog = time.Now()
			for _, c := range st.Consumers {
				fmt.Fprintf(os.Stderr, "  %s applied %d pending %d\n", c.Name, c.AppliedSeq, c.Pending)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// latencies collects alert latencies after their judgement time.
type latencies struct {
	mu      sync.Mutex
	samples []float64
}

func (l *latencies) addAlert(m *nats.Msg, settle time.Duration) {
	now := time.Now()
	var a detector.Alert
	if json.Unmarshal(m.Data, &a) != nil || a.State != detector.StateOpen || a.DetectedBy != detector.BySLA {
		return
	}
	deadline, err1 := time.Parse(time.RFC3339Nano, a.Deadline)
	recv, err2 := time.Parse(time.RFC3339Nano, a.Source.ReceivedAt)
	if err1 != nil || err2 != nil {
		return
	}
	judge := deadline
	if r := recv.Add(settle); r.After(judge) {
		judge = r
	}
	l.mu.Lock()
	l.samples = append(l.samples, float64(now.Sub(judge).Microseconds())/1000)
	l.mu.Unlock()
}

func (l *latencies) add(ms float64) {
	l.mu.Lock()
	l.samples = append(l.samples, ms)
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

func (l *latencies) percentiles(ps []float64) map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]float64{}
	if len(l.samples) == 0 {
		return out
	}
	s := append([]float64(nil), l.samples...)
	sort.Float64s(s)
	for _, p := range ps {
		idx := int(float64(len(s))*p/100+0.999999) - 1
		idx = min(max(idx, 0), len(s)-1)
		name := "p" + strconv.FormatFloat(p, 'f', -1, 64)
		if p == 100 {
			name = "max"
		}
		out[name] = round(s[idx])
	}
	return out
}

func round(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

// gateBench sends gate requests open-loop at a fixed rate while publishing
// events at IngestRate, and records each request's latency from send to
// reply. The sender never waits for a reply, so a stalled gate shows as
// slow replies, not as fewer requests.
func gateBench(ctx context.Context, o Options, a *app.App, res *Result) error {
	before := readRuntime()
	copts := GateClientOptions{URL: a.Broker.ClientURL, Orders: o.Orders, Rate: o.GateRate, For: o.GateFor, IngestRate: o.IngestRate, PublishEach: o.PublishEach}
	gr, err := sendGateLoad(ctx, o, copts)
	if err != nil {
		return err
	}
	elapsed := gr.Elapsed
	res.GateLatency = gr.Latency
	after := readRuntime()
	res.SchedLatencyP99 = histP99Delta(before.sched, after.sched) * 1000
	res.GCPauseP99 = histP99Delta(before.pauses, after.pauses) * 1000
	res.GCCycles = after.cycles - before.cycles
	res.GateRequests = gr.Replies
	res.GateFlagged = gr.Flagged
	res.GateRate = float64(gr.Sent) / elapsed.Seconds()
	res.IngestDuringGate = float64(gr.Ingested) / gr.IngestFor.Seconds()
	res.GateClientProcess = o.GateProcess
	return nil
}

// plainStream creates a plain stream named name with the events stream's
// storage and deduplication window, on the subjects under the prefix it
// returns (the name in lower case, then a dot), and drop, which deletes it.
func plainStream(ctx context.Context, js jetstream.JetStream, name string, atomicBatches bool) (st jetstream.Stream, prefix string, drop func(), err error) {
	prefix = strings.ToLower(name) + "."
	st, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ">"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Hour, AllowAtomicPublish: atomicBatches})
	if err != nil {
		return nil, "", nil, err
	}
	return st, prefix, func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }, nil
}

// timePlainStream times publish (n messages on subjects that start with the
// prefix it is given) into a plainStream, deletes it, and returns the rate
// in messages per second.
func timePlainStream(ctx context.Context, js jetstream.JetStream, name string, atomicBatches bool, n int, publish func(prefix string) error) (float64, error) {
	_, prefix, drop, err := plainStream(ctx, js, name, atomicBatches)
	if err != nil {
		return 0, err
	}
	defer drop()
	start := time.Now()
	if err := publish(prefix); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// sendGateLoad runs the gate load generator from this process, or from a
// child process with --gate-process.
func sendGateLoad(ctx context.Context, o Options, copts GateClientOptions) (*GateClientResult, error) {
	if o.GateProcess {
		return gateClientProcess(ctx, copts)
	}
	return GateClient(ctx, copts)
}

// peakRSS is the process's peak resident memory in MiB (Linux VmHWM).
func peakRSS() float64 { return procStatusMiB("VmHWM:") }

// procStatusMiB reads a memory line of /proc/self/status ("VmRSS:",
// "VmHWM:") in MiB; 0 where there is none.
func procStatusMiB(field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return round(kb / 1024)
		}
	}
	return 0
}

// runtimeSample is a copy of the scheduler latency and GC pause
// histograms and the GC cycle count.
type runtimeSample struct {
	sched, pauses *metrics.Float64Histogram
	cycles        uint64
}

func readRuntime() runtimeSample {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/pauses/total/gc:seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	clone := func(h *metrics.Float64Histogram) *metrics.Float64Histogram {
		return &metrics.Float64Histogram{Counts: append([]uint64(nil), h.Counts...), Buckets: h.Buckets}
	}
	return runtimeSample{clone(s[0].Value.Float64Histogram()), clone(s[1].Value.Float64Histogram()), s[2].Value.Uint64()}
}

// histP99Delta is the 99th percentile (upper bucket bound, in seconds) of
// what was added to a cumulative histogram between two reads.
func histP99Delta(a, b *metrics.Float64Histogram) float64 {
	var total uint64
	d := make([]uint64, len(b.Counts))
	for i := range b.Counts {
		d[i] = b.Counts[i] - a.Counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0
	}
	need := (total*99 + 99) / 100
	var run uint64
	for i, c := range d {
		run += c
		if run >= need {
			return b.Buckets[i+1]
		}
	}
	return b.Buckets[len(b.Buckets)-1]
}
