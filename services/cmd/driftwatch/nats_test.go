package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/broker"
)

// TestNATSNKey: nats nkey writes a seed file of mode 0600 holding the seed
// of the public key it prints, and keeps an existing file unless --force.
func TestNATSNKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shop.nk")
	var pub string
	out := captureStdout(t, func() error {
		root := newRootCmd()
		root.SetArgs([]string{"nats", "nkey", path})
		return root.ExecuteContext(context.Background())
	})
	pub = strings.TrimSpace(out)
	if !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("printed %q, not a user public key", out)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("seed file mode %v, want 0600", st.Mode().Perm())
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kp.PublicKey(); got != pub {
		t.Fatalf("the seed's key %s is not the printed %s", got, pub)
	}
	if _, err := writeNKey(path, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("an existing seed file was replaced: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := writeNKey(path, true)
	if err != nil || again == pub {
		t.Fatalf("--force: %s %v", again, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("replaced seed file mode %v, want 0600", st.Mode().Perm())
	}
}

// parseNATSFlags registers the connection flags on a command and parses
// args.
func parseNATSFlags(t *testing.T, urlDefault string, args ...string) *natsFlags {
	t.Helper()
	cmd := &cobra.Command{Use: "x"}
	nf := addNATSFlags(cmd.Flags(), urlDefault, "NATS")
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return nf
}

// TestNATSFlagsEnvironment: a flag wins; the nats CLI's variables fill
// what the flags leave out; credential flags go together; an embedding
// command (serve) reads no variable unless --nats-url is given.
func TestNATSFlagsEnvironment(t *testing.T) {
	t.Setenv("NATS_URL", "nats://env:4222")
	t.Setenv("NATS_CREDS", "/env/user.creds")
	t.Setenv("NATS_NKEY", "")
	t.Setenv("NATS_USER", "")
	t.Setenv("NATS_PASSWORD", "")
	t.Setenv("NATS_CA", "/env/ca.pem")
	t.Setenv("NATS_CERT", "")
	t.Setenv("NATS_KEY", "")

	nf := parseNATSFlags(t, nats.DefaultURL)
	if nf.URL() != "nats://env:4222" || nf.client().Creds != "/env/user.creds" || nf.client().TLSCA != "/env/ca.pem" {
		t.Fatalf("from the environment: %s %+v", nf.URL(), nf.client())
	}
	nf = parseNATSFlags(t, nats.DefaultURL, "--nats-url", "nats://flag:4222", "--nkey", "/flag/user.nk", "--tls-ca", "/flag/ca.pem")
	if c := nf.client(); nf.URL() != "nats://flag:4222" || c.NKey != "/flag/user.nk" || c.Creds != "" || c.TLSCA != "/flag/ca.pem" {
		t.Fatalf("flags: %s %+v", nf.URL(), c)
	}
	t.Setenv("NATS_URL", "")
	if nf := parseNATSFlags(t, nats.DefaultURL); nf.URL() != nats.DefaultURL {
		t.Fatalf("default URL %s", nf.URL())
	}

	t.Setenv("NATS_URL", "nats://env:4222")
	nf = parseNATSFlags(t, "")
	if nf.URL() != "" || nf.client() != (broker.ClientOptions{}) {
		t.Fatalf("embedded: %q %+v", nf.URL(), nf.client())
	}
	nf = parseNATSFlags(t, "", "--nats-url", "nats://flag:4222")
	if nf.URL() != "nats://flag:4222" || nf.client().Creds != "/env/user.creds" {
		t.Fatalf("serve --nats-url: %q %+v", nf.URL(), nf.client())
	}
}

// TestClientCommandsAuthenticate: client commands connect with the nats
// CLI's credentials (a flag or NATS_NKEY) to a server that requires them,
// are refused without, and never show a password from the URL.
func TestClientCommandsAuthenticate(t *testing.T) {
	dir := t.TempDir()
	shopSeed, opsSeed := filepath.Join(dir, "shop.nk"), filepath.Join(dir, "ops.nk")
	shopKey, err := writeNKey(shopSeed, false)
	if err != nil {
		t.Fatal(err)
	}
	opsKey, err := writeNKey(opsSeed, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := startBroker(t, broker.Auth{Users: []broker.User{
		{Name: "shop", Role: broker.RolePublisher, Systems: []string{"shop"}, NKey: shopKey},
		{Name: "ops", Role: broker.RoleOperator, NKey: opsKey},
	}})
	run := func(args ...string) error {
		root := newRootCmd()
		root.SetArgs(args)
		return root.ExecuteContext(ctx)
	}
	file := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(file, []byte(`{"event_id":"c1","order_id":"CLI-1","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05Z"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The publisher's seed from NATS_NKEY; the systems from the
	// configuration file, as no driftwatch serve answers here.
	t.Setenv("NATS_NKEY", shopSeed)
	captureStdout(t, func() error {
		return run("publish", "--quiet", "--nats-url", b.ClientURL, "--config", "../../../deploy/driftwatch.example.yaml", file)
	})
	t.Setenv("NATS_NKEY", "")

	// The operator's seed from --nkey.
	out := captureStdout(t, func() error {
		return run("export", "events", "-o", "ndjson", "--nats-url", b.ClientURL, "--nkey", opsSeed, "--config", "../../../deploy/driftwatch.example.yaml")
	})
	if !strings.Contains(out, `"CLI-1"`) {
		t.Fatalf("export as the operator:\n%s", out)
	}

	// No credentials: refused.
	err = run("export", "events", "--nats-url", b.ClientURL)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("export without credentials: %v", err)
	}
	// A password in the URL never shows.
	withPassword := strings.Replace(b.ClientURL, "nats://", "nats://ops:hunter2@", 1)
	err = run("export", "events", "--nats-url", withPassword)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "ops:xxxxx@") {
		t.Fatalf("export with a wrong password in the URL: %v", err)
	}
}

// startBroker starts an embedded NATS server with auth and driftwatch's
// streams, closed at the test's end.
func startBroker(t *testing.T, auth broker.Auth) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", SyncInterval: time.Minute,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.EnsureStreams(ctx, b.JS, broker.StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return b
}
