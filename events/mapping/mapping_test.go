package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/events/canonical"
)

var requiredPlatforms = []string{"shopify", "amazon", "ebay", "walmart", "woocommerce", "bigcommerce", "magento", "netsuite", "odoo", "businesscentral", "stripe", "paypal", "easypost", "shippo", "aftership", "generic"}

func TestBuiltinTablesLoad(t *testing.T) {
	set, err := LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range requiredPlatforms {
		tab, ok := set.Table(p)
		if !ok {
			t.Errorf("no built-in table for %s", p)
			continue
		}
		if tab.Version < 1 || tab.DefaultField == "" {
			t.Errorf("%s: version %d default_field %q", p, tab.Version, tab.DefaultField)
		}
	}
}

type sample struct {
	Field   string `yaml:"field"`
	Raw     string `yaml:"raw"`
	State   string `yaml:"state"`
	Payment string `yaml:"payment"`
	Ignore  bool   `yaml:"ignore"`
}

// TestRealWireStrings checks a sample of real wire strings per platform,
// taken from the reference vocabularies, map to the expected states.
func TestRealWireStrings(t *testing.T) {
	set, err := LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/samples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var samples map[string][]sample
	if err := yaml.Unmarshal(data, &samples); err != nil {
		t.Fatal(err)
	}
	for _, p := range requiredPlatforms {
		if len(samples[p]) == 0 {
			t.Errorf("no samples for %s", p)
		}
	}
	for platform, list := range samples {
		tab, ok := set.Table(platform)
		if !ok {
			t.Errorf("samples for %s, which has no table", platform)
			continue
		}
		for _, s := range list {
			got, _, ok := tab.Lookup(s.Field, s.Raw)
			if !ok {
				t.Errorf("%s %s=%q: unmapped", platform, s.Field, s.Raw)
				continue
			}
			want := Result{Ignore: s.Ignore}
			if s.State != "" {
				want.State, _ = canonical.ParseState(s.State)
			}
			if s.Payment != "" {
				want.Payment, _ = canonical.ParsePayment(s.Payment)
			}
			if got != want {
				t.Errorf("%s %s=%q: got %v, want %v", platform, s.Field, s.Raw, got, want)
			}
		}
	}
}

func TestBothCancelSpellings(t *testing.T) {
	set, _ := LoadBuiltin()
	for _, c := range []struct{ platform, field, a, b string }{
		{"amazon", "OrderStatus", "Canceled", "Cancelled"},
		{"amazon", "fulfillmentStatus", "CANCELED", "CANCELLED"},
		{"walmart", "orderLineStatus", "Canceled", "Cancelled"},
	} {
		tab, _ := set.Table(c.platform)
		for _, raw := range []string{c.a, c.b} {
			if r, _, ok := tab.Lookup(c.field, raw); !ok || r.State != canonical.Cancelled {
				t.Errorf("%s %s=%q: %v %v", c.platform, c.field, raw, r, ok)
			}
		}
	}
}

func TestLookupTrimsAndDefaults(t *testing.T) {
	tab, err := Parse("generic.yaml", []byte("platform: generic\nversion: 2\ndefault_field: status\nfields:\n  status:\n    shipped: shipped\n  pay:\n    paid: {payment: paid}\n    both: {state: confirmed, payment: authorized}\n    noise: ignore\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, f, ok := tab.Lookup("", "  shipped "); !ok || f != "status" || r.State != canonical.Shipped {
		t.Fatalf("default field lookup: %v %q %v", r, f, ok)
	}
	if _, _, ok := tab.Lookup("", "Shipped"); ok {
		t.Fatal("case-sensitive table matched another case")
	}
	if r, _, ok := tab.Lookup("pay", "both"); !ok || r.State != canonical.Confirmed || r.Payment != canonical.Authorized {
		t.Fatalf("two-dimension value: %v", r)
	}
	if r, _, _ := tab.Lookup("pay", "noise"); !r.Ignore {
		t.Fatal("ignore")
	}
	if _, _, ok := tab.Lookup("nosuch", "shipped"); ok {
		t.Fatal("unknown field matched")
	}
	if !tab.CanExpressPayment(canonical.Paid) || tab.CanExpressState(canonical.Delivered) {
		t.Fatal("expressible sets wrong")
	}
	if got := tab.ExpressibleState(canonical.Delivered); got != canonical.Shipped {
		t.Fatalf("ExpressibleState(delivered) = %v, want shipped", got)
	}
	ci, err := Parse("x.yaml", []byte("platform: x\nversion: 1\ncase_insensitive: true\nfields:\n  s:\n    Shipped: shipped\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := ci.Lookup("", "SHIPPED"); !ok {
		t.Fatal("case-insensitive table did not match")
	}
}

func TestBrokenTablesRefused(t *testing.T) {
	cases := []struct {
		name, yaml, key, reason string
		line                    int
	}{
		{"unknown state", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n    b: dispatched\n", `fields.s."b"`, "unknown canonical state", 6},
		{"payment as state", "platform: x\nversion: 1\nfields:\n  s:\n    a: paid\n", `fields.s."a"`, "is a payment state", 5},
		{"unknown payment", "platform: x\nversion: 1\nfields:\n  s:\n    a: {payment: settled}\n", `fields.s."a"`, "unknown payment state", 5},
		{"duplicate key", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n    a: shipped\n", `fields.s."a"`, "duplicate key", 6},
		{"duplicate after trim", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n    \"a \": shipped\n", `fields.s."a "`, "duplicate key", 6},
		{"missing version", "platform: x\nfields:\n  s:\n    a: confirmed\n", "version", "is missing", 1},
		{"bad version", "platform: x\nversion: one\nfields:\n  s:\n    a: confirmed\n", "version", "integer", 2},
		{"platform mismatch", "platform: y\nversion: 1\nfields:\n  s:\n    a: confirmed\n", "platform", "does not match the file name", 1},
		{"unknown key", "platform: x\nversion: 1\ncolour: red\nfields:\n  s:\n    a: confirmed\n", "colour", "unknown key", 3},
		{"bad default_field", "platform: x\nversion: 1\ndefault_field: t\nfields:\n  s:\n    a: confirmed\n", "default_field", "not one of the table's fields", 3},
		{"missing default with two fields", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n  t:\n    b: shipped\n", "default_field", "is missing", 1},
		{"empty mapping", "platform: x\nversion: 1\nfields:\n  s:\n    a: {}\n", `fields.s."a"`, "empty mapping", 5},
		{"not yaml", "platform: [x\n", "", "not valid YAML", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("dir/x.yaml", []byte(c.yaml))
			var te *TableError
			if !errors.As(err, &te) || !errors.Is(err, ErrInvalidTable) {
				t.Fatalf("want *TableError, got %v", err)
			}
			if te.File != "dir/x.yaml" || te.Key != c.key || !strings.Contains(te.Reason, c.reason) || (c.line != 0 && te.Line != c.line) {
				t.Fatalf("got file %q line %d key %q reason %q", te.File, te.Line, te.Key, te.Reason)
			}
			if !strings.Contains(err.Error(), "dir/x.yaml") {
				t.Fatalf("message does not name the file: %v", err)
			}
		})
	}
}

func TestMappingsDirReplacesBuiltin(t *testing.T) {
	dir := t.TempDir()
	custom := "platform: shopify\nversion: 99\ndefault_field: fulfillment_status\nfields:\n  fulfillment_status:\n    shipped_custom: shipped\n"
	if err := os.WriteFile(filepath.Join(dir, "shopify.yaml"), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tab, _ := set.Table("shopify")
	if tab.Version != 99 || tab.Source != filepath.Join(dir, "shopify.yaml") {
		t.Fatalf("custom table not used: v%d from %s", tab.Version, tab.Source)
	}
	if _, _, ok := tab.Lookup("", "fulfilled"); ok {
		t.Fatal("replaced table still has built-in entries")
	}
	if _, ok := set.Table("amazon"); !ok {
		t.Fatal("other built-in tables lost")
	}
	if err := os.WriteFile(filepath.Join(dir, "amazon.yaml"), []byte("platform: amazon\nfields:\n  s:\n    a: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "amazon.yaml") {
		t.Fatalf("an invalid table in mappings_dir must refuse the set, naming the file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	entries, _ := os.ReadDir("../../schemas/mappings")
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join("../../schemas/mappings", e.Name()))
		f.Add(data)
	}
	f.Add([]byte("platform: x\nversion: 1\nfields:\n  s:\n    a: {state: confirmed, payment: paid}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Parse("x.yaml", data)
		if err != nil {
			var te *TableError
			if !errors.As(err, &te) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		if tab.Platform != "x" || tab.Version < 1 {
			t.Fatalf("accepted a table without platform x or a version: %+v", tab)
		}
		if _, ok := tab.fields[tab.DefaultField]; !ok {
			t.Fatal("default field not among fields")
		}
	})
}
