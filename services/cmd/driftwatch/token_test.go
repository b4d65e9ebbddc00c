package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// TestTokenNew: `token new` prints a 32-byte base64url token and the
// sha256 line of exactly that token.
func TestTokenNew(t *testing.T) {
	out := captureStdout(t, func() error {
		root := newRootCmd()
		root.SetArgs([]string{"token", "new"})
		return root.ExecuteContext(context.Background())
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "sha256: ") {
		t.Fatalf("output %q", out)
	}
	raw, err := base64.RawURLEncoding.DecodeString(lines[0])
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q: %v", lines[0], err)
	}
	h := sha256.Sum256([]byte(lines[0]))
	if strings.TrimPrefix(lines[1], "sha256: ") != hex.EncodeToString(h[:]) {
		t.Fatalf("hash line %q", lines[1])
	}
	if _, ok := api.ParseBearer("Bearer " + lines[0]); !ok {
		t.Fatal("the token is not a bearer token")
	}
}

// TestClientCommandsSendTheToken: a client command sends the token of
// --token-file, --token or DRIFTWATCH_TOKEN as a bearer token; a flag on
// the command line wins over the variable.
func TestClientCommandsSendTheToken(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "this route needs a token")
			return
		}
		httpjson.Write(w, http.StatusOK, api.MismatchPage{})
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		var err error
		captureStdout(t, func() error {
			root := newRootCmd()
			root.SetArgs(append([]string{"mismatches", "--http", srv.URL, "-o", "json"}, args...))
			err = root.ExecuteContext(context.Background())
			return nil
		})
		return err
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Fatalf("without a token: %v", err)
	}
	if err := run("--token-file", file); err != nil {
		t.Fatal(err)
	}
	if err := run("--token", "flag-token-0123456789"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRIFTWATCH_TOKEN", "env-token-0123456789")
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := run("--token-file", file); err != nil { // the flag wins over the variable
		t.Fatal(err)
	}
	if err := run("--token", "a", "--token-file", file); err == nil {
		t.Fatal("--token and --token-file together were taken")
	}
	want := []string{"", "Bearer file-token-0123456789", "Bearer flag-token-0123456789", "Bearer env-token-0123456789", "Bearer file-token-0123456789"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Authorization headers %q, want %q", got, want)
	}
}

// TestTokenStaysWithItsOrigin: a redirect to another host does not carry
// the token.
func TestTokenStaysWithItsOrigin(t *testing.T) {
	var elsewhere string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere = r.Header.Get("Authorization") + "(seen)"
		httpjson.Write(w, http.StatusOK, api.MismatchPage{})
	}))
	t.Cleanup(other.Close)
	var home string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		home = r.Header.Get("Authorization")
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	c := newAPIClient(srv.URL, &apiAuth{token: "home-token-0123456789"})
	var page api.MismatchPage
	if err := c.do("GET", "/v1/mismatches", nil, &page); err != nil {
		t.Fatal(err)
	}
	if home != "Bearer home-token-0123456789" || elsewhere != "(seen)" {
		t.Fatalf("home %q, elsewhere %q", home, elsewhere)
	}
}
