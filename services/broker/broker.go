// Package broker gives driftwatch its log: it starts the embedded
// nats-server with JetStream on file storage under the data folder (the
// default for one machine) or connects to an existing NATS, and creates or
// updates the three streams of CONTRACT.md section 4 with the dedupe window,
// retention and durability from the configuration.
//
// Durability: JetStream acknowledges a publish once the message is written
// to the OS, and by default fsyncs every 2 minutes, so a power cut can lose
// acknowledged events. driftwatch's default is sync_interval "always" (an
// fsync before each acknowledgement, batched by the server across concurrent
// publishes); a duration is the documented throughput setting. See
// BENCHMARKS.md for the measured trade-off.
//
// Authentication: the embedded server is open by default (it listens on
// 127.0.0.1). With users (Auth.Users, each with a role whose permissions
// Permissions gives) or a nats-server config file (Auth.ConfigFile), every
// client must authenticate; driftwatch's own connections then use an
// internal identity, an NKey pair made in memory at every start and never
// written anywhere, with full permissions, so driftwatch itself needs no
// configuration. Against an existing NATS (Options.URL) driftwatch connects
// with Options.Client. Auth.TLS serves the client port over TLS; in-process
// connections skip it. A NATS URL goes through Redact before it is logged or
// put in an error.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
)

// Options configures the broker.
type Options struct {
	// URL of an existing NATS; empty starts the embedded server.
	URL string
	// DataDir holds the embedded server's JetStream store (DataDir/jetstream).
	DataDir string
	// Listen is the embedded server's client address (default
	// 127.0.0.1:4222; port 0 or -1 picks a random port).
	Listen string
	// SyncAlways fsyncs before each acknowledgement; otherwise SyncInterval.
	SyncAlways   bool
	SyncInterval time.Duration
	// ClientName names driftwatch's own connection.
	ClientName string
	Logger     zerolog.Logger
	// Auth is the embedded server's authentication, authorization and TLS
	// (ignored with URL: an existing NATS has its own).
	Auth Auth
	// Client authenticates driftwatch's connections to URL, or to the
	// embedded server when Auth.ConfigFile decides who driftwatch is
	// (accounts, operator mode); otherwise it must be empty.
	Client ClientOptions
}

// Broker is a running (or connected) NATS with JetStream.
type Broker struct {
	// Server is the embedded server, nil when connected to an existing NATS.
	Server *server.Server
	// Conn is driftwatch's own connection (in-process when embedded).
	Conn *nats.Conn
	JS   jetstream.JetStream
	// ClientURL is where other processes (the nats CLI) connect. It may
	// hold a password: log it through Redact.
	ClientURL string

	// connOpts authenticate driftwatch's connections (the internal
	// identity, or Options.Client).
	connOpts []nats.Option
	id       *identity
}

// Start starts the embedded server or connects to opts.URL.
func Start(opts Options) (*Broker, error) {
	b := &Broker{}
	name := opts.ClientName
	if name == "" {
		name = "driftwatch"
	}
	if opts.URL == "" {
		srv, connOpts, id, err := startEmbedded(opts)
		if err != nil {
			return nil, err
		}
		b.Server, b.connOpts, b.id = srv, connOpts, id
		b.ClientURL = srv.ClientURL()
	} else {
		if opts.Auth.Enabled() || opts.Auth.TLS.Enabled() {
			opts.Logger.Warn().Msg("nats.users, nats.config_file and nats.tls apply to the embedded server only: the existing NATS decides who may connect")
		}
		connOpts, err := opts.Client.Options()
		if err != nil {
			return nil, err
		}
		b.connOpts = connOpts
		b.ClientURL = opts.URL
	}
	nc, err := b.Connect(name, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to NATS %s: %w", Redact(b.ClientURL), err)
	}
	b.Conn = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	b.JS = js
	return b, nil
}

// Connect opens another connection named name, as driftwatch (the
// internal identity, or Options.Client): in-process when the server is
// embedded (no socket, so a message reaches its handler without waiting for
// the network poller, which a busy process may check only every 10 ms; and
// no TLS), else to ClientURL.
func (b *Broker) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := make([]nats.Option, 0, len(opts)+len(b.connOpts)+2)
	all = append(all, nats.Name(name))
	all = append(all, b.connOpts...)
	all = append(all, opts...)
	url := b.ClientURL
	if b.Server != nil {
		all = append(all, nats.InProcessServer(b.Server))
		// A tls:// URL would make the client insist on TLS, which an
		// in-process connection does not need.
		url = "nats://" + strings.TrimPrefix(strings.TrimPrefix(url, "tls://"), "nats://")
	}
	return nats.Connect(url, all...)
}

// startEmbedded starts the embedded server and returns the options
// driftwatch's own connections authenticate with.
func startEmbedded(opts Options) (*server.Server, []nats.Option, *identity, error) {
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nats listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nats listen address %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if opts.DataDir == "" {
		return nil, nil, nil, errors.New("broker: a data folder is required for the embedded server")
	}
	// The server reports a store it cannot write and a port it cannot
	// bind only in its log, and then never becomes ready: both are
	// checked first, so that the error says which it is at once.
	storeDir := filepath.Join(opts.DataDir, "jetstream")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("the data folder %s cannot hold the log: %w", opts.DataDir, err)
	}
	if err := CheckWritable(storeDir); err != nil {
		return nil, nil, nil, err
	}
	if port > 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("the embedded nats-server cannot listen on %s: %w (another nats-server or driftwatch holds the port? give another address with --nats-listen)", listen, err)
		}
		_ = ln.Close()
	}
	sopts := &server.Options{}
	if opts.Auth.ConfigFile != "" {
		// The file decides everything it sets; driftwatch's listen
		// address, store and sync settings apply on top, so that the log
		// stays where serve and rebuild look for it.
		if sopts, err = server.ProcessConfigFile(opts.Auth.ConfigFile); err != nil {
			return nil, nil, nil, fmt.Errorf("nats.config_file: %w", err)
		}
	}
	if sopts.ServerName == "" {
		sopts.ServerName = "driftwatch"
	}
	sopts.Host, sopts.Port = host, port
	sopts.JetStream = true
	sopts.StoreDir = storeDir
	sopts.SyncAlways, sopts.SyncInterval = opts.SyncAlways, opts.SyncInterval
	sopts.NoSigs = true
	if sopts.MaxPayload == 0 {
		sopts.MaxPayload = 1 << 20
	}
	if sopts.JetStreamMaxMemory == 0 {
		sopts.JetStreamMaxMemory = 256 << 20
	}
	if err := applyTLS(sopts, opts.Auth.TLS); err != nil {
		return nil, nil, nil, err
	}
	connOpts, id, err := applyAuth(sopts, opts.Auth, opts.Client)
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		id.wipe()
		return nil, nil, nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	logger := &natsLogger{log: opts.Logger.With().Str("component", "nats-server").Logger()}
	srv.SetLoggerV2(logger, false, false, false)
	srv.Start()
	// The server logs why it cannot start (a port taken meanwhile,
	// JetStream refusing its store) and stays unready: that reason ends
	// the wait at once.
	for deadline := time.Now().Add(10 * time.Second); !srv.ReadyForConnections(20 * time.Millisecond); {
		why := logger.fatal.Load()
		if why == nil && time.Now().Before(deadline) {
			continue
		}
		srv.Shutdown()
		id.wipe()
		if why != nil {
			return nil, nil, nil, fmt.Errorf("the embedded nats-server did not start on %s: %s", listen, *why)
		}
		return nil, nil, nil, fmt.Errorf("the embedded nats-server did not become ready on %s within 10s", listen)
	}
	return srv, connOpts, id, nil
}

// CheckWritable makes sure files can be written in dir, by creating,
// writing, syncing and removing a probe file: a read-only folder, a
// read-only file system or a full disk is reported with the system's
// reason, before anything that needs the folder starts.
func CheckWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".driftwatch-write-check-*")
	if err != nil {
		return fmt.Errorf("the data folder %s is not writable: %w", dir, err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(make([]byte, 64<<10))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Remove(name)
	}
	if err != nil {
		return fmt.Errorf("the data folder %s is not writable: %w", dir, err)
	}
	return nil
}

// applyTLS serves the client port over TLS when t is set.
func applyTLS(sopts *server.Options, t ServerTLS) error {
	if !t.Enabled() {
		return nil
	}
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile, Verify: t.VerifyClients})
	if err != nil {
		return fmt.Errorf("nats.tls: %w", err)
	}
	sopts.TLSConfig = cfg
	sopts.TLS, sopts.TLSVerify = true, t.VerifyClients
	sopts.TLSCert, sopts.TLSKey, sopts.TLSCaCert = t.CertFile, t.KeyFile, t.CAFile
	return nil
}

// Close drains the connection and shuts the embedded server down.
func (b *Broker) Close() {
	if b.Conn != nil {
		_ = b.Conn.Drain()
		b.Conn.Close()
	}
	if b.Server != nil {
		b.Server.Shutdown()
		b.Server.WaitForShutdown()
	}
	b.id.wipe()
}

// StreamSettings are the retention settings of the streams.
type StreamSettings struct {
	DedupeWindow time.Duration
	MaxAge       time.Duration
	Replicas     int
	// PlacementCluster and PlacementTags place the streams (JetStream's
	// placement; both empty: no placement).
	PlacementCluster string
	PlacementTags    []string
	// AtomicBatches lets publishers append atomic batches to the events
	// stream: stored as one unit with one fsync when JetStream syncs every
	// write (sync_interval "always"), where it multiplies the publish rate.
	// With a sync interval the staging costs more than it saves, so
	// publishers then append event by event.
	AtomicBatches bool
	// Partitions, when above 0, is the partition count of instances
	// sharing the orders (cluster.partitions): the events stream stores
	// an event published on driftwatch.in.<system>.<order_id> as
	// driftwatch.in.<system>.<partition>, the partition computed by the
	// server exactly as events.Partition computes it, so that each
	// instance's consumer is delivered only its own partitions. 0 (one
	// instance): stored as driftwatch.in.<system>.
	Partitions int
}

// Routing is how the events stream names the partition of the events it
// stores (StreamSettings.Partitions), kept in the stream's metadata.
type Routing struct {
	// Partitions is the partition count named in stored subjects (0:
	// none).
	Partitions int
	// From is the first stream sequence stored with that count's
	// partition token (or without one): the events before it may carry
	// another count's token, or none, and are read whole.
	From uint64
}

// Metadata keys of the events stream that record its Routing.
const (
	metaPartitions = "driftwatch_partitions"
	metaRoutedFrom = "driftwatch_routed_from"
)

// RoutingOf reads the events stream's Routing from its configuration.
func RoutingOf(cfg jetstream.StreamConfig) Routing {
	n, err1 := strconv.Atoi(cfg.Metadata[metaPartitions])
	from, err2 := strconv.ParseUint(cfg.Metadata[metaRoutedFrom], 10, 64)
	if err1 != nil || err2 != nil || n < 1 || from < 1 {
		return Routing{}
	}
	return Routing{Partitions: n, From: from}
}

// eventsTransform is the events stream's subject transform: the order
// token of driftwatch.in.<system>.<order_id> becomes the order's
// partition of n (n 0: it is dropped).
func eventsTransform(n int) *jetstream.SubjectTransformConfig {
	dest := events.InPrefix + "{{wildcard(1)}}"
	if n > 0 {
		dest += fmt.Sprintf(".{{partition(%d,2)}}", n)
	}
	return &jetstream.SubjectTransformConfig{Source: events.InPrefix + "*.*", Destination: dest}
}

// StreamConfigs returns the three streams of CONTRACT.md section 4.
func StreamConfigs(s StreamSettings) []jetstream.StreamConfig {
	replicas := max(s.Replicas, 1)
	alertsDedupe := min(10*time.Minute, s.MaxAge)
	var placement *jetstream.Placement
	if s.PlacementCluster != "" || len(s.PlacementTags) > 0 {
		placement = &jetstream.Placement{Cluster: s.PlacementCluster, Tags: s.PlacementTags}
	}
	cfgs := []jetstream.StreamConfig{
		{
			Name:               events.EventsStream,
			Description:        "driftwatch: every inbound order-status event (the log)",
			Subjects:           []string{events.InPrefix + ">"},
			Storage:            jetstream.FileStorage,
			Retention:          jetstream.LimitsPolicy,
			Discard:            jetstream.DiscardOld,
			MaxAge:             s.MaxAge,
			Duplicates:         s.DedupeWindow,
			Replicas:           replicas,
			AllowAtomicPublish: s.AtomicBatches,
			SubjectTransform:   eventsTransform(s.Partitions),
		},
		{
			Name:        events.AlertsStream,
			Description: "driftwatch: mismatch alerts, ops alerts and reconciliation reports",
			Subjects:    []string{events.AlertsPrefix + ">", "driftwatch.reports.>"},
			Storage:     jetstream.FileStorage,
			MaxAge:      s.MaxAge,
			Duplicates:  alertsDedupe,
			Replicas:    replicas,
		},
		{
			Name:        events.DLQStream,
			Description: "driftwatch: rejected input, original bytes with Driftwatch-Error-Code and Driftwatch-Error",
			Subjects:    []string{events.DLQPrefix + ">"},
			Storage:     jetstream.FileStorage,
			MaxAge:      s.MaxAge,
			Duplicates:  min(2*time.Hour, s.MaxAge),
			Replicas:    replicas,
		},
	}
	for i := range cfgs {
		cfgs[i].Placement = placement
	}
	return cfgs
}

// EnsureStreams creates the streams or updates them to the settings.
// When the events stream's partition tokens change (a first start with
// partitions, or another count), the stream records from which sequence
// its events carry the new ones (Routing): read after the transform is in
// place, so every event from there on has it.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, s StreamSettings) error {
	for _, cfg := range StreamConfigs(s) {
		// The events stream's routing: kept when its transform stays;
		// read after the transform is in place when it changes (0 until
		// then), so that no event from there on lacks it.
		routedFrom := uint64(0)
		if cfg.Name == events.EventsStream {
			st, err := OpenStream(ctx, js, cfg.Name)
			switch {
			case errors.Is(err, jetstream.ErrStreamNotFound):
				routedFrom = 1
			case err != nil:
				return fmt.Errorf("read stream %s: %w", cfg.Name, err)
			default:
				info := st.CachedInfo()
				if sameTransform(info.Config.SubjectTransform, cfg.SubjectTransform) {
					routedFrom = info.State.LastSeq + 1
					if r := RoutingOf(info.Config); r.Partitions == s.Partitions && r.From > 0 {
						routedFrom = r.From
					}
				}
			}
			cfg.Metadata = routingMetadata(s.Partitions, routedFrom)
		}
		err := createOrUpdate(ctx, js, cfg)
		if err == nil && cfg.Name == events.EventsStream && s.Partitions > 0 && routedFrom == 0 {
			var st jetstream.Stream
			if st, err = OpenStream(ctx, js, cfg.Name); err == nil {
				cfg.Metadata = routingMetadata(s.Partitions, st.CachedInfo().State.LastSeq+1)
				err = createOrUpdate(ctx, js, cfg)
			}
		}
		if err != nil {
			return fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

func sameTransform(a, b *jetstream.SubjectTransformConfig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Source == b.Source && a.Destination == b.Destination
}

// routingMetadata is the events stream's metadata for Routing{n, from}
// (from 0: not known yet, no routing).
func routingMetadata(n int, from uint64) map[string]string {
	if n < 1 || from < 1 {
		return nil
	}
	return map[string]string{metaPartitions: strconv.Itoa(n), metaRoutedFrom: strconv.FormatUint(from, 10)}
}

// createOrUpdate creates the stream cfg or updates it to cfg, asked again
// when left unanswered (RetryUnanswered); without atomic batches when the
// server refuses them.
func createOrUpdate(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	put := func(cfg jetstream.StreamConfig) error {
		return RetryUnanswered(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			return err
		})
	}
	err := put(cfg)
	var refused *jetstream.APIError
	if err != nil && cfg.AllowAtomicPublish && errors.As(err, &refused) {
		// A server older than 2.12 does not know atomic batches;
		// publishers then append event by event. (Only a refusal says
		// so: a request left unanswered is not one.)
		cfg.AllowAtomicPublish = false
		err = put(cfg)
	}
	return err
}

// natsLogger routes nats-server's log lines to zerolog, and keeps the
// first fatal one: the server's reason for not starting.
type natsLogger struct {
	log   zerolog.Logger
	fatal atomic.Pointer[string]
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.CompareAndSwap(nil, &msg)
	l.log.Error().Msg(msg)
}
