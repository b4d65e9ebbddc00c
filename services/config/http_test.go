package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const someHash = "7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730"

// TestHTTPConfigNamesTheKey: every problem of the http section is
// reported with its key, and no message repeats a token.
func TestHTTPConfigNamesTheKey(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"half tls", "http:\n  tls: {cert_file: c.pem}\n", "http.tls: cert_file and key_file go together"},
		{"origin with path", "http:\n  allowed_origins: [\"https://ops.example.com/\"]\n", "http.allowed_origins[0]"},
		{"origin without scheme", "http:\n  allowed_origins: [ops.example.com]\n", "http.allowed_origins[0]"},
		{"wildcard origin", "http:\n  allowed_origins: [\"*\"]\n", "http.allowed_origins[0]"},
		{"few connections", "http:\n  max_connections: 2\n", "http.max_connections: 2"},
		{"no name", "http:\n  tokens:\n    - {role: read, sha256: " + someHash + "}\n", "http.tokens[0].name: is required"},
		{"same name", "http:\n  tokens:\n    - {name: a, role: read, env: A}\n    - {name: a, role: read, env: B}\n", "http.tokens[1].name"},
		{"bad role", "http:\n  tokens:\n    - {name: a, role: admin, env: A}\n", `http.tokens[0].role: "admin" is not a role`},
		{"ingest without systems", "http:\n  tokens:\n    - {name: a, role: ingest, env: A}\n", "http.tokens[0].systems: an ingest token needs"},
		{"read with systems", "http:\n  tokens:\n    - {name: a, role: read, systems: [shop], env: A}\n", "http.tokens[0].systems: only an ingest token"},
		{"unknown system", "http:\n  tokens:\n    - {name: a, role: ingest, systems: [pos], env: A}\n", `http.tokens[0].systems[0]: "pos" is not a configured system`},
		{"no source", "http:\n  tokens:\n    - {name: a, role: read}\n", "http.tokens[0]: give exactly one of sha256, file or env"},
		{"two sources", "http:\n  tokens:\n    - {name: a, role: read, env: A, file: t}\n", "http.tokens[0]: give exactly one of sha256, file or env"},
		{"bad hash", "http:\n  tokens:\n    - {name: a, role: read, sha256: abc}\n", "http.tokens[0].sha256: want 64 hex digits"},
		{"bad env name", "http:\n  tokens:\n    - {name: a, role: read, env: \"A-B\"}\n", "http.tokens[0].env"},
		{"unknown key", "http:\n  tokens:\n    - {name: a, role: read, env: A, secret: x}\n", "secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(base+c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	_, err := Parse("t.yaml", []byte(base+"http:\n  tokens:\n    - {name: a, role: read, token: plain-secret-token-value}\n"))
	if err == nil || !strings.Contains(err.Error(), "http.tokens[0].token: a token is never written in the configuration") ||
		strings.Contains(err.Error(), "plain-secret-token-value") {
		t.Fatalf("inline token: %v", err)
	}
}

// TestResolveTokens: a token's hash comes as given, or from its file
// (relative to the configuration, white space dropped) or its variable,
// hashed; a missing file or variable, a short token and a repeated token
// are errors naming the key and never showing the token.
func TestResolveTokens(t *testing.T) {
	dir := t.TempDir()
	const fileToken, envToken = "file-token-0123456789abcdef", "env-token-0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, "shop.token"), []byte("  "+fileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DW_TEST_TOKEN", envToken)
	yaml := base + `http:
  tokens:
    - {name: shop, role: ingest, systems: [shop], file: shop.token}
    - {name: ops, role: operate, env: DW_TEST_TOKEN}
    - {name: dash, role: read, sha256: "` + strings.ToUpper(someHash) + `"}
`
	path := filepath.Join(dir, "driftwatch.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.MaxConnections != DefaultMaxConnections {
		t.Fatalf("max connections %d", cfg.HTTP.MaxConnections)
	}
	tokens, err := cfg.ResolveTokens()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		hash [32]byte
	}{{"shop", sha256.Sum256([]byte(fileToken))}, {"ops", sha256.Sum256([]byte(envToken))}}
	var h [32]byte
	b, _ := hex.DecodeString(someHash)
	copy(h[:], b)
	want = append(want, struct {
		name string
		hash [32]byte
	}{"dash", h})
	if len(tokens) != 3 {
		t.Fatalf("%d tokens", len(tokens))
	}
	for i, w := range want {
		if tokens[i].Name != w.name || tokens[i].Hash != w.hash {
			t.Errorf("token %d: %s %x, want %s %x", i, tokens[i].Name, tokens[i].Hash, w.name, w.hash)
		}
	}
	if tokens[0].Role != TokenIngest || tokens[0].Systems[0] != "shop" {
		t.Errorf("token 0: %+v", tokens[0])
	}

	for name, c := range map[string]struct{ yaml, want string }{
		"missing file":  {"    - {name: a, role: read, file: nope.token}\n", "http.tokens[0].file: open"},
		"unset env":     {"    - {name: a, role: read, env: DW_TEST_UNSET}\n", "http.tokens[0].env: the variable DW_TEST_UNSET is not set"},
		"short token":   {"    - {name: a, role: read, env: DW_TEST_SHORT}\n", "http.tokens[0].env: the token is shorter than 16"},
		"same token":    {"    - {name: a, role: read, env: DW_TEST_TOKEN}\n    - {name: b, role: operate, file: shop2.token}\n", "http.tokens[1]: the same token as http.tokens[0]"},
		"same as given": {"    - {name: a, role: read, file: shop.token}\n    - {name: b, role: read, sha256: " + hex.EncodeToString(want[0].hash[:]) + "}\n", "http.tokens[1]: the same token"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("DW_TEST_SHORT", "tiny-tok")
			_ = os.WriteFile(filepath.Join(dir, "shop2.token"), []byte(envToken), 0o600)
			p := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(p, []byte(base+"http:\n  tokens:\n"+c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cfg.ResolveTokens()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			for _, secret := range []string{envToken, fileToken, "tiny-tok"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a token: %v", err)
				}
			}
		})
	}
}
