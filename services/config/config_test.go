package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadFile("../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Systems) != 6 || cfg.RecordSystem().ID != "erp" {
		t.Fatalf("systems: %+v", cfg.Systems)
	}
	if cfg.Ingest.MaxAge.D() != 90*24*time.Hour || cfg.Detect.Settle.D() != 2*time.Second {
		t.Fatalf("durations: %v %v", cfg.Ingest.MaxAge.D(), cfg.Detect.Settle.D())
	}
	if f := cfg.FlowsFrom("stripe"); len(f) != 1 || f[0].Covers(DimFulfilment) || !f[0].Covers(DimPayment) {
		t.Fatalf("stripe flow: %+v", f)
	}
	if !cfg.SyncAlways() || !cfg.Known("wms") || cfg.Known("nope") {
		t.Fatal("sync/known")
	}
	if cfg.Alerts.Escalate["cancel_not_propagated"].D() != time.Hour {
		t.Fatal("escalate override")
	}
}

const base = `systems:
  - {id: shop, platform: shopify, role: storefront}
  - {id: erp, platform: netsuite, role: erp, record: true}
flows:
  - {from: shop, to: erp, sla: 5m}
`

func TestInvalidConfigsNameTheKey(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", base + "detect:\n  setle: 2s\n", "setle"},
		{"unknown top key", base + "colour: red\n", "colour"},
		{"unknown system in flow", strings.Replace(base, "to: erp", "to: wms", 1), `flows[0].to: "wms" is not a configured system`},
		{"flow to itself", strings.Replace(base, "to: erp", "to: shop", 1), "flows[0]: a flow from \"shop\" to itself"},
		{"bad duration", strings.Replace(base, "sla: 5m", "sla: 5 minutes", 1), `bad duration "5 minutes"`},
		{"no record", strings.Replace(base, ", record: true", "", 1), "exactly one system must have record: true (found 0)"},
		{"two records", strings.Replace(base, "role: storefront}", "role: storefront, record: true}", 1), "found 2"},
		{"bad id", strings.Replace(base, "id: shop", "id: Shop", 1), `systems[0].id: "Shop" is not a system id`},
		{"bad role", strings.Replace(base, "role: storefront", "role: shopfront", 1), `systems[0].role: "shopfront" is not a role`},
		{"unknown platform", strings.Replace(base, "platform: shopify", "platform: shopifi", 1), `systems[0].platform: "shopifi" has no mapping table`},
		{"bad dimension", strings.Replace(base, "sla: 5m}", "sla: 5m, dimensions: [money]}", 1), `flows[0].dimensions[0]: "money"`},
		{"bad rate", base + "alerts:\n  mismatch_rate: 2\n", "alerts.mismatch_rate"},
		{"bad sync", base + "ingest:\n  sync_interval: sometimes\n", "ingest.sync_interval"},
		{"tiny memtable", base + "memory:\n  memtable_mb: 2\n", "memory.memtable_mb: 2"},
		{"negative limit", base + "memory:\n  limit_mb: -1\n", "memory.limit_mb: -1"},
		{"tiny row cache", base + "memory:\n  row_cache: 10\n", "memory.row_cache: 10"},
		{"empty", "", "the file is empty"},
		{"mappings dir missing", base + "mappings_dir: /nonexistent/maps\n", "mappings_dir"},
		{"bad timezone", strings.Replace(base, "role: storefront}", "role: storefront, timezone: Mars/Olympus}", 1), `systems[0].timezone: "Mars/Olympus" is not an IANA time zone name`},
		{"local timezone", strings.Replace(base, "role: storefront}", "role: storefront, timezone: Local}", 1), `systems[0].timezone: "Local"`},
		{"bad gate expiry", base + "detect:\n  gate_flag_expiry: 0s\n", "detect.gate_flag_expiry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("not a config error: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test.yaml") {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestEveryProblemReported(t *testing.T) {
	bad := strings.Replace(strings.Replace(base, "role: storefront", "role: x", 1), "to: erp", "to: nope", 1)
	_, err := Parse("t.yaml", []byte(bad))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) < 2 {
		t.Fatalf("want two problems, got %v", err)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d12h": 36 * time.Hour, "5m": 5 * time.Minute, "1.5d": 36 * time.Hour, "250ms": 250 * time.Millisecond} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "5", "xd", "-1d", "1d5"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRelativeMappingsDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "maps"), 0o755); err != nil {
		t.Fatal(err)
	}
	table := "platform: shopify\nversion: 7\nfields:\n  fulfillment_status:\n    fulfilled: shipped\n"
	if err := os.WriteFile(filepath.Join(dir, "maps", "shopify.yaml"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "driftwatch.yaml")
	if err := os.WriteFile(path, []byte(base+"mappings_dir: maps\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Mappings.Versions()["shopify"]; v != 7 {
		t.Fatalf("shopify version %d, want 7 from mappings_dir", v)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	if data, err := os.ReadFile("../../deploy/driftwatch.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("systems: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		if cfg.RecordSystem() == nil || cfg.Mappings == nil {
			t.Fatal("accepted config without a record system or mappings")
		}
	})
}

func TestTimezones(t *testing.T) {
	cfg, err := Parse("test.yaml", []byte(strings.Replace(base, "role: storefront}", "role: storefront, timezone: America/Chicago}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	zones := cfg.Zones()
	if zones == nil {
		t.Fatal("no zone function for a configuration with a zone")
	}
	if zones("shop") == nil || zones("shop").String() != "America/Chicago" || zones("erp") != nil || zones("nope") != nil {
		t.Fatalf("zones of a configuration with shop in America/Chicago: shop %v, erp %v", zones("shop"), zones("erp"))
	}
	plain, err := Parse("test.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Zones() != nil {
		t.Fatal("a configuration without zones gives a zone function")
	}
}

// TestReferenceFlowsAreTheExample's: the flows block tests, the demo and the
// load tool build is the example configuration's, SLAs aside.
func TestReferenceFlowsAreTheExamples(t *testing.T) {
	example, err := LoadFile("../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	built, err := Parse("built.yaml", []byte(SixSystems+ReferenceFlows("5m", "15m", "10m", "30m", "10m")))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(built.Flows) != fmt.Sprint(example.Flows) || fmt.Sprint(built.Systems) != fmt.Sprint(example.Systems) {
		t.Fatalf("built %v\n%v\nexample %v\n%v", built.Systems, built.Flows, example.Systems, example.Flows)
	}
}
