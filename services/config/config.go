// Package config loads and validates driftwatch's configuration file
// (CONTRACT.md section 5): the systems, the flows between them, detection,
// alerting, reconciliation and ingest settings, and the mapping tables
// folder. Validation reports every problem with the key that holds it.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // systems[].timezone works on hosts without a zoneinfo database

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/events/webhook"
	"go.yaml.in/yaml/v3"
)

// SixSystems is the systems block of the reference stack (the one in
// deploy/driftwatch.example.yaml): Shopify, Amazon, NetSuite as the record
// system, a generic warehouse, Stripe and EasyPost. Tests, the demo and the
// load tool add their own flows and settings to it.
const SixSystems = `systems:
  - {id: shop,    platform: shopify,  role: storefront}
  - {id: amazon,  platform: amazon,   role: marketplace}
  - {id: erp,     platform: netsuite, role: erp, record: true}
  - {id: wms,     platform: generic,  role: warehouse}
  - {id: stripe,  platform: stripe,   role: payment}
  - {id: carrier, platform: easypost, role: carrier}
`

// ReferenceFlows is the flows block of the reference stack (the flows of
// deploy/driftwatch.example.yaml) with the SLAs given, in its order: shop,
// amazon and stripe (payment) to erp, carrier (fulfilment) to erp, erp to
// wms (fulfilment). Tests, the demo and the load tool add it to SixSystems
// with their own SLAs and settings.
func ReferenceFlows(shop, amazon, stripe, carrier, wms string) string {
	return "flows:\n" +
		"  - {from: shop,    to: erp, sla: " + shop + "}\n" +
		"  - {from: amazon,  to: erp, sla: " + amazon + "}\n" +
		"  - {from: stripe,  to: erp, sla: " + stripe + ", dimensions: [payment]}\n" +
		"  - {from: carrier, to: erp, sla: " + carrier + ", dimensions: [fulfilment]}\n" +
		"  - {from: erp,     to: wms, sla: " + wms + ", dimensions: [fulfilment]}\n"
}

// Roles a system may have.
var Roles = []string{"storefront", "marketplace", "erp", "warehouse", "payment", "carrier", "other"}

// Dimensions a flow may be limited to.
const (
	DimFulfilment = "fulfilment"
	DimPayment    = "payment"
)

// Duration is a time.Duration that reads Go syntax plus "d" for days
// ("90d", "1d12h", "5m").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseDuration parses Go duration syntax with an added "d" unit (24h).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("bad duration %q: want Go syntax plus d for days (90d, 1d12h, 5m)", s)
		}
		total := time.Duration(days * float64(24*time.Hour))
		if rest := s[i+1:]; rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q: want Go syntax plus d for days (90d, 1d12h, 5m)", s)
			}
			total += r
		}
		return total, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want Go syntax plus d for days (90d, 1d12h, 5m)", s)
	}
	return d, nil
}

// System is one configured platform instance.
type System struct {
	ID       string `yaml:"id"`
	Platform string `yaml:"platform"`
	Role     string `yaml:"role"`
	Record   bool   `yaml:"record"`
	// Timezone is an IANA zone name (America/New_York). Events from the
	// system whose occurred_at has no offset are read in it (and marked
	// as assumed) instead of being rejected. Empty: no offset, no event.
	Timezone string `yaml:"timezone"`
	// Webhook configures the system's native webhooks (optional).
	Webhook *SystemWebhook `yaml:"webhook"`

	zone *time.Location
}

// Zone is the system's configured time zone (nil when none is set).
func (s *System) Zone() *time.Location { return s.zone }

// Flow says B (To) must reflect A's (From) state within SLA.
type Flow struct {
	From       string   `yaml:"from"`
	To         string   `yaml:"to"`
	SLA        Duration `yaml:"sla"`
	Dimensions []string `yaml:"dimensions"`
}

// Covers reports whether the flow covers a dimension.
func (f Flow) Covers(dim string) bool {
	if len(f.Dimensions) == 0 {
		return true
	}
	for _, d := range f.Dimensions {
		if d == dim {
			return true
		}
	}
	return false
}

// Detect holds detection settings.
type Detect struct {
	Settle        Duration `yaml:"settle"`
	MaxFutureSkew Duration `yaml:"max_future_skew"`
	// GateFlagExpiry is how long a gate flag on an order that the log has
	// never shown stays open before it expires (resolved, with an audit
	// entry saying so).
	GateFlagExpiry Duration `yaml:"gate_flag_expiry"`
}

// Webhook is an HTTP notification target for alerts.
type Webhook struct {
	URL    string   `yaml:"url"`
	Format string   `yaml:"format"` // json (default) or slack
	Kinds  []string `yaml:"kinds"`  // severities or ops kinds to send; empty: all
}

// Alerts holds the alert policy.
type Alerts struct {
	MismatchRate  float64             `yaml:"mismatch_rate"`
	ChannelShare  float64             `yaml:"channel_share"`
	EscalateAfter Duration            `yaml:"escalate_after"`
	Escalate      map[string]Duration `yaml:"escalate"` // per-pattern overrides
	SilentFloor   Duration            `yaml:"silent_floor"`
	Webhooks      []Webhook           `yaml:"webhooks"`
}

// Reconcile holds reconciliation settings.
type Reconcile struct {
	Every Duration `yaml:"every"`
}

// Ingest holds log settings.
type Ingest struct {
	DedupeWindow Duration `yaml:"dedupe_window"`
	MaxAge       Duration `yaml:"max_age"`
	// SyncInterval is how often the embedded JetStream fsyncs: "always"
	// (default: an acknowledged event survives a power cut) or a duration
	// (the throughput setting: up to that much acknowledged data can be
	// lost on a power cut, never on a process crash).
	SyncInterval string `yaml:"sync_interval"`
	// Replicas of the streams when running against a cluster (default 1).
	Replicas int `yaml:"replicas"`
	// Placement puts the streams on a cluster or on servers with tags
	// (JetStream's placement); empty: wherever JetStream chooses.
	Placement Placement `yaml:"placement"`
}

// Placement is JetStream's stream placement: the cluster's name and the
// server tags every replica's server must have.
type Placement struct {
	Cluster string   `yaml:"cluster"`
	Tags    []string `yaml:"tags"`
}

// Memory sizes driftwatch's caches and bounds its heap. The defaults favour
// throughput; limit_mb: 192 keeps a server with a million orders in its
// projections under 300 MiB resident, at a cost in burst throughput
// (BENCHMARKS.md has both).
type Memory struct {
	// LimitMB is the Go heap's soft limit in MiB (0: none). Near it the
	// collector runs as often as it must. The GOMEMLIMIT variable wins.
	LimitMB int `yaml:"limit_mb"`
	// BlockCacheMB is Pebble's cache in MiB. Pebble counts its memtables
	// against it: each reserves its size there, and so does the one it
	// keeps for reuse after a flush. Blocks get what is left: at the
	// defaults (32 and 16) nothing, once ingest has filled a memtable. The
	// row cache carries the hot reads; a cache with room for blocks on top
	// measured no gain in throughput, for 50 MiB more resident
	// (BENCHMARKS.md).
	BlockCacheMB int `yaml:"block_cache_mb"`
	// MemtableMB is the size of one Pebble memtable in MiB. Up to four
	// are held: the live one, up to two waiting for their flush, and one
	// kept for reuse.
	MemtableMB int `yaml:"memtable_mb"`
	// RowCache is how many projection rows are cached decoded-ready for
	// the projector's read-modify-write (a few hundred bytes each).
	RowCache int `yaml:"row_cache"`
}

// Token roles (http.tokens[].role): what a bearer token may do on the HTTP
// API (CONTRACT.md section 8 has the route table).
const (
	// TokenIngest may post events (POST /v1/events) for its systems only.
	TokenIngest = "ingest"
	// TokenRead may read everything and ask the gate (POST /v1/validate).
	TokenRead = "read"
	// TokenOperate may do what read may, post events for every system, and
	// change state: resolve mismatches, run a sweep, import a snapshot.
	TokenOperate = "operate"
)

// TokenRoles lists the roles a token may have.
var TokenRoles = []string{TokenIngest, TokenRead, TokenOperate}

// DefaultMaxConnections is http.max_connections' default.
const DefaultMaxConnections = 512

// HTTP configures the HTTP API's transport and who may call it.
type HTTP struct {
	// TLS serves HTTPS when both files are set.
	TLS TLS `yaml:"tls"`
	// AllowedOrigins are origins ("https://ops.example.com"), besides the
	// server's own, whose browser requests may use the mutating routes
	// (POST, PUT, PATCH, DELETE). A server behind a proxy that changes the
	// scheme or the host lists the public origin here.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxConnections caps the connections served at once; more wait to be
	// accepted.
	MaxConnections int `yaml:"max_connections"`
	// Tokens, when set, make every route but /healthz, /readyz and the
	// dashboard's static files ask for "Authorization: Bearer <token>".
	Tokens []HTTPToken `yaml:"tokens"`
}

// TLS names the certificate and key files (PEM) of HTTPS.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HTTPToken is one bearer token of the HTTP API. The token itself is never
// written in the configuration: exactly one of SHA256 (the hex SHA-256 of
// the token), File (a file holding it) or Env (an environment variable
// holding it) says where it is.
type HTTPToken struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// Systems are the systems an ingest token may post events for.
	Systems []string `yaml:"systems"`
	SHA256  string   `yaml:"sha256"`
	File    string   `yaml:"file"`
	Env     string   `yaml:"env"`
	// Inline catches a plain token written as "token:", to refuse it.
	Inline string `yaml:"token"`
}

// ResolvedToken is a token of http.tokens with its hash read.
type ResolvedToken struct {
	Name    string
	Role    string
	Systems []string
	Hash    [sha256.Size]byte
}

// MinTokenLength is the shortest token accepted from a file or a variable.
const MinTokenLength = 16

// HashToken is the SHA-256 of a token, as http.tokens[].sha256 holds it.
func HashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// ResolveTokens reads every token of http.tokens: the hash as given, or
// the token from its file (relative to the configuration's folder; white
// space around it is dropped) or its environment variable, hashed. Only
// the server calls it: client commands that read the configuration need
// not see the secrets. Errors name the key; no error carries a token.
func (c *Config) ResolveTokens() ([]ResolvedToken, error) {
	var p []string
	out := make([]ResolvedToken, 0, len(c.HTTP.Tokens))
	seen := map[[sha256.Size]byte]int{}
	for i, t := range c.HTTP.Tokens {
		rt := ResolvedToken{Name: t.Name, Role: t.Role, Systems: t.Systems}
		key := fmt.Sprintf("http.tokens[%d]", i)
		var secret string
		switch {
		case t.SHA256 != "":
			b, err := hex.DecodeString(t.SHA256)
			if err != nil || len(b) != sha256.Size {
				p = append(p, key+".sha256: want 64 hex digits")
				continue
			}
			copy(rt.Hash[:], b)
		case t.File != "":
			path := t.File
			if !filepath.IsAbs(path) && c.Path != "" {
				path = joinDir(c.Path, path)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				p = append(p, fmt.Sprintf("%s.file: %v", key, err))
				continue
			}
			secret = strings.TrimSpace(string(data))
			key += ".file"
		case t.Env != "":
			secret = strings.TrimSpace(os.Getenv(t.Env))
			key += ".env"
			if secret == "" {
				p = append(p, fmt.Sprintf("%s: the variable %s is not set", key, t.Env))
				continue
			}
		default:
			continue // Validate reported it
		}
		if t.SHA256 == "" {
			if len(secret) < MinTokenLength {
				p = append(p, fmt.Sprintf("%s: the token is shorter than %d characters (driftwatch token new makes one)", key, MinTokenLength))
				continue
			}
			rt.Hash = HashToken(secret)
		}
		if j, dup := seen[rt.Hash]; dup {
			p = append(p, fmt.Sprintf("http.tokens[%d]: the same token as http.tokens[%d]", i, j))
			continue
		}
		seen[rt.Hash] = i
		out = append(out, rt)
	}
	if len(p) > 0 {
		return nil, &Error{File: c.Path, Problems: p}
	}
	return out, nil
}

// validateHTTP checks the http section; add reports a problem.
func (c *Config) validateHTTP(add func(format string, args ...any)) {
	h := &c.HTTP
	if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
		add("http.tls: cert_file and key_file go together")
	}
	for i, o := range h.AllowedOrigins {
		if !validOrigin(o) {
			add("http.allowed_origins[%d]: %q is not an origin: want scheme://host[:port], e.g. https://ops.example.com", i, o)
		}
	}
	if h.MaxConnections < 8 {
		add("http.max_connections: %d: want at least 8", h.MaxConnections)
	}
	names := map[string]int{}
	for i, t := range h.Tokens {
		key := fmt.Sprintf("http.tokens[%d]", i)
		if t.Name == "" {
			add("%s.name: is required", key)
		} else if j, dup := names[t.Name]; dup {
			add("%s.name: %q is also http.tokens[%d]'s", key, t.Name, j)
		} else {
			names[t.Name] = i
		}
		if !slices.Contains(TokenRoles, t.Role) {
			add("%s.role: %q is not a role: want one of %s", key, t.Role, strings.Join(TokenRoles, ", "))
		}
		if t.Role == TokenIngest && len(t.Systems) == 0 {
			add("%s.systems: an ingest token needs the systems it may post events for", key)
		}
		if t.Role != TokenIngest && len(t.Systems) > 0 {
			add("%s.systems: only an ingest token is limited to systems", key)
		}
		for j, s := range t.Systems {
			if !c.Known(s) {
				add("%s.systems[%d]: %q is not a configured system", key, j, s)
			}
		}
		if t.Inline != "" {
			add("%s.token: a token is never written in the configuration: give its sha256, a file or an env variable", key)
		}
		given := 0
		for _, v := range []string{t.SHA256, t.File, t.Env} {
			if v != "" {
				given++
			}
		}
		if given != 1 {
			add("%s: give exactly one of sha256, file or env", key)
		}
		if t.SHA256 != "" {
			if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
				add("%s.sha256: want 64 hex digits (driftwatch token new prints them)", key)
			}
		}
		if t.Env != "" && !validEnvName(t.Env) {
			add("%s.env: %q is not a variable name", key, t.Env)
		}
	}
}

// validOrigin reports whether o is scheme://host[:port] with an http or
// https scheme and nothing after the host (compared without regard to
// case).
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return false
	}
	return strings.EqualFold(o, u.Scheme+"://"+u.Host)
}

func validEnvName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// Zones gives each system's configured time zone, for reading occurred_at
// without an offset (events.ZoneOf); nil when no system has one.
func (c *Config) Zones() func(system string) *time.Location {
	zoned := false
	for i := range c.Systems {
		zoned = zoned || c.Systems[i].zone != nil
	}
	if !zoned {
		return nil
	}
	return func(system string) *time.Location {
		if s, ok := c.byID[system]; ok {
			return s.zone
		}
		return nil
	}
}

// Config is the whole configuration file.
type Config struct {
	Systems     []System  `yaml:"systems"`
	Flows       []Flow    `yaml:"flows"`
	Detect      Detect    `yaml:"detect"`
	Alerts      Alerts    `yaml:"alerts"`
	Reconcile   Reconcile `yaml:"reconcile"`
	Ingest      Ingest    `yaml:"ingest"`
	Memory      Memory    `yaml:"memory"`
	HTTP        HTTP      `yaml:"http"`
	MappingsDir string    `yaml:"mappings_dir"`
	// NATS is the embedded server's authentication and TLS (nats.go).
	NATS NATS `yaml:"nats"`
	// Owners says who owns a mismatch when it opens; Runbooks override
	// the built-in runbooks per pattern (owners.go).
	Owners   Owners             `yaml:"owners"`
	Runbooks map[string]Runbook `yaml:"runbooks"`
	// Cluster shares the work among instances (cluster.go).
	Cluster Cluster `yaml:"cluster"`

	// Mappings are the loaded tables (built-in plus mappings_dir).
	Mappings *mapping.Set `yaml:"-"`
	// Path is the file the configuration came from.
	Path string `yaml:"-"`
	// MappingsPath is mappings_dir resolved against the file's folder.
	MappingsPath string `yaml:"-"`

	byID map[string]*System
}

// Defaults are applied to keys the file leaves out.
func Defaults() Config {
	return Config{
		Detect:    Detect{Settle: Duration(2 * time.Second), MaxFutureSkew: Duration(5 * time.Minute), GateFlagExpiry: Duration(24 * time.Hour)},
		Alerts:    Alerts{MismatchRate: 0.02, ChannelShare: 0.5, EscalateAfter: Duration(24 * time.Hour), SilentFloor: Duration(15 * time.Minute)},
		Reconcile: Reconcile{Every: Duration(24 * time.Hour)},
		Ingest:    Ingest{DedupeWindow: Duration(2 * time.Hour), MaxAge: Duration(90 * 24 * time.Hour), SyncInterval: "always", Replicas: 1},
		Memory:    Memory{LimitMB: 0, BlockCacheMB: 32, MemtableMB: 16, RowCache: 65536},
		HTTP:      HTTP{MaxConnections: DefaultMaxConnections},
		Cluster:   Cluster{Partitions: DefaultPartitions, Lease: Duration(6 * time.Second)},
	}
}

// Error lists every problem of a configuration, each naming its key.
type Error struct {
	File     string
	Problems []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config %s: %s", e.File, strings.Join(e.Problems, "; "))
}

// ErrInvalid is matched (errors.Is) by every *Error.
var ErrInvalid = errors.New("config: invalid")

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// LoadFile reads, parses and validates a configuration file and loads its
// mapping tables.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates configuration bytes; file names them in errors.
// A relative mappings_dir is taken relative to the file's folder.
func Parse(file string, data []byte) (*Config, error) {
	cfg := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Problems: []string{"the file is empty: systems and flows are required"}}
		}
		return nil, &Error{File: file, Problems: []string{strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n ", ""), "yaml: ")}}
	}
	cfg.Path = file
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := cfg.MappingsDir
	if dir != "" && !strings.HasPrefix(dir, "/") && file != "" {
		dir = joinDir(file, dir)
	}
	cfg.MappingsPath = dir
	set, err := mapping.Load(dir)
	if err != nil {
		return nil, &Error{File: file, Problems: []string{"mappings_dir: " + err.Error()}}
	}
	cfg.Mappings = set
	problems := cfg.loadRunbooks()
	for i, s := range cfg.Systems {
		if _, ok := set.Table(s.Platform); !ok {
			plats := set.Platforms()
			sort.Strings(plats)
			problems = append(problems, fmt.Sprintf("systems[%d].platform: %q has no mapping table (known: %s)", i, s.Platform, strings.Join(plats, ", ")))
		}
	}
	if len(problems) > 0 {
		return nil, &Error{File: file, Problems: problems}
	}
	return &cfg, nil
}

func joinDir(file, dir string) string {
	i := strings.LastIndexByte(file, '/')
	if i < 0 {
		return dir
	}
	return file[:i+1] + dir
}

// Validate checks the configuration and reports every problem with its key.
func (c *Config) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if len(c.Systems) == 0 {
		add("systems: at least one system is required")
	}
	c.byID = map[string]*System{}
	records := 0
	for i := range c.Systems {
		s := &c.Systems[i]
		if !events.ValidSystemID(s.ID) {
			add("systems[%d].id: %q is not a system id: want [a-z][a-z0-9_-]{0,31}", i, s.ID)
		} else if _, dup := c.byID[s.ID]; dup {
			add("systems[%d].id: %q is configured twice", i, s.ID)
		} else {
			c.byID[s.ID] = s
		}
		if s.Platform == "" {
			add("systems[%d].platform: is required", i)
		}
		if !slices.Contains(Roles, s.Role) {
			add("systems[%d].role: %q is not a role: want one of %s", i, s.Role, strings.Join(Roles, ", "))
		}
		if s.Record {
			records++
		}
		s.zone = nil
		if s.Timezone != "" {
			loc, err := time.LoadLocation(s.Timezone)
			if err != nil || s.Timezone == "Local" {
				add("systems[%d].timezone: %q is not an IANA time zone name (e.g. America/New_York, Europe/London, UTC)", i, s.Timezone)
			} else {
				s.zone = loc
			}
		}
		if s.Webhook != nil {
			if !slices.Contains(webhook.Platforms(), s.Platform) {
				add("systems[%d].webhook: platform %q has no native webhooks (those that do: %s)", i, s.Platform, strings.Join(webhook.Platforms(), ", "))
			}
			if s.Webhook.Tolerance < 0 {
				add("systems[%d].webhook.tolerance: %v is negative", i, s.Webhook.Tolerance.D())
			}
			if h := s.Webhook.Header; h != "" && !validHeaderName(h) {
				add("systems[%d].webhook.header: %q is not a header name", i, h)
			}
		}
	}
	if len(c.Systems) > 0 && records != 1 {
		add("systems: exactly one system must have record: true (found %d)", records)
	}
	seenFlow := map[[2]string]bool{}
	for i, f := range c.Flows {
		if _, ok := c.byID[f.From]; !ok {
			add("flows[%d].from: %q is not a configured system", i, f.From)
		}
		if _, ok := c.byID[f.To]; !ok {
			add("flows[%d].to: %q is not a configured system", i, f.To)
		}
		if f.From == f.To && f.From != "" {
			add("flows[%d]: a flow from %q to itself", i, f.From)
		}
		if seenFlow[[2]string{f.From, f.To}] {
			add("flows[%d]: the flow %s -> %s is configured twice", i, f.From, f.To)
		}
		seenFlow[[2]string{f.From, f.To}] = true
		if f.SLA <= 0 {
			add("flows[%d].sla: is required and must be positive", i)
		}
		for j, d := range f.Dimensions {
			if d != DimFulfilment && d != DimPayment {
				add("flows[%d].dimensions[%d]: %q is not a dimension: want fulfilment or payment", i, j, d)
			}
		}
	}
	if c.Detect.Settle < 0 {
		add("detect.settle: must not be negative")
	}
	if c.Detect.MaxFutureSkew <= 0 {
		add("detect.max_future_skew: must be positive")
	}
	if c.Detect.GateFlagExpiry <= 0 {
		add("detect.gate_flag_expiry: must be positive")
	}
	if c.Alerts.MismatchRate <= 0 || c.Alerts.MismatchRate > 1 {
		add("alerts.mismatch_rate: %v must be in (0, 1]", c.Alerts.MismatchRate)
	}
	if c.Alerts.ChannelShare <= 0 || c.Alerts.ChannelShare > 1 {
		add("alerts.channel_share: %v must be in (0, 1]", c.Alerts.ChannelShare)
	}
	if c.Alerts.EscalateAfter <= 0 {
		add("alerts.escalate_after: must be positive")
	}
	for _, pat := range slices.Sorted(maps.Keys(c.Alerts.Escalate)) {
		if !slices.Contains(Patterns, pat) {
			add("alerts.escalate.%s: not a pattern (known: %s)", pat, strings.Join(Patterns, ", "))
		}
		if c.Alerts.Escalate[pat] <= 0 {
			add("alerts.escalate.%s: must be positive", pat)
		}
	}
	for i, w := range c.Alerts.Webhooks {
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			// Not quoted whole: a webhook URL carries its secret.
			scheme, _, _ := strings.Cut(w.URL, ":")
			if len(scheme) > 10 {
				scheme = scheme[:10] + "…"
			}
			add("alerts.webhooks[%d].url: must be an http or https URL (it starts %q)", i, scheme)
		}
		if w.Format != "" && w.Format != "json" && w.Format != "slack" {
			add("alerts.webhooks[%d].format: %q: want json or slack", i, w.Format)
		}
	}
	if c.Reconcile.Every <= 0 {
		add("reconcile.every: must be positive")
	}
	if c.Ingest.DedupeWindow <= 0 {
		add("ingest.dedupe_window: must be positive")
	}
	if c.Ingest.MaxAge <= 0 {
		add("ingest.max_age: must be positive")
	} else if c.Ingest.DedupeWindow > c.Ingest.MaxAge {
		add("ingest.dedupe_window: %v is longer than ingest.max_age %v", c.Ingest.DedupeWindow.D(), c.Ingest.MaxAge.D())
	}
	if c.Ingest.SyncInterval != "always" {
		if d, err := ParseDuration(c.Ingest.SyncInterval); err != nil || d <= 0 {
			add("ingest.sync_interval: %q: want always or a positive duration", c.Ingest.SyncInterval)
		}
	}
	if c.Memory.LimitMB < 0 {
		add("memory.limit_mb: %d: want 0 (no limit) or more", c.Memory.LimitMB)
	}
	if c.Memory.BlockCacheMB < 1 {
		add("memory.block_cache_mb: %d: want at least 1", c.Memory.BlockCacheMB)
	}
	if c.Memory.MemtableMB < 4 {
		add("memory.memtable_mb: %d: want at least 4", c.Memory.MemtableMB)
	}
	if c.Memory.RowCache < 1024 {
		add("memory.row_cache: %d: want at least 1024 rows", c.Memory.RowCache)
	}
	if c.Ingest.Replicas < 1 || c.Ingest.Replicas > 5 {
		add("ingest.replicas: %d: want 1 to 5", c.Ingest.Replicas)
	}
	c.validateNATS(add)
	c.validateHTTP(add)
	c.validateOwners(add)
	c.validateCluster(add)
	if len(p) > 0 {
		return &Error{File: c.Path, Problems: p}
	}
	return nil
}

// System returns the configured system id.
func (c *Config) System(id string) (*System, bool) {
	s, ok := c.byID[id]
	return s, ok
}

// Known reports whether id is a configured system.
func (c *Config) Known(id string) bool { _, ok := c.byID[id]; return ok }

// RecordSystem is the system the others are compared against.
func (c *Config) RecordSystem() *System {
	for i := range c.Systems {
		if c.Systems[i].Record {
			return &c.Systems[i]
		}
	}
	return nil
}

// FlowsFrom returns the flows whose source is system.
func (c *Config) FlowsFrom(system string) []Flow {
	var out []Flow
	for _, f := range c.Flows {
		if f.From == system {
			out = append(out, f)
		}
	}
	return out
}

// SyncAlways reports whether the log fsyncs every write.
func (c *Config) SyncAlways() bool { return c.Ingest.SyncInterval == "always" }

// SyncInterval is the fsync interval of the throughput setting (0 when
// SyncAlways).
func (c *Config) SyncInterval() time.Duration {
	if c.SyncAlways() {
		return 0
	}
	d, _ := ParseDuration(c.Ingest.SyncInterval)
	return d
}
