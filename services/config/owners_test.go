package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestOwnersAndRunbooksLoad: owners and runbooks are read; a runbook file
// is read relative to the configuration's folder and parsed.
func TestOwnersAndRunbooksLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runbooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "runbooks", "cancel.md"), []byte(`# Cancel not propagated

The cancellation of {order_id} in {source} did not reach {target}.

Stop the parcel first.

## Usual causes
- The cancel webhook is not subscribed.
* Someone re-opened it in {target}.

## First checks
1. Call the warehouse.
2. Cancel it in {target},
   then refund.

## Commands
- `+"`driftwatch order {order_id}`"+`
`), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := base + `owners:
  patterns: {cancel_not_propagated: oncall-cancel}
  systems: {erp: team-erp}
  default: ops
runbooks:
  cancel_not_propagated: {file: runbooks/cancel.md, url: "https://wiki.example.com/cancel"}
  unmapped_status: {url: "https://wiki.example.com/mappings"}
`
	cfg, err := Parse(filepath.Join(dir, "driftwatch.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Owners.Patterns["cancel_not_propagated"] != "oncall-cancel" || cfg.Owners.Systems["erp"] != "team-erp" || cfg.Owners.Default != "ops" {
		t.Fatalf("owners %+v", cfg.Owners)
	}
	want := &RunbookText{
		Summary:  "The cancellation of {order_id} in {source} did not reach {target}.\n\nStop the parcel first.",
		Causes:   []string{"The cancel webhook is not subscribed.", "Someone re-opened it in {target}."},
		Checks:   []string{"Call the warehouse.", "Cancel it in {target}, then refund."},
		Commands: []string{"driftwatch order {order_id}"},
	}
	rb := cfg.Runbooks["cancel_not_propagated"]
	if !reflect.DeepEqual(rb.Text, want) || rb.URL != "https://wiki.example.com/cancel" {
		t.Fatalf("runbook %+v\nwant %+v", rb.Text, want)
	}
	if u := cfg.Runbooks["unmapped_status"]; u.Text != nil || u.URL != "https://wiki.example.com/mappings" {
		t.Fatalf("url-only runbook %+v", u)
	}
}

// TestOwnersAndRunbooksNameTheKey: every mistake in owners and runbooks is
// an error naming its key (and, in a runbook file, the line).
func TestOwnersAndRunbooksNameTheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nochecks.md", "Only a summary.\n\n## Causes\n- one\n")
	write("nosummary.md", "## Checks\n- one\n")
	write("placeholder.md", "Order {order}.\n\n## Checks\n- one\n")
	write("heading.md", "Summary.\n\n## Escalation\n- call\n")
	write("prose.md", "Summary.\n\n## Checks\nnot a list item\n")
	write("twice.md", "Summary.\n\n## Checks\n- one\n\n## First checks\n- two\n")
	cases := []struct{ name, yaml, want string }{
		{"unknown pattern owner", "owners:\n  patterns: {order_not_acked: ops}\n", `owners.patterns.order_not_acked: "order_not_acked" is not a pattern: want one of order_not_acknowledged`},
		{"unknown system owner", "owners:\n  systems: {wms: ops}\n", `owners.systems.wms: "wms" is not a configured system`},
		{"reserved owner", "owners:\n  default: none\n", `owners.default: the owner "none" is reserved`},
		{"empty owner", "owners:\n  systems: {erp: \"\"}\n", "owners.systems.erp: the owner is empty"},
		{"padded owner", "owners:\n  patterns: {clock_skew: \" ops\"}\n", "owners.patterns.clock_skew: the owner has white space around it"},
		{"unknown owners key", "owners:\n  teams: {erp: ops}\n", "teams"},
		{"unknown pattern runbook", "runbooks:\n  cancel: {url: \"https://wiki/x\"}\n", `runbooks.cancel: "cancel" is not a pattern`},
		{"empty runbook", "runbooks:\n  clock_skew: {}\n", "runbooks.clock_skew: give a url, a file or both"},
		{"bad url", "runbooks:\n  clock_skew: {url: \"wiki/clock\"}\n", `runbooks.clock_skew.url: "wiki/clock" is not an http or https URL`},
		{"missing file", "runbooks:\n  clock_skew: {file: missing.md}\n", "runbooks.clock_skew.file: open " + filepath.Join(dir, "missing.md")},
		{"no checks", "runbooks:\n  clock_skew: {file: nochecks.md}\n", "runbooks.clock_skew.file: nochecks.md: no checks"},
		{"no summary", "runbooks:\n  clock_skew: {file: nosummary.md}\n", "runbooks.clock_skew.file: nosummary.md: no summary"},
		{"unknown placeholder", "runbooks:\n  clock_skew: {file: placeholder.md}\n", "placeholder.md: line 1: unknown placeholder {order}: want one of {order_id}"},
		{"unknown heading", "runbooks:\n  clock_skew: {file: heading.md}\n", `heading.md: line 3: the heading "## Escalation" names no section`},
		{"prose in a list", "runbooks:\n  clock_skew: {file: prose.md}\n", "prose.md: line 4: under checks, want a list item"},
		{"section twice", "runbooks:\n  clock_skew: {file: twice.md}\n", "twice.md: line 6: a second checks section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "test.yaml"), []byte(base+c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestCheckOwner: the names an owner may have.
func TestCheckOwner(t *testing.T) {
	for name, ok := range map[string]bool{
		"kim": true, "team-erp": true, "Kim Lee": true, "ops@example.com": true, strings.Repeat("é", 128): true,
		"": false, "none": false, "None": false, " kim": false, "kim\n": false, "a\x07b": false, strings.Repeat("k", 129): false,
	} {
		if got := CheckOwner(name) == ""; got != ok {
			t.Errorf("CheckOwner(%q): %q", name, CheckOwner(name))
		}
	}
}

// TestExampleOwnersAndRunbooks: the commented owners and runbooks of
// deploy/driftwatch.example.yaml, uncommented, are a valid configuration.
func TestExampleOwnersAndRunbooks(t *testing.T) {
	data, err := os.ReadFile("../../deploy/driftwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case l == "# owners:" || l == "# runbooks:":
			in = true
		case !strings.HasPrefix(l, "# "):
			in = false
		}
		if in {
			out = append(out, strings.TrimPrefix(l, "# "))
		}
	}
	yaml := strings.Join(out, "\n")
	if !strings.Contains(yaml, "owners:") || !strings.Contains(yaml, "runbooks:") {
		t.Fatalf("no owners or runbooks block in the example:\n%s", yaml)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runbooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "runbooks", "payment-without-order.md"), []byte("Money taken for {order_id}.\n\n## First checks\n- Find the charge.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(dir, "driftwatch.yaml"), []byte(SixSystems+yaml+"\n"))
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	if cfg.Owners.Systems["erp"] != "team-erp" || cfg.Runbooks["payment_without_order"].Text == nil {
		t.Fatalf("owners %+v, runbooks %+v", cfg.Owners, cfg.Runbooks)
	}
}
