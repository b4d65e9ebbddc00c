package broker

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startFails starts the embedded server with opts and returns its error,
// failing the test if it started or took more than 3 seconds to refuse.
func startFails(t *testing.T, opts Options) error {
	t.Helper()
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	opts.SyncInterval = time.Minute
	start := time.Now()
	b, err := Start(opts)
	if err == nil {
		b.Close()
		t.Fatal("the embedded server started")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("refused after %v: %v", took, err)
	}
	return err
}

// TestStartFailsAtOnceOnAPortInUse: a client port another process holds
// is reported at once, as the system's reason, naming the address.
func TestStartFailsAtOnceOnAPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = startFails(t, Options{DataDir: t.TempDir(), Listen: ln.Addr().String()})
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("error %q", err)
	}
}

// TestStartFailsAtOnceOnAReadOnlyDataFolder: a data folder that cannot be
// written is reported at once with the system's reason.
func TestStartFailsAtOnceOnAReadOnlyDataFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: a folder's mode does not restrict root")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "jetstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "jetstream"), 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "jetstream"), 0o700) })
	err := startFails(t, Options{DataDir: dir, Listen: "127.0.0.1:-1"})
	if !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("error %q", err)
	}
}

// TestStartReportsTheServersReason: when the server itself cannot start
// (here JetStream, whose own store folder is a file), its logged reason
// ends the wait at once and is the error.
func TestStartReportsTheServersReason(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "jetstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jetstream", "jetstream"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := startFails(t, Options{DataDir: dir, Listen: "127.0.0.1:-1"})
	if !strings.Contains(err.Error(), "JetStream") || strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q", err)
	}
}

// TestCheckWritable: a folder that takes a file passes and keeps no probe;
// one that does not is named with the reason.
func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckWritable(dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %v behind", entries)
	}
	missing := filepath.Join(dir, "missing")
	if err := CheckWritable(missing); err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("a missing folder: %v", err)
	}
}
