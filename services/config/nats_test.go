package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A valid user public NKey (driftwatch nats nkey makes them).
const testNKey = "UBBHMXA5KDEZSU2HOOVUTKUAFMWOCGCTJ2XIL6BJJ2JTXOSJC7TSOMVF"

func TestNATSSection(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pw", "secret-password\n")
	empty := write("empty", "\n")
	cert := write("cert.pem", "x")
	conf := write("nats.conf", "port: 4222\n")
	missing := filepath.Join(dir, "missing")

	good := base + `nats:
  tls: {cert_file: ` + cert + `, key_file: ` + cert + `, ca_file: ` + cert + `, verify_clients: true}
  users:
    - {name: shop-middleware, role: publisher, systems: [shop], nkey: ` + testNKey + `}
    - {name: alerts, role: subscriber, password_file: ` + pw + `}
    - {name: ops, role: operator, password_file: pw}
`
	// A relative password_file is read next to the configuration file.
	cfgPath := filepath.Join(dir, "driftwatch.yaml")
	cfg, err := Parse(cfgPath, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.NATS.Users) != 3 || cfg.NATS.Users[0].Systems[0] != "shop" || !cfg.NATS.TLS.VerifyClients {
		t.Fatalf("nats: %+v", cfg.NATS)
	}
	if got := cfg.NATSPath("pw"); got != pw {
		t.Fatalf("NATSPath(pw) = %s, want %s", got, pw)
	}
	if _, err := Parse(cfgPath, []byte(base+"nats:\n  config_file: nats.conf\n")); err != nil {
		t.Fatalf("config_file: %v", err)
	}

	user := func(u string) string { return base + "nats:\n  users:\n    - " + u + "\n" }
	cases := []struct{ name, yaml, want string }{
		{"unknown role", user(`{name: a, role: admin, nkey: ` + testNKey + `}`), `nats.users[0].role: "admin" is not a role`},
		{"publisher without systems", user(`{name: a, role: publisher, nkey: ` + testNKey + `}`), "nats.users[0].systems: a publisher needs at least one system"},
		{"unknown system", user(`{name: a, role: publisher, systems: [shop, pos], nkey: ` + testNKey + `}`), `nats.users[0].systems[1]: "pos" is not a configured system`},
		{"systems on a subscriber", user(`{name: a, role: subscriber, systems: [shop], nkey: ` + testNKey + `}`), "nats.users[0].systems: only a publisher has systems"},
		{"nkey and password_file", user(`{name: a, role: operator, nkey: ` + testNKey + `, password_file: ` + pw + `}`), "nats.users[0]: give nkey or password_file, not both"},
		{"neither nkey nor password_file", user(`{name: a, role: operator}`), "nats.users[0]: give nkey"},
		{"missing password file", user(`{name: a, role: operator, password_file: ` + missing + `}`), "nats.users[0].password_file: open"},
		{"empty password file", user(`{name: a, role: operator, password_file: ` + empty + `}`), "nats.users[0].password_file: " + empty + " is empty"},
		{"bad nkey", user(`{name: a, role: operator, nkey: SUAXYZ}`), `nats.users[0].nkey: "SUAXYZ" is not a user's public NKey`},
		{"no name", user(`{role: operator, nkey: ` + testNKey + `}`), "nats.users[0].name"},
		{"same name twice", base + "nats:\n  users:\n    - {name: a, role: operator, password_file: " + pw + "}\n    - {name: a, role: subscriber, password_file: " + pw + "}\n", `nats.users[1].name: "a" is already nats.users[0]`},
		{"same nkey twice", base + "nats:\n  users:\n    - {name: a, role: operator, nkey: " + testNKey + "}\n    - {name: b, role: subscriber, nkey: " + testNKey + "}\n", "nats.users[1].nkey: the same key as nats.users[0]"},
		{"unknown key", user(`{name: a, role: operator, nkey: ` + testNKey + `, password: x}`), "password"},
		{"missing config file", base + "nats:\n  config_file: " + missing + "\n", "nats.config_file: stat"},
		{"config file and users", base + "nats:\n  config_file: " + conf + "\n  users:\n    - {name: a, role: operator, nkey: " + testNKey + "}\n", "nats.users: not with nats.config_file"},
		{"cert without key", base + "nats:\n  tls: {cert_file: " + cert + "}\n", "nats.tls.key_file: is required"},
		{"missing cert", base + "nats:\n  tls: {cert_file: " + missing + ", key_file: " + cert + "}\n", "nats.tls.cert_file: stat"},
		{"verify without CA", base + "nats:\n  tls: {cert_file: " + cert + ", key_file: " + cert + ", verify_clients: true}\n", "nats.tls.verify_clients: needs nats.tls.ca_file"},
		{"CA without verify", base + "nats:\n  tls: {cert_file: " + cert + ", key_file: " + cert + ", ca_file: " + cert + "}\n", "nats.tls.ca_file: verifies client certificates only with"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret-password") {
				t.Fatalf("the error shows a password: %v", err)
			}
		})
	}
}
