package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"nats://127.0.0.1:4222":               "nats://127.0.0.1:4222",
		"nats://bob:s3cret@nats.example:4222": "nats://bob:xxxxx@nats.example:4222",
		"tls://bob:p@ss:w/rd@host:4222":       "tls://bob:xxxxx@host:4222",
		"nats://s3cr3tt0ken@host":             "nats://xxxxx@host",
		"bob:pw@host:4222":                    "bob:xxxxx@host:4222",
		"nats://a:1@h1:4222,nats://b:2@h2:4222,nats://h3:4222": "nats://a:xxxxx@h1:4222,nats://b:xxxxx@h2:4222,nats://h3:4222",
		"nats://bob:@host": "nats://bob:xxxxx@host",
		"nats://@host":     "nats://@host",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"s3cret", "p@ss", "s3cr3tt0ken", ":pw@", ":1@", ":2@"} {
			if strings.Contains(in, secret) && strings.Contains(Redact(in), secret) {
				t.Errorf("Redact(%q) keeps %q", in, secret)
			}
		}
	}
}

func TestClientOptionsChecks(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "user.nk")
	kp, _ := nkeys.CreateUser()
	s, _ := kp.Seed()
	if err := os.WriteFile(seed, s, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    ClientOptions
		want string // "" = no error
	}{
		{"none", ClientOptions{}, ""},
		{"nkey", ClientOptions{NKey: seed}, ""},
		{"user and password", ClientOptions{User: "u", Password: "p"}, ""},
		{"token", ClientOptions{User: "tok"}, ""},
		{"two credentials", ClientOptions{NKey: seed, User: "u"}, "give one of"},
		{"password alone", ClientOptions{Password: "p"}, "--password needs --user"},
		{"cert without key", ClientOptions{TLSCert: seed}, "go together"},
		{"missing creds file", ClientOptions{Creds: filepath.Join(dir, "nope.creds")}, "--creds"},
		{"missing CA", ClientOptions{TLSCA: filepath.Join(dir, "nope.pem")}, "--tls-ca"},
	} {
		_, err := c.o.Options()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// TestConfigFile: with a nats-server configuration file the embedded server
// loads its users and driftwatch still gets in with its internal identity;
// a file with accounts needs driftwatch's own credentials, and with them
// driftwatch's streams live in that user's account.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	t.Run("users", func(t *testing.T) {
		conf := writeFile(t, dir, "users.conf", `
authorization {
  users = [
    {user: app, password: app-password, permissions: {publish: ["driftwatch.in.shop"], subscribe: ["_INBOX.>"]}}
  ]
}
`)
		b := startBroker(t, Auth{ConfigFile: conf}, ClientOptions{})
		c, err := dial(b.ClientURL, nats.UserInfo("app", "app-password"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		if err := publishJS("driftwatch.in.shop", c.js, events.EventsStream)(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, detail := c.try("driftwatch.in.erp", publishJS("driftwatch.in.erp", c.js, events.EventsStream)); got != refused {
			t.Fatalf("the file's permissions do not apply: %s (%s)", got, detail)
		}
		if _, err := dial(b.ClientURL); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("anonymous: %v", err)
		}
	})

	accounts := writeFile(t, dir, "accounts.conf", `
accounts {
  DW: {
    jetstream: enabled
    users: [{user: dw, password: dw-password}]
  }
}
`)
	t.Run("accounts without credentials", func(t *testing.T) {
		_, err := Start(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: zerolog.Nop(), Auth: Auth{ConfigFile: accounts}})
		if err == nil || !strings.Contains(err.Error(), "accounts") {
			t.Fatalf("Start: %v, want an error about accounts", err)
		}
	})
	t.Run("accounts with credentials", func(t *testing.T) {
		b := startBroker(t, Auth{ConfigFile: accounts}, ClientOptions{User: "dw", Password: "dw-password"})
		c, err := dial(b.ClientURL, nats.UserInfo("dw", "dw-password"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.js.Stream(ctx, events.EventsStream); err != nil {
			t.Fatalf("the streams are not in the user's account: %v", err)
		}
	})
	t.Run("credentials without a file", func(t *testing.T) {
		_, err := Start(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: zerolog.Nop(), Client: ClientOptions{User: "dw", Password: "x"}})
		if err == nil || !strings.Contains(err.Error(), "config file") {
			t.Fatalf("Start: %v", err)
		}
	})
}

// TestPasswordFile: a plain password is hashed before the
// server gets it, and a broken hash is reported without its content.
func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	hash, err := passwordHash(writeFile(t, dir, "plain", "correct horse\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$2a$") || strings.Contains(hash, "correct horse") {
		t.Fatalf("not hashed: %q", hash)
	}
	_, err = passwordHash(writeFile(t, dir, "broken", "$2a$10$tooshort"))
	if err == nil || strings.Contains(err.Error(), "tooshort") {
		t.Fatalf("broken hash: %v", err)
	}
	if _, err := passwordHash(writeFile(t, dir, "empty", "\n")); err == nil {
		t.Fatal("an empty password file was taken")
	}
}

// TestExistingNATSWithCredentials: against an existing NATS (--nats-url)
// driftwatch connects with the client credentials it is given, and an
// error never shows a password of the URL.
func TestExistingNATSWithCredentials(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "nats.conf", "authorization { users = [ {user: dw, password: dw-password} ] }\n")
	existing := startBroker(t, Auth{ConfigFile: conf}, ClientOptions{})
	b, err := Start(Options{URL: existing.ClientURL, Logger: zerolog.Nop(), Client: ClientOptions{User: "dw", Password: "dw-password"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other, err := b.Connect("second")
	if err != nil {
		t.Fatalf("Connect with the same credentials: %v", err)
	}
	other.Close()
	if _, err := b.JS.Stream(context.Background(), events.EventsStream); err != nil {
		t.Fatal(err)
	}
	withPassword := strings.Replace(existing.ClientURL, "nats://", "nats://dw:not-the-password@", 1)
	_, err = Start(Options{URL: withPassword, Logger: zerolog.Nop()})
	if err == nil || strings.Contains(err.Error(), "not-the-password") || !strings.Contains(err.Error(), "dw:xxxxx@") {
		t.Fatalf("Start with a wrong password in the URL: %v", err)
	}
}
