package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/replay"
)

// exampleConfig is the reference configuration, from this folder.
const exampleConfig = "../../../deploy/driftwatch.example.yaml"

// runCLI runs driftwatch in-process with args and returns what it printed
// on stdout and the error main would turn into an exit status.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var err error
	out := captureStdout(t, func() error {
		root := newRootCmd()
		root.SetArgs(args)
		err = root.ExecuteContext(context.Background())
		return nil
	})
	return out, err
}

// isUsage reports whether main exits with status 2 on err.
func isUsage(err error) bool {
	var ue usageError
	return err != nil && (errors.As(err, &ue) || isCobraUsage(err))
}

// checkOutput fails unless out is well-formed in the format.
func checkOutput(t *testing.T, format, out string) {
	t.Helper()
	switch format {
	case outJSON:
		if !json.Valid([]byte(out)) {
			t.Errorf("-o json printed no JSON document:\n%s", out)
		}
	case outNDJSON:
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" && !json.Valid([]byte(l)) {
				t.Errorf("-o ndjson printed a line that is not JSON: %s", l)
			}
		}
	case outCSV:
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(rows) == 0 {
			t.Errorf("-o csv printed no CSV (%v):\n%s", err, out)
		}
	default:
		if strings.TrimSpace(out) == "" || json.Valid([]byte(out)) {
			t.Errorf("-o %s printed %q", format, out)
		}
	}
}

// outputCase is a command and the -o values it takes.
type outputCase struct {
	args    []string
	formats []string
	run     bool // run it with each format (else only refused values)
}

// TestOutputValues: every command that prints takes -o/--output with the
// same names; each value it lists prints that format, and any other value
// (on the command line or in DRIFTWATCH_OUTPUT) is a usage error (exit
// status 2) that lists the valid ones, before anything runs.
func TestOutputValues(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	t.Setenv("DRIFTWATCH_HTTP", env.BaseURL)
	t.Setenv("DRIFTWATCH_NATS_URL", env.App.Broker.ClientURL)
	dir := t.TempDir()
	evFile, snapFile, cand := filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "erp.csv"), filepath.Join(dir, "maps")
	ev := `{"event_id":"o1","order_id":"ORD-OUT-1","system":"shop","status":"unfulfilled","occurred_at":"` + time.Now().UTC().Format(time.RFC3339) + `"}` + "\n"
	readmeFixtures(t, dir) // maps/netsuite.yaml, the built-in table unchanged
	for path, body := range map[string]string{evFile: ev, snapFile: "order_id,status\nORD-OUT-1,Pending Fulfillment\n"} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []outputCase{
		{[]string{"publish", "-q", evFile}, []string{"table", "json"}, true},
		{[]string{"snapshot", "import", "-q", "--system", "erp", snapFile}, []string{"table", "json"}, true},
		{[]string{"order", "ORD-OUT-1"}, []string{"table", "wide", "json"}, true},
		{[]string{"replay", "--order", "ORD-OUT-1"}, []string{"table", "json", "csv"}, true},
		{[]string{"replay", "-q", "--since", "1h"}, []string{"table", "json", "csv"}, true},
		{[]string{"reconcile"}, []string{"table", "json", "csv"}, true},
		{[]string{"reconcile", "--latest"}, []string{"table", "json", "csv"}, true},
		{[]string{"export", "events"}, []string{"csv", "ndjson"}, true},
		{[]string{"export", "mismatches"}, []string{"csv", "ndjson"}, true},
		{[]string{"mapping", "test", "--candidate", cand}, []string{"table", "json"}, true},
		{[]string{"version"}, []string{"table", "json"}, true},
		{[]string{"rebuild"}, []string{"table", "json"}, false}, // run below, with serve stopped
		{[]string{"bench"}, []string{"table", "json"}, false},
	}
	for i, c := range cases {
		var words []string // the command's words, without flags and files
		for _, a := range c.args {
			if strings.HasPrefix(a, "-") || strings.Contains(a, "/") || len(words) == 2 {
				break
			}
			words = append(words, a)
		}
		name := strings.Join(words, " ")
		t.Run(name, func(t *testing.T) {
			if c.run {
				for _, f := range c.formats {
					out, err := runCLI(t, append(append([]string{}, c.args...), "-o", f)...)
					if err != nil {
						t.Fatalf("-o %s: %v", f, err)
					}
					checkOutput(t, f, out)
				}
				if i < 2 {
					env.WaitApplied(t)
				}
			}
			for _, bad := range [][]string{{"-o", "bogus"}, {"--output=yaml"}, {"-o", ""}} {
				_, err := runCLI(t, append(append([]string{}, c.args...), bad...)...)
				if !isUsage(err) {
					t.Fatalf("%v: %v, want a usage error", bad, err)
				}
				for _, f := range c.formats {
					if !strings.Contains(err.Error(), f) {
						t.Errorf("%v: %q does not list %s", bad, err, f)
					}
				}
			}
		})
	}
	t.Run("DRIFTWATCH_OUTPUT", func(t *testing.T) {
		t.Setenv("DRIFTWATCH_OUTPUT", "xml")
		_, err := runCLI(t, "version")
		if !isUsage(err) || !strings.Contains(err.Error(), "table or json") {
			t.Fatalf("DRIFTWATCH_OUTPUT=xml: %v", err)
		}
	})
	t.Run("former --format", func(t *testing.T) {
		out, err := runCLI(t, "reconcile", "--latest", "--format", "text")
		if err != nil || !strings.Contains(out, "reconciliation") {
			t.Fatalf("reconcile --format text: %v\n%s", err, out)
		}
		if _, err := runCLI(t, "export", "mismatches", "--format", "xml"); !isUsage(err) {
			t.Fatalf("export --format xml: %v", err)
		}
	})
	env.Stop()
	t.Run("rebuild with serve stopped", func(t *testing.T) {
		t.Setenv("DRIFTWATCH_NATS_URL", "") // the embedded server, on the data folder
		for _, f := range []string{"table", "json"} {
			out, err := runCLI(t, "rebuild", "-q", "--config", exampleConfig, "--data", env.DataDir, "-o", f)
			if err != nil {
				t.Fatalf("-o %s: %v", f, err)
			}
			checkOutput(t, f, out)
		}
	})
}

// TestFilterValues: a --system the configuration does not have is a usage
// error listing the configured ones, whichever command filters by it and
// wherever the configuration comes from; --pattern, --severity and --state
// take the contract's values only, listed when refused.
func TestFilterValues(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	t.Setenv("DRIFTWATCH_HTTP", env.BaseURL)
	t.Setenv("DRIFTWATCH_NATS_URL", env.App.Broker.ClientURL)
	file := filepath.Join(t.TempDir(), "erp.csv")
	if err := os.WriteFile(file, []byte("order_id,status\nORD-F-1,Pending Fulfillment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	systems := []string{"shop", "amazon", "erp", "wms", "stripe", "carrier"}
	for _, args := range [][]string{
		{"replay", "--since", "1h", "--system", "nope"},
		{"replay", "--since", "1h", "--system", "nope", "--config", exampleConfig},
		{"export", "events", "--system", "nope"},
		{"export", "mismatches", "--system", "nope"},
		{"snapshot", "import", "--system", "nope", file},
		{"snapshot", "import", "--system", "nope", "--http", "", "--config", exampleConfig, file},
	} {
		_, err := runCLI(t, args...)
		if !isUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
			continue
		}
		for _, s := range systems {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%v: %q does not list %s", args, err, s)
			}
		}
	}

	var state, pattern, severity string
	newCmd := func() *cobra.Command {
		c := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }, SilenceErrors: true, SilenceUsage: true}
		stateFlag(c.Flags(), &state, "open", "state")
		patternFlag(c.Flags(), &pattern, "pattern")
		severityFlag(c.Flags(), &severity, "severity")
		return c
	}
	for _, tc := range []struct {
		flag  string
		valid []string
	}{
		{"--state", StateFilters},
		{"--pattern", detector.Patterns},
		{"--severity", detector.Severities},
	} {
		for _, v := range tc.valid {
			c := newCmd()
			c.SetArgs([]string{tc.flag, v})
			if err := c.Execute(); err != nil {
				t.Errorf("%s %s: %v", tc.flag, v, err)
			}
		}
		c := newCmd()
		c.SetArgs([]string{tc.flag, "nope"})
		err := c.Execute()
		if !isUsage(err) {
			t.Errorf("%s nope: %v, want a usage error", tc.flag, err)
			continue
		}
		for _, v := range tc.valid {
			if !strings.Contains(err.Error(), v) {
				t.Errorf("%s nope: %q does not list %s", tc.flag, err, v)
			}
		}
	}
	c := newCmd()
	c.SetArgs(nil)
	if err := c.Execute(); err != nil || state != "open" || pattern != "" || severity != "" {
		t.Errorf("defaults: %v, state %q pattern %q severity %q", err, state, pattern, severity)
	}
}

// TestUsageErrorsExitTwo: the binary exits with status 2 on an unknown
// output format or filter value, and says what it takes.
func TestUsageErrorsExitTwo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"order", "ORD-1", "-o", "yaml"}, "table, wide or json"},
		{[]string{"reconcile", "-o", "text/csv"}, "table, json or csv"},
		{[]string{"export", "events", "-o", "table"}, "csv or ndjson"},
		{[]string{"replay", "--since", "1h", "--system", "nope", "--config", exampleConfig}, "shop, amazon, erp, wms, stripe or carrier"},
		{[]string{"order", "ORD-1", "--http", "nats://127.0.0.1:4222"}, "--http"},
	} {
		cmd := exec.Command(driftwatchBinary(t), tc.args...)
		cmd.Env = childEnv(t)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v\n%s", tc.args, err, out)
		}
	}
}

// TestHTTPAddresses: --http takes host:port and http(s):// URLs in every
// command, read by one function; a listen address takes the same forms.
func TestHTTPAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":              "http://127.0.0.1:8080",
		"localhost:8080":              "http://localhost:8080",
		"[::1]:8080":                  "http://[::1]:8080",
		"http://127.0.0.1:8080":       "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":      "http://127.0.0.1:8080",
		"https://dw.example.com":      "https://dw.example.com",
		"https://ops.example.com/dw/": "https://ops.example.com/dw",
		" 127.0.0.1:8080 ":            "http://127.0.0.1:8080",
	} {
		got, err := apiBaseURL(in)
		if err != nil || got != want {
			t.Errorf("apiBaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "localhost", "nats://127.0.0.1:4222", "http://", "http://u:p@h:1", "http://h:1/?x=1", "ftp://h:1"} {
		if got, err := apiBaseURL(in); !isUsage(err) {
			t.Errorf("apiBaseURL(%q) = %q, %v; want a usage error", in, got, err)
		}
	}
	for _, tc := range []struct {
		in   string
		tls  bool
		want string
		ok   bool
	}{
		{"127.0.0.1:8080", false, "127.0.0.1:8080", true},
		{"http://127.0.0.1:8080", false, "127.0.0.1:8080", true},
		{"http://localhost/", false, "localhost:80", true},
		{"https://0.0.0.0", true, "0.0.0.0:443", true},
		{"", false, "", true},
		{"https://127.0.0.1:8443", false, "", false},
		{"http://127.0.0.1:8080", true, "", false},
		{"http://127.0.0.1:8080/api", false, "", false},
		{"127.0.0.1", false, "", false},
	} {
		got, err := listenAddr(tc.in, tc.tls)
		if tc.ok && (err != nil || got != tc.want) || !tc.ok && !isUsage(err) {
			t.Errorf("listenAddr(%q, tls %v) = %q, %v", tc.in, tc.tls, got, err)
		}
	}

	env := apptest.Start(t, apptest.Config(t, ""), "")
	file := filepath.Join(t.TempDir(), "events.ndjson")
	ev := `{"event_id":"h1","order_id":"ORD-H-1","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05Z"}` + "\n"
	if err := os.WriteFile(file, []byte(ev), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimPrefix(env.BaseURL, "http://")
	for _, addr := range []string{hostPort, env.BaseURL, env.BaseURL + "/"} {
		for _, args := range [][]string{
			{"publish", "-q", "--http", addr, file},
			{"snapshot", "import", "-q", "--system", "erp", "--http", addr, file},
			{"reconcile", "--http", addr},
			{"replay", "--order", "ORD-H-1", "--http", addr},
		} {
			if _, err := runCLI(t, args...); err != nil {
				t.Errorf("%v: %v", args, err)
			}
		}
		env.WaitApplied(t)
	}
}

// TestHelpShowsBoolFlagsPlainly: a bool flag is listed as --quiet, as it
// is given, not as pflag's --quiet[=true|false]; help names the output
// formats.
func TestHelpShowsBoolFlagsPlainly(t *testing.T) {
	help := func(path ...string) string {
		root := newRootCmd()
		var buf bytes.Buffer
		root.SetOut(&buf)
		root.SetArgs(append(path, "--help"))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v --help: %v", path, err)
		}
		return buf.String()
	}
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(newRootCmd(), nil)
	if len(paths) < 15 {
		t.Fatalf("only %d commands", len(paths))
	}
	for _, p := range paths {
		h := help(p...)
		if strings.Contains(h, "[=true|false]") || strings.Contains(h, "[=true]") || !strings.Contains(h, "-h, --help  ") {
			t.Errorf("driftwatch %s --help:\n%s", strings.Join(p, " "), h)
		}
		// mismatches keeps its own -o values for now (see cli.go's
		// outputFlag); every other command lists the shared ones.
		if len(p) > 0 && p[0] != "mismatches" && strings.Contains(h, "--output ") && !strings.Contains(h, "output format: ") {
			t.Errorf("driftwatch %s --help does not list its output formats:\n%s", strings.Join(p, " "), h)
		}
	}
	if h := help("serve"); !strings.Contains(h, "      --insecure  ") {
		t.Errorf("serve --help:\n%s", h)
	}
	if h := help("publish"); !strings.Contains(h, "  -q, --quiet  ") {
		t.Errorf("publish --help:\n%s", h)
	}
}

// TestVersion: `driftwatch version` and `driftwatch --version` print the
// module version and the Go version (and the commit when the build
// recorded one).
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := runCLI(t, args...)
		if err != nil || !strings.HasPrefix(out, "driftwatch ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("%v: %v %q", args, err, out)
		}
	}
	out, err := runCLI(t, "version", "-o", "json")
	var b struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err != nil || json.Unmarshal([]byte(out), &b) != nil || b.Version == "" || b.GoVersion != runtime.Version() {
		t.Errorf("version -o json: %v %q", err, out)
	}
}

// TestOrderShowsOpenMismatches: `order ID` asks for the order's open
// mismatches and lists them under its timeline (wide: with messages;
// json: the order's view holds them).
func TestOrderShowsOpenMismatches(t *testing.T) {
	m := &detector.Mismatch{}
	m.AlertID, m.OrderID, m.Pattern, m.Severity, m.State, m.Message = "dw-abc", "ORD-7", "order_not_acknowledged", "high", "open", "erp never acknowledged it"
	m.FlowTo = "erp"
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/orders/ORD-7":
			httpjson.Write(w, http.StatusOK, api.OrderView{OrderID: "ORD-7", OpenMismatches: []any{m}})
		case "/v1/orders/ORD-7/timeline":
			httpjson.Write(w, http.StatusOK, replay.TimelineView{})
		case "/v1/mismatches":
			query = r.URL.RawQuery
			httpjson.Write(w, http.StatusOK, api.MismatchPage{Total: 1, Mismatches: []*detector.Mismatch{m}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	out, err := runCLI(t, "order", "ORD-7", "--http", srv.URL)
	if err != nil || !strings.Contains(out, "OPEN MISMATCHES") || !strings.Contains(out, "order_not_acknowledged") || !strings.Contains(out, "dw-abc") {
		t.Fatalf("order: %v\n%s", err, out)
	}
	if !strings.Contains(query, "order=ORD-7") || !strings.Contains(query, "state=open") {
		t.Errorf("asked for mismatches with %q", query)
	}
	if out, _ := runCLI(t, "order", "ORD-7", "--http", srv.URL, "-o", "wide"); !strings.Contains(out, "erp never acknowledged it") {
		t.Errorf("order -o wide:\n%s", out)
	}
	out, _ = runCLI(t, "order", "ORD-7", "--http", srv.URL, "-o", "json")
	var doc struct {
		Order struct {
			OpenMismatches []detector.Mismatch `json:"open_mismatches"`
		} `json:"order"`
	}
	if json.Unmarshal([]byte(out), &doc) != nil || len(doc.Order.OpenMismatches) != 1 {
		t.Errorf("order -o json:\n%s", out)
	}
}

// TestClientCommandsReadServesConfiguration: without --config, a client
// command works with the running server's configuration (GET /v1/config),
// the tables of its mappings_dir included; without a server or a file, it
// says which flag or variable gives the file. rebuild, which runs without
// serve, says so when its file is missing.
func TestClientCommandsReadServesConfiguration(t *testing.T) {
	maps := t.TempDir()
	table, err := os.ReadFile("../../../schemas/mappings/netsuite.yaml")
	if err != nil {
		t.Fatal(err)
	}
	custom := strings.Replace(string(table), "version: 2", "version: 7", 1)
	if err := os.WriteFile(filepath.Join(maps, "netsuite.yaml"), []byte(custom), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := apptest.StackYAML + "mappings_dir: " + maps + "\n"
	yaml = strings.Replace(yaml, "{id: wms,     platform: generic,  role: warehouse}", "{id: wms,     platform: generic,  role: warehouse, timezone: America/Chicago}", 1)
	env := apptest.Start(t, apptest.Config(t, yaml), "")

	cfg, done, err := clientConfig("", env.BaseURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb, ok := cfg.Mappings.Table("netsuite"); !ok || tb.Version != 7 {
		t.Errorf("the server's netsuite table did not come along: %+v", tb)
	}
	if len(cfg.Systems) != 6 || len(cfg.Flows) != 5 || cfg.Flows[0].SLA.D() != 2*time.Second || cfg.Detect.Settle.D() != 200*time.Millisecond {
		t.Errorf("configuration read back: %+v %+v %+v", cfg.Systems, cfg.Flows, cfg.Detect)
	}
	if z := cfg.Zones(); z == nil || z("wms") == nil || z("wms").String() != "America/Chicago" {
		t.Errorf("zones read back wrong")
	}
	dir := cfg.MappingsPath
	done()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the server's tables were left in %s", dir)
	}

	// No server, no file.
	_, err = runCLI(t, "replay", "--since", "1h", "--http", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "--config") || !strings.Contains(err.Error(), "DRIFTWATCH_CONFIG") {
		t.Errorf("replay without a server or a file: %v", err)
	}
	_, err = runCLI(t, "rebuild", "--config", filepath.Join(t.TempDir(), "driftwatch.yaml"))
	if err == nil || !strings.Contains(err.Error(), "--config FILE or DRIFTWATCH_CONFIG") {
		t.Errorf("rebuild without its file: %v", err)
	}
}

// TestNATSPathRefusesUnknownSystemsAtOnce: over NATS, publish and snapshot
// import refuse an event of a system the configuration does not have
// before publishing it (nothing reaches the log), as the API does; without
// a configuration to tell the systems they stop and say how to give one.
func TestNATSPathRefusesUnknownSystemsAtOnce(t *testing.T) {
	b := startBroker(t, broker.Auth{})
	ctx := context.Background()
	var err error
	t.Setenv("DRIFTWATCH_NATS_URL", b.ClientURL)
	dir := t.TempDir()
	file := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(file, []byte(`{"event_id":"u1","order_id":"ORD-U-1","system":"nosuch","status":"x","occurred_at":"2026-11-27T10:04:05Z"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		s, err := b.JS.Stream(ctx, events.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	stderr := captureStderr(t, func() {
		_, err = runCLI(t, "publish", "-q", "--config", exampleConfig, file)
	})
	if err == nil || !strings.Contains(err.Error(), "1 events rejected") {
		t.Errorf("publish of an unknown system: %v %s", err, stderr)
	}
	if _, err := runCLI(t, "snapshot", "import", "-q", "--config", exampleConfig, "--system", "nosuch", file); !isUsage(err) {
		t.Errorf("snapshot import of an unknown system: %v", err)
	}
	if n := msgs(); n != 0 {
		t.Errorf("%d events of an unknown system reached the log", n)
	}

	// Without --config the systems come from serve's API at its default
	// address; where none answers, the error says what to give.
	if c, err := net.DialTimeout("tcp", defaultHTTP, time.Second); err == nil {
		c.Close()
		t.Skip("something answers at " + defaultHTTP)
	}
	_, err = runCLI(t, "publish", "-q", file)
	if err == nil || !strings.Contains(err.Error(), "--config FILE") || !strings.Contains(err.Error(), "--http ADDR") {
		t.Errorf("publish over NATS without the systems: %v", err)
	}
	if n := msgs(); n != 0 {
		t.Errorf("%d events reached the log", n)
	}
}

// TestNATSConnectErrorSaysWhere: a NATS that does not answer is reported
// as the HTTP API is, with the flag that names it.
func TestNATSConnectErrorSaysWhere(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = runCLI(t, "export", "events", "--config", exampleConfig, "--nats-url", "nats://"+addr)
	if err == nil || !strings.Contains(err.Error(), "is driftwatch serve running? see --nats-url") {
		t.Errorf("export events against no NATS: %v", err)
	}
}

// TestServeFailsAtOnce: serve stops at once, with the real reason, when
// the embedded NATS port is held by another process or the data folder
// cannot be written, instead of waiting for a server that never starts.
func TestServeFailsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	serve := func(t *testing.T, dataDir, natsListen string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command(driftwatchBinary(t), "serve", "--config", exampleConfig, "--data", dataDir,
			"--nats-listen", natsListen, "--http", "127.0.0.1:0", "--log-format", "json")
		cmd.Env = childEnv(t)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("serve: %v\n%s", err, out)
		}
		return string(out), time.Since(start)
	}
	t.Run("NATS port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out, took := serve(t, t.TempDir(), ln.Addr().String())
		if !strings.Contains(out, "address already in use") || !strings.Contains(out, "--nats-listen") || took > 5*time.Second {
			t.Errorf("after %v:\n%s", took, out)
		}
	})
	t.Run("store is not a folder", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "jetstream"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		out, took := serve(t, dir, "127.0.0.1:0")
		if !strings.Contains(out, "not a directory") || took > 5*time.Second {
			t.Errorf("after %v:\n%s", took, out)
		}
	})
	t.Run("read-only data folder", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: a folder's mode does not restrict root")
		}
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		out, took := serve(t, dir, "127.0.0.1:0")
		if !strings.Contains(out, "not writable") || !strings.Contains(out, "permission denied") || took > 5*time.Second {
			t.Errorf("after %v:\n%s", took, out)
		}
	})
}
