package api

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/notify"
)

// ConfigView is GET /v1/config: the configuration the server runs with,
// defaults applied, without its secrets. Client commands read it instead
// of a configuration file of their own (`replay --since`, `mapping test`,
// the systems `publish` checks events against), so its sections carry the
// configuration file's keys: the sections a client needs (systems, flows,
// detect, alerts without webhooks, reconcile, ingest, memory, cluster) parse back
// as a configuration file (config.Parse reads JSON), and Mappings carries
// the text of every table loaded from mappings_dir.
//
// Never in it: token hashes, token files or variable names, NATS password
// files or keys, nats.config_file's path, TLS file paths, webhook URLs
// beyond their scheme and host (notify.RedactURL), the mappings_dir path.
// Durations are in Go syntax ("5m0s").
type ConfigView struct {
	Systems   []ConfigSystem  `json:"systems"`
	Flows     []ConfigFlow    `json:"flows"`
	Detect    ConfigDetect    `json:"detect"`
	Alerts    ConfigAlerts    `json:"alerts"`
	Reconcile ConfigReconcile `json:"reconcile"`
	Ingest    ConfigIngest    `json:"ingest"`
	Memory    ConfigMemory    `json:"memory"`
	Cluster   ConfigCluster   `json:"cluster"`
	// HTTP and NATS say how the server is secured, not with what.
	HTTP ConfigHTTP `json:"http"`
	NATS ConfigNATS `json:"nats"`
	// Mappings is the mapping table in effect for each configured
	// platform, in the order of the systems.
	Mappings []ConfigMapping `json:"mappings"`
}

// ConfigSystem is one of systems.
type ConfigSystem struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Role     string `json:"role"`
	Record   bool   `json:"record,omitempty"`
	Timezone string `json:"timezone,omitempty"`
}

// ConfigFlow is one of flows.
type ConfigFlow struct {
	From       string   `json:"from"`
	To         string   `json:"to"`
	SLA        string   `json:"sla"`
	Dimensions []string `json:"dimensions,omitempty"`
}

// ConfigDetect is detect.
type ConfigDetect struct {
	Settle         string `json:"settle"`
	MaxFutureSkew  string `json:"max_future_skew"`
	GateFlagExpiry string `json:"gate_flag_expiry"`
}

// ConfigAlerts is alerts; a webhook shows its URL's scheme and host only.
type ConfigAlerts struct {
	MismatchRate  float64           `json:"mismatch_rate"`
	ChannelShare  float64           `json:"channel_share"`
	EscalateAfter string            `json:"escalate_after"`
	Escalate      map[string]string `json:"escalate,omitempty"`
	SilentFloor   string            `json:"silent_floor"`
	Webhooks      []ConfigWebhook   `json:"webhooks,omitempty"`
}

// ConfigWebhook is one of alerts.webhooks, its URL redacted.
type ConfigWebhook struct {
	URL    string   `json:"url"`
	Format string   `json:"format,omitempty"`
	Kinds  []string `json:"kinds,omitempty"`
}

// ConfigReconcile is reconcile.
type ConfigReconcile struct {
	Every string `json:"every"`
}

// ConfigIngest is ingest.
type ConfigIngest struct {
	DedupeWindow string          `json:"dedupe_window"`
	MaxAge       string          `json:"max_age"`
	SyncInterval string          `json:"sync_interval"`
	Replicas     int             `json:"replicas"`
	Placement    ConfigPlacement `json:"placement"`
}

// ConfigPlacement is ingest.placement.
type ConfigPlacement struct {
	Cluster string   `json:"cluster,omitempty"`
	Tags    []string `json:"tags,omitempty"`
}

// ConfigCluster is cluster: this instance's name ("" when it owns every
// order alone), the partition count and the lease.
type ConfigCluster struct {
	Instance   string `json:"instance,omitempty"`
	Partitions int    `json:"partitions"`
	Lease      string `json:"lease"`
}

// ConfigMemory is memory.
type ConfigMemory struct {
	LimitMB      int `json:"limit_mb"`
	BlockCacheMB int `json:"block_cache_mb"`
	MemtableMB   int `json:"memtable_mb"`
	RowCache     int `json:"row_cache"`
}

// ConfigHTTP is the http section without its secrets: whether TLS is on,
// the allowed origins, the connection cap, and each token's name, role
// and systems (never its hash, file or variable).
type ConfigHTTP struct {
	TLS            bool          `json:"tls"`
	AllowedOrigins []string      `json:"allowed_origins"`
	MaxConnections int           `json:"max_connections"`
	Tokens         []ConfigToken `json:"tokens"`
}

// ConfigToken is one of http.tokens, without where its secret is.
type ConfigToken struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Systems []string `json:"systems,omitempty"`
}

// ConfigNATS is the nats section without its secrets: whether a
// nats-server configuration file is loaded and TLS is on, and each user's
// name, role, systems and kind of credential ("nkey" or "password").
type ConfigNATS struct {
	ConfigFile    bool             `json:"config_file"`
	TLS           bool             `json:"tls"`
	VerifyClients bool             `json:"verify_clients,omitempty"`
	Users         []ConfigNATSUser `json:"users"`
}

// ConfigNATSUser is one of nats.users, without its key or password file.
type ConfigNATSUser struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Systems []string `json:"systems,omitempty"`
	Auth    string   `json:"auth"`
}

// ConfigMapping is the mapping table of a platform: built in, or loaded
// from mappings_dir, whose text (as read when the server started) it then
// carries.
type ConfigMapping struct {
	Platform string `json:"platform"`
	Version  int    `json:"version"`
	// Source is "builtin" or "mappings_dir".
	Source string `json:"source"`
	// File is the table's file name in mappings_dir, YAML its text.
	File string `json:"file,omitempty"`
	YAML string `json:"yaml,omitempty"`
}

// Mapping sources of ConfigMapping.
const (
	MappingBuiltin     = "builtin"
	MappingMappingsDir = "mappings_dir"
)

// ConfigHandler serves GET /v1/config. The view is built once, when the
// handler is made: the configuration does not change while the server
// runs.
type ConfigHandler struct {
	view ConfigView
}

// NewConfigHandler builds the view of cfg. A table of mappings_dir is read
// again from its file here; one that cannot be read is listed without its
// text.
func NewConfigHandler(cfg *config.Config) *ConfigHandler {
	return &ConfigHandler{view: ViewOf(cfg)}
}

func (h *ConfigHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, h.view)
}

// ViewOf is the view of a configuration (see ConfigView).
func ViewOf(cfg *config.Config) ConfigView {
	dur := func(d config.Duration) string { return time.Duration(d).String() }
	v := ConfigView{
		Systems: make([]ConfigSystem, 0, len(cfg.Systems)),
		Flows:   make([]ConfigFlow, 0, len(cfg.Flows)),
		Detect: ConfigDetect{Settle: dur(cfg.Detect.Settle), MaxFutureSkew: dur(cfg.Detect.MaxFutureSkew),
			GateFlagExpiry: dur(cfg.Detect.GateFlagExpiry)},
		Alerts: ConfigAlerts{MismatchRate: cfg.Alerts.MismatchRate, ChannelShare: cfg.Alerts.ChannelShare,
			EscalateAfter: dur(cfg.Alerts.EscalateAfter), SilentFloor: dur(cfg.Alerts.SilentFloor)},
		Reconcile: ConfigReconcile{Every: dur(cfg.Reconcile.Every)},
		Ingest: ConfigIngest{DedupeWindow: dur(cfg.Ingest.DedupeWindow), MaxAge: dur(cfg.Ingest.MaxAge),
			SyncInterval: cfg.Ingest.SyncInterval, Replicas: cfg.Ingest.Replicas,
			Placement: ConfigPlacement{Cluster: cfg.Ingest.Placement.Cluster, Tags: cfg.Ingest.Placement.Tags}},
		Cluster: ConfigCluster{Instance: cfg.Cluster.Instance, Partitions: cfg.Cluster.Partitions, Lease: dur(cfg.Cluster.Lease)},
		Memory: ConfigMemory{LimitMB: cfg.Memory.LimitMB, BlockCacheMB: cfg.Memory.BlockCacheMB,
			MemtableMB: cfg.Memory.MemtableMB, RowCache: cfg.Memory.RowCache},
		HTTP: ConfigHTTP{TLS: cfg.HTTP.TLS.CertFile != "", AllowedOrigins: append([]string{}, cfg.HTTP.AllowedOrigins...),
			MaxConnections: cfg.HTTP.MaxConnections, Tokens: []ConfigToken{}},
		NATS: ConfigNATS{ConfigFile: cfg.NATS.ConfigFile != "", TLS: cfg.NATS.TLS.CertFile != "",
			VerifyClients: cfg.NATS.TLS.VerifyClients, Users: []ConfigNATSUser{}},
		Mappings: []ConfigMapping{},
	}
	for _, s := range cfg.Systems {
		v.Systems = append(v.Systems, ConfigSystem{ID: s.ID, Platform: s.Platform, Role: s.Role, Record: s.Record, Timezone: s.Timezone})
	}
	for _, f := range cfg.Flows {
		v.Flows = append(v.Flows, ConfigFlow{From: f.From, To: f.To, SLA: dur(f.SLA), Dimensions: f.Dimensions})
	}
	if len(cfg.Alerts.Escalate) > 0 {
		v.Alerts.Escalate = make(map[string]string, len(cfg.Alerts.Escalate))
		for p, d := range cfg.Alerts.Escalate {
			v.Alerts.Escalate[p] = dur(d)
		}
	}
	for _, wh := range cfg.Alerts.Webhooks {
		v.Alerts.Webhooks = append(v.Alerts.Webhooks, ConfigWebhook{URL: notify.RedactURL(wh.URL), Format: wh.Format, Kinds: wh.Kinds})
	}
	for _, t := range cfg.HTTP.Tokens {
		v.HTTP.Tokens = append(v.HTTP.Tokens, ConfigToken{Name: t.Name, Role: t.Role, Systems: t.Systems})
	}
	for _, u := range cfg.NATS.Users {
		auth := "nkey"
		if u.NKey == "" {
			auth = "password"
		}
		v.NATS.Users = append(v.NATS.Users, ConfigNATSUser{Name: u.Name, Role: u.Role, Systems: u.Systems, Auth: auth})
	}
	var seen []string
	for _, s := range cfg.Systems {
		if slices.Contains(seen, s.Platform) || cfg.Mappings == nil {
			continue
		}
		seen = append(seen, s.Platform)
		t, ok := cfg.Mappings.Table(s.Platform)
		if !ok {
			continue
		}
		m := ConfigMapping{Platform: t.Platform, Version: t.Version, Source: MappingBuiltin}
		if t.Source != MappingBuiltin {
			m.Source, m.File = MappingMappingsDir, filepath.Base(t.Source)
			if data, err := os.ReadFile(t.Source); err == nil {
				m.YAML = string(data)
			}
		}
		v.Mappings = append(v.Mappings, m)
	}
	return v
}
