// Package app wires driftwatch's services into one process: the log
// (embedded or external NATS), the Pebble store, the consumers and the HTTP
// API. `driftwatch serve` runs an App; tests run one in-process on random
// ports.
//
//	middleware ──NATS──▶ driftwatch.in.<system> ─┐
//	POST /v1/events ──▶ ingest ──────────────────┤
//	                                             ▼
//	                       DRIFTWATCH_EVENTS (JetStream file store)
//	                          │                         │
//	                projector (durable consumer    detector (durable)
//	                per system)                         │
//	                          ▼                         ▼
//	                Pebble store under --data      DRIFTWATCH_ALERTS
//	                          │
//	                api: HTTP, /metrics, dashboard
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/cluster"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/gate"
	"github.com/driftwatch/driftwatch/services/ingest"
	"github.com/driftwatch/driftwatch/services/notify"
	"github.com/driftwatch/driftwatch/services/partition"
	"github.com/driftwatch/driftwatch/services/policy"
	"github.com/driftwatch/driftwatch/services/projector"
	"github.com/driftwatch/driftwatch/services/reconcile"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// Service names accepted by Options.Services.
const (
	ServiceIngest    = "ingest"
	ServiceProjector = "projector"
	ServiceDetector  = "detector"
	ServiceGate      = "gate"
	ServiceReconcile = "reconcile"
	ServicePolicy    = "policy"
	ServiceAPI       = "api"
)

// AllServices lists every service `serve` runs by default.
var AllServices = []string{ServiceIngest, ServiceProjector, ServiceDetector, ServiceGate, ServiceReconcile, ServicePolicy, ServiceAPI}

// StoreOptions are the store's memory settings from the configuration.
func StoreOptions(cfg *config.Config) projections.Options {
	return projections.Options{
		CacheSize:    int64(cfg.Memory.BlockCacheMB) << 20,
		MemTableSize: uint64(cfg.Memory.MemtableMB) << 20,
		RowCache:     cfg.Memory.RowCache,
	}
}

// ApplyMemoryLimit sets the Go heap's soft limit from the configuration,
// unless the GOMEMLIMIT variable is set or the limit is 0.
func ApplyMemoryLimit(cfg *config.Config) {
	if os.Getenv("GOMEMLIMIT") == "" && cfg.Memory.LimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.Memory.LimitMB) << 20)
	}
}

// StoreDir is the Pebble store's folder inside the data folder.
const StoreDir = "projections"

// Options configures an App.
type Options struct {
	Config     *config.Config
	DataDir    string
	NATSListen string // embedded server's client address
	NATSURL    string // existing NATS; empty embeds one
	// Insecure lets a listener bind beyond loopback without its
	// authentication configured (checkExposure); every start warns.
	Insecure bool
	// NATSClient authenticates driftwatch to NATSURL (or to the embedded
	// server when nats.config_file decides who driftwatch is).
	NATSClient broker.ClientOptions
	HTTPAddr   string // "" disables HTTP
	Services   []string
	Logger     zerolog.Logger
	// PerSystemReaders runs the projector's consumers, one per system,
	// and the detector's own, as earlier versions did, instead of the one
	// pass (the load tool compares the two shapes).
	PerSystemReaders bool
}

// retireOtherShape deletes the durable consumers of the shape this
// process does not run, left by an earlier start in the other shape: the
// one pass replaces the per-system consumers and the detector's own, and
// they replace it. Their checkpoints stay in the store, where the shape
// that runs now reads them; a consumer nobody reads would only hold the
// server's memory. (A process that runs the projector without the
// detector removes only the pass's.)
func (a *App) retireOtherShape(ctx context.Context, js jetstream.JetStream, onePass bool, systems []string) error {
	var names []string
	if onePass {
		for _, sys := range systems {
			names = append(names, projector.ConsumerPrefix+sys)
		}
		names = append(names, detector.ConsumerName)
	} else {
		names = append(names, projector.PassConsumer)
	}
	stream, err := broker.OpenStream(ctx, js, events.EventsStream)
	if err != nil {
		return err
	}
	for _, name := range names {
		name = consume.InstanceName(name, a.cfg.Cluster.Instance)
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("remove consumer %s of the other shape: %w", name, err)
		}
	}
	return nil
}

// passOf is the app's one pass, as the detector's status sees it (the
// projector exists once the detector starts).
type passOf struct{ a *App }

func (p passOf) Pending(ctx context.Context) uint64 { return p.a.Projector.Pending(ctx) }

func (p passOf) CaughtUp(ctx context.Context) (bool, error) { return p.a.Projector.CaughtUp(ctx) }

// App is a running driftwatch.
type App struct {
	opts      Options
	cfg       *config.Config
	log       zerolog.Logger
	Broker    *broker.Broker
	HTTP      *api.Server
	Store     *projections.Store
	Applier   *projections.Applier
	Projector *projector.Projector
	Engine    *detector.Engine
	Detector  *detector.Detector
	Metrics   *telemetry.Metrics
	Tracing   *telemetry.Tracing
	Gate      *gate.Gate
	Reconcile *reconcile.Reconciler
	Policy    *policy.Policy
	Notifier  *notify.Notifier
	// Cluster is this instance's membership when it shares the orders
	// with others (cluster.instance); nil otherwise.
	Cluster *cluster.Member
	// Owned is the partitions this instance owns (nil: every order).
	Owned *partition.Set

	gateConn *nats.Conn
	// detectorRef lets the projector (started first) hand its outcomes to
	// the detector once it runs.
	detectorRef atomic.Pointer[detector.Detector]
	// runs are the services' Run methods, in the order they were started;
	// Start runs them in one group that the app owns (see runServices).
	runs []namedRun
	// stopServices ends the group's context; servicesDone is closed when
	// every service has returned.
	stopServices context.CancelFunc
	servicesDone chan struct{}
	// fatal carries the first failure a service cannot recover from (a
	// projector consumer that stopped, events missing from the log).
	fatal chan error
}

// namedRun is one service's Run, named for its errors.
type namedRun struct {
	name string
	run  func(ctx context.Context) error
}

// run adds a service's Run to the group Start runs.
func (a *App) run(name string, fn func(ctx context.Context) error) {
	a.runs = append(a.runs, namedRun{name, fn})
}

// Fatal delivers the first failure a service cannot recover from; /readyz
// says it from then on. Run stops the app and returns it (serve exits 1
// with it, for a supervisor to restart on the same checks).
func (a *App) Fatal() <-chan error { return a.fatal }

// runServices runs every service's Run in one group until Stop: the app
// owns every service's goroutines. A service that cannot go on (its Run
// returns an error) stops the others; /readyz then says why, and Fatal
// delivers the error (Run stops the app with it, serve exits 1 with it).
// The HTTP server stays up until Stop, so that the reason can be read.
func (a *App) runServices() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopServices, a.servicesDone = cancel, make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range a.runs {
		g.Go(func() error {
			if err := r.run(gctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			return nil
		})
	}
	go func() {
		defer close(a.servicesDone)
		err := g.Wait()
		if err == nil || ctx.Err() != nil {
			return
		}
		a.log.Error().Err(err).Msg("driftwatch cannot go on")
		if a.HTTP != nil {
			a.HTTP.SetNotReady("driftwatch cannot go on: " + err.Error())
		}
		a.fatal <- err
	}()
}

// New validates the options.
func New(opts Options) (*App, error) {
	if opts.Config == nil {
		return nil, errors.New("app: a configuration is required")
	}
	if opts.DataDir == "" {
		opts.DataDir = "data"
	}
	if len(opts.Services) == 0 {
		opts.Services = AllServices
	}
	for _, s := range opts.Services {
		if !slices.Contains(AllServices, s) {
			return nil, fmt.Errorf("--services: %q is not a service (known: %v)", s, AllServices)
		}
	}
	if (slices.Contains(opts.Services, ServiceReconcile) || slices.Contains(opts.Services, ServicePolicy)) && !slices.Contains(opts.Services, ServiceDetector) {
		opts.Services = append(opts.Services, ServiceDetector) // they change mismatches through it
	}
	if (slices.Contains(opts.Services, ServiceDetector) || slices.Contains(opts.Services, ServiceGate)) && !slices.Contains(opts.Services, ServiceProjector) {
		// The detector reads the projections this process's projector
		// writes (one Pebble store per process).
		opts.Services = append(opts.Services, ServiceProjector)
	}
	return &App{opts: opts, cfg: opts.Config, log: opts.Logger, fatal: make(chan error, 1)}, nil
}

func (a *App) serves(service string) bool { return slices.Contains(a.opts.Services, service) }

// Start starts the log, the store and the services. On error everything
// started so far is stopped.
func (a *App) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Stop(stopCtx)
		}
	}()
	warnings, err := checkExposure(a.cfg, a.opts)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		a.log.Warn().Msg(w)
	}
	if err := os.MkdirAll(a.opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	// A folder made by an earlier version loses its group and other
	// permissions; the owner's are left as they are, so a folder made
	// read-only stays so, and is reported below.
	st, err := os.Stat(a.opts.DataDir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(a.opts.DataDir, perm&0o700); err != nil {
			return fmt.Errorf("data folder: %w", err)
		}
	}
	// The log and the store fail late and vaguely in a folder they cannot
	// write (read-only, or a full disk): it is checked first.
	if err := broker.CheckWritable(a.opts.DataDir); err != nil {
		return err
	}
	m, err := telemetry.New()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	a.Metrics = m
	if a.Tracing, err = telemetry.NewTracing(ctx); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	b, err := broker.Start(broker.Options{
		URL:          a.opts.NATSURL,
		DataDir:      a.opts.DataDir,
		Listen:       a.opts.NATSListen,
		SyncAlways:   a.cfg.SyncAlways(),
		SyncInterval: a.cfg.SyncInterval(),
		Logger:       a.log,
		Auth:         NATSAuth(a.cfg),
		Client:       a.opts.NATSClient,
	})
	if err != nil {
		return err
	}
	a.Broker = b
	partitions := 0 // the order token of a subject is dropped
	if a.cfg.Clustered() {
		partitions = a.cfg.Cluster.Partitions
		if err := cluster.CheckCount(ctx, b.JS, partitions); err != nil {
			return err
		}
	}
	if err := broker.EnsureStreams(ctx, b.JS, broker.StreamSettings{
		Partitions:       partitions,
		DedupeWindow:     a.cfg.Ingest.DedupeWindow.D(),
		MaxAge:           a.cfg.Ingest.MaxAge.D(),
		Replicas:         a.cfg.Ingest.Replicas,
		PlacementCluster: a.cfg.Ingest.Placement.Cluster,
		PlacementTags:    a.cfg.Ingest.Placement.Tags,
		AtomicBatches:    a.cfg.SyncAlways(),
	}); err != nil {
		return err
	}
	if a.serves(ServiceProjector) || a.serves(ServiceAPI) {
		store, err := projections.Open(filepath.Join(a.opts.DataDir, StoreDir), StoreOptions(a.cfg))
		if err != nil {
			return err
		}
		a.Store = store
		a.Applier = projector.NewApplier(a.cfg)
	}
	meter := a.Metrics.Meter()
	a.Notifier = notify.New(a.cfg.Alerts.Webhooks, a.log.With().Str("component", "notify").Logger())
	a.run("notify", a.Notifier.Run)
	instance := a.cfg.Cluster.Instance
	if a.cfg.Clustered() {
		if !a.serves(ServiceProjector) || !a.serves(ServiceDetector) {
			return fmt.Errorf("cluster.instance %q: an instance of a cluster runs the projector and the detector (--services)", instance)
		}
		a.Owned = partition.NewSet(a.cfg.Cluster.Partitions)
	}
	if a.serves(ServicePolicy) {
		var judgesSources func() bool
		var observe func(context.Context) (map[string]policy.Observed, error)
		if a.Owned != nil {
			judgesSources = func() bool { return a.Owned.OwnsPartition(0) }
			observe = observeSources(b.JS, a.cfg.Known)
		}
		p, err := policy.New(policy.Options{Config: a.cfg, Store: a.Store, JS: b.JS, Notifier: a.Notifier,
			Instance: instance, JudgesSources: judgesSources, Observe: observe,
			Logger: a.log.With().Str("component", "policy").Logger()})
		if err != nil {
			return err
		}
		a.Policy = p
	}
	systems := make([]string, len(a.cfg.Systems))
	for i, s := range a.cfg.Systems {
		systems[i] = s.ID
	}
	// In one process the projector and the detector are one pass over
	// the log: one consumer delivers each event once, and each batch is
	// projected and judged in one transaction.
	onePass := a.serves(ServiceProjector) && a.serves(ServiceDetector) && !a.opts.PerSystemReaders
	if a.serves(ServiceDetector) {
		eng, err := detector.NewEngine(a.cfg, a.Store)
		if err != nil {
			return err
		}
		a.Engine = eng
		eng.SetOwned(a.Owned)
		eng.SetMirror(a.cfg.Clustered())
		metrics, err := detector.NewMetrics(meter)
		if err != nil {
			return err
		}
		var pass detector.Pass
		if onePass {
			pass = passOf{a}
		}
		det, err := detector.New(detector.Options{
			JS: b.JS, Store: a.Store, Engine: eng, Metrics: metrics, Pass: pass,
			Applied: func(system string) uint64 { return a.Projector.AppliedOf(system) },
			Logger:  a.log.With().Str("component", "detector").Logger(),
			Tracing: a.Tracing, Instance: instance, Owned: a.Owned,
			OnPublished: func(e detector.OutboxEntry) {
				if a.Cluster != nil {
					a.Cluster.Mirror(e)
				}
				if _, sev, state, ok := detector.AlertLabels(e); ok {
					a.Notifier.Notify(notify.Notification{Kind: sev, State: state, JSON: e.Data, Text: detector.AlertText(e)})
				}
			},
		})
		if err != nil {
			return err
		}
		a.Detector = det
		a.detectorRef.Store(a.Detector)
		// Started (its checkpoint read) before the projector, which
		// starts the one pass after it; run after.
		if err := a.Detector.Start(ctx); err != nil {
			return err
		}
	}
	if a.serves(ServiceProjector) {
		counted, err := telemetry.NewEventCounter(meter, "projector", systems, projectorOutcomes)
		if err != nil {
			return err
		}
		var judge projector.Judge
		if onePass {
			judge = a.Detector
		}
		proj, err := projector.New(projector.Options{
			JS: b.JS, Store: a.Store, Applier: a.Applier, Systems: systems, Judge: judge,
			Logger:  a.log.With().Str("component", "projector").Logger(),
			Tracing: a.Tracing, Counted: counted, Instance: instance, Owned: a.Owned,
			OnBatch: func(system string, outcomes []projections.Outcome) {
				if a.Policy != nil && a.Owned == nil { // an instance of a cluster observes the log (observeSources)
					a.Policy.Arrived(system, arrivals(outcomes), time.Now())
				}
				if d := a.detectorRef.Load(); d != nil && !onePass {
					d.Hint(outcomes)
				}
			},
		})
		if err != nil {
			return err
		}
		a.Projector = proj
		if err := a.Projector.Start(ctx); err != nil {
			return err
		}
		if err := a.retireOtherShape(ctx, b.JS, onePass, systems); err != nil {
			return err
		}
		a.run("projector", a.Projector.Run)
	}
	if a.Detector != nil {
		a.run("detector", a.Detector.Run)
	}
	if a.cfg.Clustered() {
		var placement *jetstream.Placement
		if p := a.cfg.Ingest.Placement; p.Cluster != "" || len(p.Tags) > 0 {
			placement = &jetstream.Placement{Cluster: p.Cluster, Tags: p.Tags}
		}
		m, err := cluster.New(cluster.Options{
			JS: b.JS, Instance: instance, Partitions: a.cfg.Cluster.Partitions, Lease: a.cfg.Cluster.Lease.D(),
			Replicas: a.cfg.Ingest.Replicas, Placement: placement, Owned: a.Owned,
			Store: a.Store, Applier: a.Applier, Projector: a.Projector, Detector: a.Detector, Systems: systems,
			Logger: a.log.With().Str("component", "cluster").Logger(), HTTP: a.opts.HTTPAddr,
		})
		if err != nil {
			return err
		}
		if a.Engine != nil {
			// Before the catch-up, which may see findings about a system.
			a.Engine.SetSystemClaim(m.ClaimSystemFinding)
		}
		if err := m.Start(ctx); err != nil {
			return err
		}
		a.Cluster = m
		a.run("cluster", m.Run)
	}
	if a.serves(ServiceReconcile) {
		metrics, err := reconcile.NewMetrics(meter)
		if err != nil {
			return err
		}
		a.Reconcile = reconcile.New(reconcile.Options{Store: a.Store, Detector: a.Detector, JS: b.JS, Every: a.cfg.Reconcile.Every.D(),
			Metrics: metrics, Logger: a.log.With().Str("component", "reconcile").Logger(),
			OnReport: func(*reconcile.Report) {
				if a.Policy != nil {
					if err := a.Policy.Evaluate(context.Background()); err != nil {
						a.log.Error().Err(err).Msg("alert policy after reconciliation failed")
					}
				}
			}})
		a.run("reconcile", a.Reconcile.Schedule)
	}
	if a.Policy != nil {
		a.Policy.SetDetector(a.Detector)
		a.run("policy", a.Policy.Run)
	}
	if a.serves(ServiceGate) {
		var rec gate.Recorder
		if a.Detector != nil {
			rec = a.Detector
		}
		// The gate gets its own connection: its requests never queue behind
		// the consumers' message flow on the shared one.
		gateConn, err := b.Connect("driftwatch-gate")
		if err != nil {
			return fmt.Errorf("gate connection: %w", err)
		}
		a.gateConn = gateConn
		metrics, err := gate.NewMetrics(meter, systems)
		if err != nil {
			return err
		}
		var router gate.Router
		if a.Cluster != nil {
			router = a.Cluster
		}
		g, err := gate.New(gate.Options{Conn: gateConn, Config: a.cfg, Store: a.Store, Recorder: rec, Metrics: metrics, Router: router, Instance: instance,
			Logger: a.log.With().Str("component", "gate").Logger()})
		if err != nil {
			return err
		}
		a.Gate = g
		if a.Cluster != nil {
			a.Cluster.Serve(nil, g)
		}
		if err := a.Gate.Start(); err != nil {
			return err
		}
		a.run("gate", a.Gate.Run)
	}
	if a.opts.HTTPAddr != "" && (a.serves(ServiceAPI) || a.serves(ServiceIngest)) {
		a.HTTP = api.New(a.log.With().Str("component", "api").Logger())
		if err := a.HTTP.Secure(a.cfg); err != nil { // tokens, origins, TLS: api.Routes says who may call what
			return err
		}
		if a.serves(ServiceIngest) {
			pub, err := events.NewPublisher(b.Conn, events.WithSystems(a.cfg.Known), events.WithZones(a.cfg.Zones()), events.WithHeaders(a.Tracing.Inject))
			if err != nil {
				return err
			}
			counted, err := telemetry.NewEventCounter(meter, "ingest", systems, ingestOutcomes)
			if err != nil {
				return err
			}
			h := ingest.New(pub, a.log.With().Str("component", "ingest").Logger(), counted, a.Tracing)
			a.HTTP.Handle("POST /v1/events", h)
			wh, err := ingest.NewWebhookHandler(a.cfg, pub, b.JS, a.log.With().Str("component", "webhooks").Logger(), counted)
			if err != nil {
				return err
			}
			a.HTTP.Handle("POST /v1/webhooks/{system}", wh)
		}
		if a.serves(ServiceAPI) {
			orders := &api.OrderHandlers{Config: a.cfg, Store: a.Store}
			if a.Cluster != nil {
				orders.Forward = a.Cluster.ForwardHTTP
			}
			orders.Register(a.HTTP)
			mismatches := &api.MismatchHandlers{Store: a.Store, Detector: a.Detector, Config: a.cfg}
			if a.Cluster != nil {
				mismatches.Cluster, mismatches.Owns = a.Cluster, a.Owned.Owns
			}
			mismatches.Register(a.HTTP)
			if a.Gate != nil {
				a.HTTP.Handle("POST /v1/validate", a.Gate)
			}
			(&api.ReconcileHandlers{Store: a.Store, Reconciler: a.Reconcile}).Register(a.HTTP)
			stats := &api.StatsHandler{Config: a.cfg, Store: a.Store}
			if a.Cluster != nil {
				stats.Cluster, stats.Owns = a.Cluster, a.Owned.Owns
			}
			a.HTTP.Handle("GET /v1/stats", stats)
			a.HTTP.HandleFunc("GET /v1/export/mismatches", a.serveExportMismatches)
			a.HTTP.RegisterDashboard()
			if a.serves(ServiceIngest) {
				pub, err := events.NewPublisher(b.Conn, events.WithSystems(a.cfg.Known), events.WithZones(a.cfg.Zones()))
				if err != nil {
					return err
				}
				(&api.SnapshotHandlers{Config: a.cfg, Publisher: pub}).Register(a.HTTP)
			}
			a.HTTP.HandleFunc("GET /v1/status", a.serveStatus)
			a.HTTP.Handle("GET /v1/config", api.NewConfigHandler(a.cfg))
			a.HTTP.Handle("GET /metrics", a.Metrics.Handler())
			if err := a.observeStatus(); err != nil {
				return err
			}
		}
		if a.Cluster != nil {
			a.Cluster.Serve(a.HTTP, nil)
		}
		if err := a.HTTP.Start(a.opts.HTTPAddr); err != nil {
			return err
		}
		a.HTTP.SetReady(true)
	}
	a.runServices()
	abs, _ := filepath.Abs(a.opts.DataDir)
	a.log.Info().Str("nats", broker.Redact(b.ClientURL)).Str("http", a.HTTPAddr()).Str("data", abs).
		Strs("services", a.opts.Services).Bool("sync_always", a.cfg.SyncAlways()).Msg("driftwatch started")
	return nil
}

// The outcomes each stage counts (driftwatch.events.in).
var (
	ingestOutcomes    = []string{string(events.Accepted), string(events.Duplicate), string(events.Rejected)}
	projectorOutcomes = []string{projections.Applied.String(), projections.Late.String(), projections.Acked.String(), projections.Duplicate.String(), projections.Rejected.String()}
)

// arrivals counts the outcomes of a batch that are events of the system
// arriving (applied, late or acknowledgements), for the alert policy's
// silence rule.
func arrivals(outcomes []projections.Outcome) int {
	n := 0
	for i := range outcomes {
		switch outcomes[i].Result {
		case projections.Applied, projections.Late, projections.Acked:
			n++
		}
	}
	return n
}

// observeSources reads, for policy.Options.Observe, how many events of
// each configured source the log holds (under every subject of the
// source: with the order's partition or without) and when its last one
// arrived. An instance of a cluster is delivered its own orders' events
// only; the log sees every source's. The last event's time is read again
// only for a source whose count moved since the previous call (the
// policy's rounds call it one at a time).
func observeSources(js jetstream.JetStream, known func(string) bool) func(context.Context) (map[string]policy.Observed, error) {
	var before map[string]policy.Observed
	return func(ctx context.Context) (map[string]policy.Observed, error) {
		st, err := js.Stream(ctx, events.EventsStream)
		if err != nil {
			return nil, err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.InPrefix+">"))
		if err != nil {
			return nil, err
		}
		out := map[string]policy.Observed{}
		for subj, n := range info.State.Subjects {
			if sys, ok := events.SystemFromSubject(subj); ok && known(sys) {
				o := out[sys]
				o.Count += n
				out[sys] = o
			}
		}
		for sys, o := range out {
			if prev, ok := before[sys]; ok && prev.Count == o.Count {
				out[sys] = prev
				continue
			}
			for _, subj := range events.SystemSubjects(sys) {
				m, err := st.GetLastMsgForSubject(ctx, subj)
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if m.Time.After(o.Last) {
					o.Last = m.Time
				}
			}
			out[sys] = o
		}
		before = out
		return out, nil
	}
}

// HTTPAddr is the HTTP API's address ("" when not serving HTTP).
func (a *App) HTTPAddr() string {
	if a.HTTP == nil {
		return ""
	}
	return a.HTTP.Addr()
}

// Stop stops the HTTP server (draining its requests), then the services
// (each Run returns once its work in hand is stored), then the store and
// the log, within ctx.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	if a.HTTP != nil {
		errs = append(errs, a.HTTP.Stop(ctx))
	}
	if a.stopServices != nil {
		// Waited for without a deadline: the store must not close under
		// a service still writing to it. Every Run returns once its
		// context ends.
		a.stopServices()
		<-a.servicesDone
		a.stopServices = nil
	}
	if a.gateConn != nil {
		a.gateConn.Close()
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
		a.Store = nil
	}
	if a.Broker != nil {
		a.Broker.Close()
	}
	errs = append(errs, a.Metrics.Shutdown(ctx), a.Tracing.Shutdown(ctx))
	return errors.Join(errs...)
}

// Run starts the App, waits for ctx to end, then stops it within 15s.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	var fatal error
	select {
	case <-ctx.Done():
	case fatal = <-a.fatal:
	}
	a.log.Info().Msg("driftwatch stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return errors.Join(fatal, a.Stop(stopCtx))
}
