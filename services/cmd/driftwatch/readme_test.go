package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the checkout's root, where README.md and deploy/ are.
const repoRoot = "../../.."

// readmeBlock returns the lines of the ```sh block that follows the
// "<!-- run-it:NAME" marker in README.md's "Run it" section. A line ending
// in a backslash goes on on the next one.
func readmeBlock(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	marker := "<!-- run-it:" + name
	i := strings.Index(text, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q marker", marker)
	}
	rest := text[i:]
	open := strings.Index(rest, "```sh\n")
	if open < 0 || strings.Contains(rest[:open], "\n\n") {
		t.Fatalf("README.md: no ```sh block right after %q", marker)
	}
	rest = rest[open+len("```sh\n"):]
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatalf("README.md: the block after %q does not end", marker)
	}
	var lines []string
	cont := ""
	for _, l := range strings.Split(rest[:end], "\n") {
		if strings.HasSuffix(l, "\\") {
			cont += strings.TrimSuffix(l, "\\")
			continue
		}
		l = strings.TrimSpace(cont + l)
		cont = ""
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("README.md: the block after %q is empty", marker)
	}
	return lines
}

// childEnv is the test process's environment without driftwatch's and the
// nats CLI's variables (which would change what the commands do), plus
// PATH leading to the built binary and extra.
func childEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DRIFTWATCH_") || strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+filepath.Dir(driftwatchBinary(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, extra...)
}

// readmeFixtures writes the files the client block names, as an operator
// would have them: events as NDJSON and as a CSV export, the ERP's export
// of its order states, and candidate mapping tables (the built-in NetSuite
// table, unchanged, so the backtest finds no regression).
func readmeFixtures(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"events.ndjson": `{"event_id":"e1","order_id":"ORD-1001","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05-04:00"}
{"event_id":"n1","order_id":"ORD-1001","system":"erp","status":"Pending Fulfillment","occurred_at":"2026-11-27T14:05:00Z"}
`,
		"export.csv": "event_id,order_id,system,status,occurred_at\n" +
			"w1,ORD-1001,wms,picked,2026-11-27T15:00:00Z\n" +
			"e2,ORD-1002,shop,unfulfilled,2026-11-27T16:00:00Z\n",
		"erp.csv": "order_id,status\nORD-1001,Pending Fulfillment\nORD-1002,Pending Approval\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	table, err := os.ReadFile(filepath.Join(repoRoot, "schemas", "mappings", "netsuite.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "maps"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "maps", "netsuite.yaml"), table, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReadmeRunIt runs README.md's "Run it" section as written: the serve
// block (with deploy/driftwatch.example.yaml, from the checkout's root),
// then every line of the client block, in order, each a child process of
// a shell running the built binary, from a temporary folder that holds
// the operator's files and no driftwatch.yaml, then, with serve stopped,
// the serve-stopped block. Any non-zero exit fails the test.
//
// serve's addresses are random: the test gives serve DRIFTWATCH_HTTP and
// DRIFTWATCH_NATS_LISTEN of port 0 (and DRIFTWATCH_DATA, a temporary
// folder), reads the ports from its "driftwatch started" log line, and
// gives the client commands DRIFTWATCH_HTTP and DRIFTWATCH_NATS_URL: every
// flag has its variable, so the lines run unchanged. After a line that
// publishes, the test waits until serve has applied everything, as a
// person typing the next command would have.
func TestReadmeRunIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	work := t.TempDir()
	readmeFixtures(t, work)

	serveLines := readmeBlock(t, "serve")
	const goRun = "go run ./services/cmd/driftwatch "
	if len(serveLines) != 1 || !strings.HasPrefix(serveLines[0], goRun+"serve ") {
		t.Fatalf("the serve block is not one %q line: %q", goRun+"serve", serveLines)
	}
	serve := exec.Command("sh", "-c", "exec driftwatch "+strings.TrimPrefix(serveLines[0], goRun))
	serve.Dir = repoRoot
	serve.Env = childEnv(t, "DRIFTWATCH_DATA="+dataDir, "DRIFTWATCH_HTTP=127.0.0.1:0",
		"DRIFTWATCH_NATS_LISTEN=127.0.0.1:0", "DRIFTWATCH_LOG_FORMAT=json")
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if serve.ProcessState == nil {
			_ = serve.Process.Signal(syscall.SIGKILL)
			_ = serve.Wait()
		}
	})
	started := make(chan map[string]any, 1)
	var serveLog bytes.Buffer
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			serveLog.WriteString(sc.Text() + "\n")
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["message"] == "driftwatch started" {
				started <- rec
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var httpAddr, natsURL string
	select {
	case rec := <-started:
		httpAddr, _ = rec["http"].(string)
		natsURL, _ = rec["nats"].(string)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	if _, err := os.Stat(filepath.Join(work, "driftwatch.yaml")); err == nil {
		t.Fatal("the client folder holds a driftwatch.yaml")
	}

	for _, line := range readmeBlock(t, "clients") {
		if !strings.HasPrefix(line, "driftwatch ") {
			t.Fatalf("the client block holds %q: only driftwatch commands run there", line)
		}
		out := runLine(t, work, line, "DRIFTWATCH_HTTP="+httpAddr, "DRIFTWATCH_NATS_URL="+natsURL)
		switch {
		case strings.HasPrefix(line, "driftwatch publish "), strings.HasPrefix(line, "driftwatch snapshot import "):
			waitServeApplied(t, httpAddr)
		case strings.HasPrefix(line, "driftwatch order "):
			if !strings.Contains(out, "order ORD-1001") || !strings.Contains(out, "MISMATCHES") && !strings.Contains(out, "no open mismatches") {
				t.Errorf("%s printed:\n%s", line, out)
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(work, "events.csv")); err != nil || !strings.Contains(string(data), "ORD-1001") {
		t.Errorf("export events wrote %q (%v)", data, err)
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.Wait(); err != nil {
		<-logDone
		t.Fatalf("serve stopped with %v:\n%s", err, serveLog.String())
	}
	for _, line := range readmeBlock(t, "serve-stopped") {
		if !strings.HasPrefix(line, "driftwatch ") {
			t.Fatalf("the serve-stopped block holds %q: only driftwatch commands run there", line)
		}
		runLine(t, repoRoot, line, "DRIFTWATCH_DATA="+dataDir)
	}
}

// runLine runs a README line with sh in dir and fails the test unless it
// exits 0; it returns what the line printed on stdout.
func runLine(t *testing.T, dir, line string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = childEnv(t, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("README line %q: %v\nstdout:\n%s\nstderr:\n%s", line, err, stdout.String(), stderr.String())
	}
	t.Logf("%s: exit 0, %d bytes out", line, stdout.Len())
	return stdout.String()
}

// waitServeApplied waits until serve's consumers have nothing pending
// (GET /v1/status).
func waitServeApplied(t *testing.T, httpAddr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Consumers []struct {
				Name    string `json:"name"`
				Pending uint64 `json:"pending"`
			} `json:"consumers"`
		}
		pending := "no status"
		resp, err := http.Get("http://" + httpAddr + "/v1/status")
		if err == nil {
			if json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.Consumers) > 0 {
				pending = ""
				for _, c := range st.Consumers {
					if c.Pending > 0 {
						pending = fmt.Sprintf("%s has %d pending", c.Name, c.Pending)
					}
				}
			}
			resp.Body.Close()
		}
		if pending == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not apply the events: %s", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
