package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
)

// TestStartRefusesADataFolderItCannotWrite: a read-only data folder stops
// Start at once with the system's reason, and keeps its mode (only group
// and other permissions are taken from a data folder).
func TestStartRefusesADataFolderItCannotWrite(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: a folder's mode does not restrict root")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	a, err := app.New(app.Options{Config: apptest.Config(t, ""), DataDir: dir, NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0",
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = a.Start(context.Background())
	if err == nil {
		_ = a.Stop(context.Background())
		t.Fatal("started in a read-only data folder")
	}
	if !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "permission denied") || time.Since(start) > 3*time.Second {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o500 {
		t.Fatalf("the data folder is now %v", st.Mode().Perm())
	}
}

// TestStartTightensTheDataFolder: a data folder open to group or others
// is made the owner's only.
func TestStartTightensTheDataFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := apptest.Start(t, apptest.Config(t, ""), dir)
	env.Stop()
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("the data folder is %v, want 0700", st.Mode().Perm())
	}
}
