package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/events"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// driftwatchBinary builds the command once per test run.
func driftwatchBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "driftwatch-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "driftwatch")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// child is a `driftwatch serve` process.
type child struct {
	cmd      *exec.Cmd
	natsURL  string
	httpAddr string
	logs     chan string
}

// startServe runs `driftwatch serve` on random ports and waits for its
// "driftwatch started" log line, which names the addresses.
func startServe(t *testing.T, dataDir string, extra ...string) *child {
	t.Helper()
	args := append([]string{"serve", "--config", "../../../deploy/driftwatch.example.yaml", "--data", dataDir,
		"--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json"}, extra...)
	cmd := exec.Command(driftwatchBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: make(chan string, 1000)}
	t.Cleanup(func() { c.kill() })
	started := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["message"] == "driftwatch started" {
				started <- rec
			}
			select {
			case c.logs <- line:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case rec := <-started:
		c.natsURL, _ = rec["nats"].(string)
		c.httpAddr, _ = rec["http"].(string)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start; logs: %v", drain(c.logs))
	}
	return c
}

func drain(ch chan string) []string {
	var out []string
	for {
		select {
		case l := <-ch:
			out = append(out, l)
		default:
			return out
		}
	}
}

func (c *child) kill() {
	if c.cmd.Process != nil && c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// TestAcknowledgedEventsSurviveSIGKILL publishes N events, each
// acknowledged by JetStream, kills the server with SIGKILL, restarts it on
// the same data folder and finds all N.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := t.TempDir()
	c := startServe(t, dataDir)
	nc, err := nats.Connect(c.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := events.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	ctx := context.Background()
	batch := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		batch = append(batch, []byte(fmt.Sprintf(`{"event_id":"k-%d","order_id":"ORD-%d","system":"shop","status":"paid","status_field":"financial_status","occurred_at":"2026-11-27T10:04:05-04:00"}`, i, i%50)))
	}
	results, err := pub.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Outcome != events.Accepted {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	nc.Close()
	c.kill() // SIGKILL right after the last acknowledgement

	c2 := startServe(t, dataDir)
	nc2, err := nats.Connect(c2.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js, _ := jetstream.New(nc2)
	s, err := js.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("after SIGKILL and restart the log holds %d events, want %d", info.State.Msgs, n)
	}
	// Still deduplicating after the restart.
	pub2, _ := events.NewPublisher(nc2)
	res, err := pub2.PublishRaw(ctx, batch[7])
	if err != nil || res.Outcome != events.Duplicate {
		t.Fatalf("re-publish after restart: %+v %v", res, err)
	}
}

// TestRebuildRefusesAStoreInUse: with serve running on the data folder,
// rebuild refuses at once and says why (the lock is Pebble's own, checked
// as an error, not by its text); once serve has stopped, it rebuilds.
func TestRebuildRefusesAStoreInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := t.TempDir()
	c := startServe(t, dataDir)
	rebuild := func() (int, string) {
		cmd := exec.Command(driftwatchBinary(t), "rebuild", "--config", "../../../deploy/driftwatch.example.yaml", "--data", dataDir, "--quiet")
		out, err := cmd.CombinedOutput()
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatal(err)
			}
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	if code, out := rebuild(); code != 1 || !strings.Contains(out, "in use") || !strings.Contains(out, "stop it first") {
		t.Fatalf("rebuild beside a running serve: exit %d, %s", code, out)
	}
	c.kill()
	if code, out := rebuild(); code != 0 || !strings.Contains(out, "rebuilt") {
		t.Fatalf("rebuild after serve stopped: exit %d, %s", code, out)
	}
}

// TestDataFilesArePrivate: what serve writes under --data (the log, the
// store) is readable by its user only, whatever the umask it was started
// with.
func TestDataFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c := startServe(t, dir)
	c.kill()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: open to group or others", path, info.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d entries under %s", n, dir)
	}
}

// TestServeRefusesAnOpenNetworkListener: serve on every interface without
// http.tokens exits non-zero, before listening, saying how to configure
// authentication and naming --insecure.
func TestServeRefusesAnOpenNetworkListener(t *testing.T) {
	cmd := exec.Command(driftwatchBinary(t), "serve", "--config", "../../../deploy/driftwatch.example.yaml", "--data", t.TempDir(),
		"--nats-listen", "127.0.0.1:0", "--http", "0.0.0.0:0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started:\n%s", out)
	}
	for _, want := range []string{"--insecure", "http.tokens"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not name %s:\n%s", want, out)
		}
	}
}
