package api

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/ingest"
)

// Tokens of the tests' configuration (never a real deployment's).
const (
	ingestToken  = "test-ingest-token-0123456789abcdef"
	readToken    = "test-read-token-0123456789abcdef"
	operateToken = "test-operate-token-0123456789abcdef"
)

func hexHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// securedConfig is the six systems with three tokens, their hashes given
// inline, and one extra allowed origin.
func securedConfig(t *testing.T) *config.Config {
	t.Helper()
	yaml := config.SixSystems + config.ReferenceFlows("5m", "5m", "5m", "5m", "5m") + `http:
  allowed_origins: ["https://ops.example.com"]
  tokens:
    - {name: shop-middleware, role: ingest, systems: [shop], sha256: "` + hexHash(ingestToken) + `"}
    - {name: dashboard, role: read, sha256: "` + hexHash(readToken) + `"}
    - {name: ops, role: operate, sha256: "` + hexHash(operateToken) + `"}
`
	cfg, err := config.Parse("secured.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// echo answers 200 with the pattern and the path values the handler
// sees, so a test sees which handler ran, and with what.
func echo(pattern string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"route": pattern,
			"order_id": r.PathValue("order_id"), "alert_id": r.PathValue("alert_id"), "system": r.PathValue("system")})
	}
}

// fakeIngest answers an NDJSON body the way the ingest handler does: one
// accepted result per non-blank line, carrying the line's event id.
func fakeIngest(w http.ResponseWriter, r *http.Request) {
	if !isNDJSON(r.Header.Get("Content-Type")) {
		body, _ := io.ReadAll(r.Body)
		ev, _ := events.Parse(body)
		httpjson.Write(w, http.StatusAccepted, events.Result{Outcome: events.Accepted, EventID: ev.EventID, System: ev.System})
		return
	}
	reply := ingest.BatchReply{Results: []events.Result{}}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, ingest.MaxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ev, _ := events.Parse(line)
		reply.Results = append(reply.Results, events.Result{Outcome: events.Accepted, EventID: ev.EventID, System: ev.System})
		reply.Accepted++
	}
	if sc.Err() != nil {
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, "line_too_long", sc.Err().Error())
		return
	}
	httpjson.Write(w, http.StatusOK, reply)
}

// securedServer registers every pattern of Routes on a server secured
// with cfg: the dashboard's files, the events route answering fakeIngest,
// the others echo.
func securedServer(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	s := New(zerolog.Nop())
	if err := s.Secure(cfg); err != nil {
		t.Fatal(err)
	}
	s.RegisterDashboard()
	s.SetReady(true)
	for pattern := range Routes {
		switch pattern {
		case "GET /healthz", "GET /readyz", "GET /{$}", "GET /assets/app.js", "GET /assets/style.css":
		case "POST /v1/events":
			s.HandleFunc(pattern, fakeIngest)
		default:
			s.HandleFunc(pattern, echo(pattern))
		}
	}
	return s
}

// pathOf turns a pattern into a request path.
func pathOf(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.NewReplacer("{$}", "", "{order_id}", "ORD-1", "{alert_id}", "a1", "{system}", "erp").Replace(path)
	return method, path
}

func serve(s *Server, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// TestRouteAccessByRole: every route of the table, called without a
// token, with an unknown one and with each role's, is served, refused with
// 401 or refused with 403 as its access says.
func TestRouteAccessByRole(t *testing.T) {
	s := securedServer(t, securedConfig(t))
	callers := []struct {
		name, header string
		want         func(Access) int
	}{
		{"no token", "", func(a Access) int { return map[bool]int{true: 200, false: 401}[a == Public || a == Signed] }},
		{"unknown token", "Bearer not-a-configured-token-at-all", func(a Access) int { return map[bool]int{true: 200, false: 401}[a == Public || a == Signed] }},
		{"malformed header", "Basic b3BzOnNlY3JldA==", func(a Access) int { return map[bool]int{true: 200, false: 401}[a == Public || a == Signed] }},
		{"ingest", "Bearer " + ingestToken, func(a Access) int {
			return map[bool]int{true: 200, false: 403}[a == Public || a == Signed || a == Ingest]
		}},
		{"read", "Bearer " + readToken, func(a Access) int {
			return map[bool]int{true: 200, false: 403}[a == Public || a == Signed || a == Read]
		}},
		{"operate", "bearer  " + operateToken, func(a Access) int { return 200 }},
	}
	event := `{"event_id":"e1","order_id":"ORD-1","system":"shop","status":"unfulfilled","occurred_at":"2026-11-27T10:04:05Z"}`
	for pattern, access := range Routes {
		for _, c := range callers {
			method, path := pathOf(pattern)
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader(event)
			}
			req := httptest.NewRequest(method, path, body)
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			rec := serve(s, req)
			want := c.want(access)
			got := rec.Code
			if got/100 == 2 {
				got = 200
			}
			if got != want {
				t.Errorf("%s with %s: %d, want %d: %s", pattern, c.name, rec.Code, want, rec.Body)
			}
			if got == 200 && strings.Contains(pattern, "{order_id}") && !strings.Contains(rec.Body.String(), `"order_id":"ORD-1"`) {
				t.Errorf("%s with %s: the handler lost its path values: %s", pattern, c.name, rec.Body)
			}
			if rec.Code == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with %s: 401 without WWW-Authenticate: Bearer", pattern, c.name)
			}
		}
	}
}

// TestServerWithoutTokensIsOpen: without http.tokens nothing asks for a
// token (the cross-site rules still apply).
func TestServerWithoutTokensIsOpen(t *testing.T) {
	cfg, err := config.Parse("open.yaml", []byte(config.SixSystems))
	if err != nil {
		t.Fatal(err)
	}
	s := securedServer(t, cfg)
	for pattern := range Routes {
		method, path := pathOf(pattern)
		req := httptest.NewRequest(method, path, nil)
		if rec := serve(s, req); rec.Code/100 != 2 {
			t.Errorf("%s: %d %s", pattern, rec.Code, rec.Body)
		}
	}
}

// TestUnregisteredPatternAsksForOperate: a route missing from the table
// is treated as the most demanding one.
func TestUnregisteredPatternAsksForOperate(t *testing.T) {
	s := securedServer(t, securedConfig(t))
	s.HandleFunc("GET /v1/not-in-the-table", echo("x"))
	for header, want := range map[string]int{"Bearer " + readToken: 403, "Bearer " + operateToken: 200} {
		req := httptest.NewRequest("GET", "/v1/not-in-the-table", nil)
		req.Header.Set("Authorization", header)
		if rec := serve(s, req); rec.Code != want {
			t.Errorf("%q: %d, want %d", header[:12], rec.Code, want)
		}
	}
}

// TestTokenMatching: a token matches by its SHA-256, any configured token
// can match, and the caller named is the one whose hash matched.
func TestTokenMatching(t *testing.T) {
	cfg := securedConfig(t)
	resolved, err := cfg.ResolveTokens()
	if err != nil {
		t.Fatal(err)
	}
	ts := tokenSet(resolved)
	for token, name := range map[string]string{ingestToken: "shop-middleware", readToken: "dashboard", operateToken: "ops"} {
		c, ok := ts.match(token)
		if !ok || c.Name != name {
			t.Errorf("%s: %+v %v", name, c, ok)
		}
		if h := config.HashToken(token); hex.EncodeToString(h[:]) != hexHash(token) {
			t.Errorf("HashToken is not the hex SHA-256")
		}
		if _, ok := ts.match(token + "x"); ok {
			t.Errorf("%s: a longer token matched", name)
		}
		if _, ok := ts.match(token[:len(token)-1]); ok {
			t.Errorf("%s: a prefix matched", name)
		}
	}
	if _, ok := ts.match(""); ok {
		t.Error("the empty token matched")
	}
	if _, ok := tokenSet(nil).match(readToken); ok {
		t.Error("an empty set matched")
	}
}

func TestParseBearer(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":             "abc",
		"bearer abc":             "abc",
		"BEARER   abc-._~+/=":    "abc-._~+/=",
		"Bearer " + operateToken: operateToken,
		"Bearer abc==":           "abc==",
		"Bearer":                 "",
		"Bearer ":                "",
		"Bearer  ":               "",
		"Bearer ==":              "",
		"Bearer a b":             "",
		"Bearer a=b":             "",
		"Bearer\tabc":            "",
		"Basic abc":              "",
		"Bearerabc":              "",
		"Bearer abc\n":           "",
		"Bearer é":               "",
		"Bearer " + strings.Repeat("a", maxBearer+1): "",
		"Bearer " + strings.Repeat("a", maxBearer):   strings.Repeat("a", maxBearer),
	} {
		got, ok := ParseBearer(header)
		if got != want || ok != (want != "") {
			t.Errorf("ParseBearer(%.20q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

// FuzzParseBearer: whatever the header, a token is returned only when it
// is a non-empty token68 no longer than the bound, found after the scheme
// and spaces, and it parses back the same.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  a.b_c~d+e/f==", "Bearer ", "Basic x", "Bearer =", "Bearer a b", "Bearer \x00", "BeArEr Zm9v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := ParseBearer(header)
		if !ok {
			if tok != "" {
				t.Fatalf("refused %q but returned %q", header, tok)
			}
			return
		}
		if tok == "" || len(tok) > maxBearer || !strings.HasSuffix(header, tok) {
			t.Fatalf("%q gave %q", header, tok)
		}
		if !strings.EqualFold(header[:6], "bearer") || strings.TrimLeft(header[6:], " ") != tok || header[6] != ' ' {
			t.Fatalf("%q gave %q", header, tok)
		}
		body := strings.TrimRight(tok, "=")
		if body == "" || strings.ContainsAny(body, "= \t\r\n") {
			t.Fatalf("%q gave %q", header, tok)
		}
		if again, ok := ParseBearer("Bearer " + tok); !ok || again != tok {
			t.Fatalf("%q does not parse back: %q %v", tok, again, ok)
		}
	})
}

// TestIngestTokenLimitedToItsSystems: an ingest token's NDJSON events of
// other systems are refused one by one, in place, and never reach the
// handler; a single event of another system is refused as a request.
func TestIngestTokenLimitedToItsSystems(t *testing.T) {
	s := securedServer(t, securedConfig(t))
	ev := func(id, system string) string {
		return `{"event_id":"` + id + `","order_id":"ORD-1","system":"` + system + `","status":"x","occurred_at":"2026-11-27T10:04:05Z"}`
	}
	body := strings.Join([]string{ev("a", "shop"), "", ev("b", "erp"), "  " + ev("c", "shop") + "  ", "not json", ev("d", "amazon")}, "\n")
	req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	rec := serve(s, req)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var reply ingest.BatchReply
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reply.Results {
		got = append(got, r.EventID+":"+string(r.Outcome)+":"+r.Code)
	}
	want := []string{"a:accepted:", "b:rejected:forbidden_system", "c:accepted:", ":accepted:", "d:rejected:forbidden_system"}
	if strings.Join(got, " ") != strings.Join(want, " ") || reply.Accepted != 3 || reply.Rejected != 2 {
		t.Fatalf("results %v (accepted %d, rejected %d), want %v", got, reply.Accepted, reply.Rejected, want)
	}

	for system, wantCode := range map[string]int{"shop": 202, "erp": 403} {
		req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(ev("s-"+system, system)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ingestToken)
		if rec := serve(s, req); rec.Code != wantCode || (wantCode == 403 && !strings.Contains(rec.Body.String(), CodeForbiddenSystem)) {
			t.Errorf("one %s event: %d %s", system, rec.Code, rec.Body)
		}
	}

	// An operate token posts for every system.
	req = httptest.NewRequest("POST", "/v1/events", strings.NewReader(ev("o", "erp")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+operateToken)
	if rec := serve(s, req); rec.Code != 202 {
		t.Errorf("operate token: %d %s", rec.Code, rec.Body)
	}

	// A line over the handler's limit still ends the request with 413.
	req = httptest.NewRequest("POST", "/v1/events", strings.NewReader(ev("a", "shop")+"\n"+strings.Repeat(" ", ingest.MaxLine+10)+ev("z", "erp")))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	if rec := serve(s, req); rec.Code != 413 {
		t.Errorf("overlong line: %d %s", rec.Code, rec.Body)
	}
}
