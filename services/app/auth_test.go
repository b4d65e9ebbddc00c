package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/ingest"
)

// The tokens of the secured test stack (the operate token comes from a
// variable, the others as hashes).
const (
	appIngestToken  = "app-test-ingest-token-0123456789"
	appReadToken    = "app-test-read-token-0123456789"
	appOperateToken = "app-test-operate-token-0123456789"
	operateTokenEnv = "DRIFTWATCH_TEST_OPERATE_TOKEN"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// securedStack is the test stack with an ingest token for shop, a read
// token and an operate token.
func securedStack(t *testing.T) string {
	t.Setenv(operateTokenEnv, appOperateToken)
	return apptest.StackYAML + `http:
  tokens:
    - {name: shop-middleware, role: ingest, systems: [shop], sha256: "` + sha256Hex(appIngestToken) + `"}
    - {name: dashboard, role: read, sha256: "` + sha256Hex(appReadToken) + `"}
    - {name: ops, role: operate, env: ` + operateTokenEnv + `}
`
}

// call sends a request to env with optional bearer token and headers.
func call(t *testing.T, env *apptest.Env, method, path, contentType, body, token string, headers ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, env.BaseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func shopEvent(id, order, system string) string {
	return fmt.Sprintf(`{"event_id":"%s","order_id":"%s","system":"%s","status":"unfulfilled","occurred_at":"%s"}`,
		id, order, system, time.Now().UTC().Format(time.RFC3339))
}

// routeRequest is a request that exercises a route of api.Routes.
type routeRequest struct{ method, path, contentType, body string }

func requestFor(t *testing.T, pattern string) routeRequest {
	t.Helper()
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.NewReplacer("{$}", "", "{order_id}", "ORD-AUTH-0", "{alert_id}", "no-such-alert", "{system}", "erp").Replace(path)
	rr := routeRequest{method: method, path: path}
	switch pattern {
	case "POST /v1/events":
		rr.contentType, rr.body = "application/json", shopEvent("auth-e", "ORD-AUTH-0", "shop")
	case "POST /v1/validate":
		rr.contentType, rr.body = "application/json", `{"event":`+shopEvent("auth-v", "ORD-AUTH-0", "shop")+`,"target":"erp"}`
	case "POST /v1/mismatches/{alert_id}/resolve":
		rr.contentType, rr.body = "application/json", `{"note":"checked"}`
	case "POST /v1/snapshots/{system}":
		rr.contentType, rr.body = "text/csv", "order_id,status\n"
	}
	return rr
}

// TestEveryRouteHasAnAccess: every route the full app registers is in
// api.Routes, and every entry of api.Routes is a route the app serves.
func TestEveryRouteHasAnAccess(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	registered := env.App.HTTP.RegisteredRoutes()
	for _, p := range registered {
		if _, ok := api.Routes[p]; !ok {
			t.Errorf("route %q has no entry in api.Routes (who may call it?)", p)
		}
	}
	for p := range api.Routes {
		if !slices.Contains(registered, p) {
			t.Errorf("api.Routes has %q, which the app does not register", p)
		}
	}
}

// TestAppRoutesByRole calls every route of the running app with no token,
// an unknown token and each role's token: each is served (whatever its
// own answer), refused with 401 (and WWW-Authenticate: Bearer) or refused
// with 403, as api.Routes says.
func TestAppRoutesByRole(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, securedStack(t)), "")
	type caller struct{ name, token string }
	callers := []caller{{"none", ""}, {"unknown", "not-a-token-of-this-driftwatch"}, {"ingest", appIngestToken}, {"read", appReadToken}, {"operate", appOperateToken}}
	expect := func(c caller, a api.Access) string {
		switch {
		case a == api.Public, a == api.Signed: // a platform's signature, not a token
			return "served"
		case c.token == "" || c.name == "unknown":
			return "401"
		case c.name == "operate",
			c.name == "ingest" && a == api.Ingest,
			c.name == "read" && a == api.Read:
			return "served"
		}
		return "403"
	}
	for pattern, access := range api.Routes {
		rr := requestFor(t, pattern)
		for _, c := range callers {
			status, body, header := call(t, env, rr.method, rr.path, rr.contentType, rr.body, c.token)
			got := "served"
			if status == 401 || status == 403 {
				got = fmt.Sprint(status)
			}
			if want := expect(c, access); got != want {
				t.Errorf("%s as %s: %d %s; want %s", pattern, c.name, status, strings.TrimSpace(body), want)
			}
			if status == 401 && !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s as %s: 401 without WWW-Authenticate: Bearer", pattern, c.name)
			}
			if header.Get("X-Frame-Options") != "DENY" || header.Get("Content-Security-Policy") == "" {
				t.Errorf("%s as %s: security headers missing", pattern, c.name)
			}
		}
	}
}

// TestAppIngestTokenSystems: through the real ingest, a shop token's event
// of erp is refused (alone: 403; in NDJSON: that event, in place) and
// never reaches the log; its shop events do.
func TestAppIngestTokenSystems(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, securedStack(t)), "")
	status, body, _ := call(t, env, "POST", "/v1/events", "application/json", shopEvent("i1", "ORD-AUTH-1", "erp"), appIngestToken)
	if status != 403 || !strings.Contains(body, api.CodeForbiddenSystem) {
		t.Fatalf("one erp event: %d %s", status, body)
	}
	ndjson := strings.Join([]string{shopEvent("i2", "ORD-AUTH-1", "shop"), shopEvent("i3", "ORD-AUTH-1", "erp"), shopEvent("i4", "ORD-AUTH-1", "wms")}, "\n")
	status, body, _ = call(t, env, "POST", "/v1/events", "application/x-ndjson", ndjson, appIngestToken)
	var reply ingest.BatchReply
	if status != 200 || json.Unmarshal([]byte(body), &reply) != nil {
		t.Fatalf("ndjson: %d %s", status, body)
	}
	if reply.Accepted != 1 || reply.Rejected != 2 || len(reply.Results) != 3 || reply.Results[0].EventID != "i2" ||
		reply.Results[1].Code != api.CodeForbiddenSystem || reply.Results[2].Code != api.CodeForbiddenSystem || reply.Results[2].EventID != "i4" {
		t.Fatalf("ndjson reply: %s", body)
	}
	env.WaitApplied(t)
	status, body, _ = call(t, env, "GET", "/v1/orders/ORD-AUTH-1", "", "", appReadToken)
	var view api.OrderView
	if status != 200 || json.Unmarshal([]byte(body), &view) != nil {
		t.Fatalf("order: %d %s", status, body)
	}
	for _, s := range view.Systems {
		if s.HasRecord != (s.System == "shop") {
			t.Errorf("%s has_record %v: only shop's event may be in the log", s.System, s.HasRecord)
		}
	}
	if m, err := env.LastDLQ(t, "erp"); err == nil {
		t.Errorf("a refused event was dead-lettered: %s", m.Data)
	}
}

// TestAppRefusesCrossSite: with tokens or not, the running app refuses a
// mutating request from a foreign origin and a text/plain body, which a
// page on any site could send without asking; the same request from the
// server's own origin goes through.
func TestAppRefusesCrossSite(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	ev := shopEvent("x1", "ORD-XS-1", "shop")
	for _, c := range []struct {
		name, contentType string
		headers           []string
		want              int
	}{
		{"foreign origin", "application/json", []string{"Origin", "https://evil.example"}, 403},
		{"text/plain cross-site", "text/plain", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403},
		{"text/plain, no origin", "text/plain;charset=UTF-8", nil, 415},
		{"form", "application/x-www-form-urlencoded", nil, 415},
		{"own origin", "application/json", []string{"Origin", env.BaseURL, "Sec-Fetch-Site", "same-origin"}, 202},
	} {
		status, body, _ := call(t, env, "POST", "/v1/events", c.contentType, ev, "", c.headers...)
		if status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.want)
		}
	}
	status, body, _ := call(t, env, "POST", "/v1/mismatches/x/resolve", "application/json", `{"note":"n"}`, "", "Origin", "http://localhost.evil.example")
	if status != 403 {
		t.Errorf("resolve from a foreign origin: %d %s", status, body)
	}
	// The listener is on 127.0.0.1: another name in Host is refused.
	req, _ := http.NewRequest("GET", env.BaseURL+"/v1/stats", nil)
	req.Host = "rebound.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", resp.StatusCode)
	}
}

// TestResolveNamesTheToken: a mismatch resolved with a token names it in
// the audit trail beside what the caller said.
func TestResolveNamesTheToken(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, securedStack(t)), "")
	if status, body, _ := call(t, env, "POST", "/v1/events", "application/json", shopEvent("r1", "ORD-AUTH-R", "shop"), appIngestToken); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	id := detector.AlertID("ORD-AUTH-R", detector.OrderNotAcknowledged, "shop", "erp")
	waitMismatch(t, env, id)
	status, body, _ := call(t, env, "POST", "/v1/mismatches/"+id+"/resolve", "application/json", `{"note":"fixed by hand","by":"kim"}`, appOperateToken)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	m, err := detector.GetMismatch(env.App.Store, id)
	if err != nil {
		t.Fatal(err)
	}
	if last := m.Audit[len(m.Audit)-1]; last.By != "kim (token ops)" {
		t.Fatalf("audit: %+v", last)
	}
}
