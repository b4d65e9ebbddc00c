package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/driftwatch/driftwatch/services/config"
)

// TestConfigViewHasNoSecrets: GET /v1/config gives the configuration in
// effect (systems, flows, settings, the names and roles of tokens and NATS
// users, the text of mappings_dir's tables) and none of its secrets: no
// token hash, token file or variable name, no NATS key or password file,
// no TLS file, no webhook path or query.
func TestConfigViewHasNoSecrets(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "alerts-bridge.pw")
	if err := os.WriteFile(pwFile, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	maps := filepath.Join(dir, "maps")
	if err := os.Mkdir(maps, 0o700); err != nil {
		t.Fatal(err)
	}
	table := "platform: generic\nversion: 9\ndefault_field: status\nfields:\n  status:\n    \"pending\": pending\n    \"shipped\": shipped\n"
	if err := os.WriteFile(filepath.Join(maps, "generic.yaml"), []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	nkey, _ := kp.PublicKey()
	secrets := []string{hexHash(readToken), "/run/secrets/ops-token", "DRIFTWATCH_TOKEN_DASH", nkey, pwFile, "alerts-bridge.pw",
		"/etc/secret-tls", "T000/B000/XXXX", "sig=abc", maps}
	yaml := config.SixSystems + config.ReferenceFlows("5m", "15m", "10m", "30m", "10m") + `alerts:
  webhooks:
    - {url: "https://hooks.slack.com/services/T000/B000/XXXX", format: slack}
    - {url: "https://alerts.example.com/in?sig=abc"}
http:
  tls: {cert_file: /etc/secret-tls/cert.pem, key_file: /etc/secret-tls/key.pem}
  tokens:
    - {name: reader, role: read, sha256: "` + hexHash(readToken) + `"}
    - {name: ops, role: operate, file: /run/secrets/ops-token}
    - {name: dash, role: read, env: DRIFTWATCH_TOKEN_DASH}
nats:
  users:
    - {name: shop-middleware, role: publisher, systems: [shop], nkey: ` + nkey + `}
    - {name: alerts-bridge, role: subscriber, password_file: ` + pwFile + `}
mappings_dir: ` + maps + `
ingest:
  replicas: 3
  placement: {cluster: east, tags: [ssd]}
cluster: {instance: dw-b, partitions: 32, lease: 4s}
`
	cfg, err := config.Parse(filepath.Join(dir, "driftwatch.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	NewConfigHandler(cfg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/config", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("GET /v1/config shows %q:\n%s", s, body)
		}
	}
	var v ConfigView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Systems) != 6 || v.Systems[2].ID != "erp" || !v.Systems[2].Record || len(v.Flows) != 5 || v.Flows[1].SLA != "15m0s" {
		t.Errorf("systems and flows: %+v %+v", v.Systems, v.Flows)
	}
	if v.Cluster != (ConfigCluster{Instance: "dw-b", Partitions: 32, Lease: "4s"}) || v.Ingest.Replicas != 3 || v.Ingest.Placement.Cluster != "east" || len(v.Ingest.Placement.Tags) != 1 {
		t.Errorf("cluster and placement: %+v %+v", v.Cluster, v.Ingest)
	}
	if len(v.HTTP.Tokens) != 3 || v.HTTP.Tokens[1].Name != "ops" || v.HTTP.Tokens[1].Role != "operate" || !v.HTTP.TLS {
		t.Errorf("http: %+v", v.HTTP)
	}
	if len(v.NATS.Users) != 2 || v.NATS.Users[0].Auth != "nkey" || v.NATS.Users[1].Auth != "password" || v.NATS.Users[1].Name != "alerts-bridge" {
		t.Errorf("nats: %+v", v.NATS)
	}
	if len(v.Alerts.Webhooks) != 2 || v.Alerts.Webhooks[0].URL != "https://hooks.slack.com/…" || v.Alerts.Webhooks[1].URL != "https://alerts.example.com/…" {
		t.Errorf("webhooks: %+v", v.Alerts.Webhooks)
	}
	var generic, netsuite *ConfigMapping
	for i, m := range v.Mappings {
		switch m.Platform {
		case "generic":
			generic = &v.Mappings[i]
		case "netsuite":
			netsuite = &v.Mappings[i]
		}
	}
	if generic == nil || generic.Source != MappingMappingsDir || generic.Version != 9 || generic.File != "generic.yaml" || generic.YAML != table {
		t.Errorf("the mappings_dir table: %+v", generic)
	}
	if netsuite == nil || netsuite.Source != MappingBuiltin || netsuite.YAML != "" {
		t.Errorf("a built-in table: %+v", netsuite)
	}
}
