package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// Access is what a route asks of its caller once http.tokens is set.
type Access int

const (
	// Public routes need no token: liveness, readiness and the dashboard's
	// static files, which hold no data.
	Public Access = iota
	// Signed routes need no token either: the caller is a platform whose
	// own signature over the request authenticates it (POST
	// /v1/webhooks/{system}, verified by the handler).
	Signed
	// Ingest routes take an ingest token (for events of its systems only)
	// or an operate token.
	Ingest
	// Read routes take a read or an operate token.
	Read
	// Operate routes change state and take an operate token.
	Operate
)

func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case Signed:
		return "signed"
	case Ingest:
		return "ingest"
	case Read:
		return "read"
	}
	return "operate"
}

// Routes is the route → access table, the one place that says who may call
// what (CONTRACT.md section 8 prints it). Keys are the ServeMux patterns the
// routes are registered with. A route registered without an entry here
// asks for an operate token; a test checks that none is.
var Routes = map[string]Access{
	"GET /healthz":          Public,
	"GET /readyz":           Public,
	"GET /{$}":              Public,
	"GET /assets/app.js":    Public,
	"GET /assets/style.css": Public,

	"POST /v1/events":            Ingest,
	"POST /v1/webhooks/{system}": Signed, // the platform's signature, checked by the handler

	"POST /v1/validate":                  Read, // the gate is a question; a flag it raises is recorded as any detection is
	"GET /v1/orders/{order_id}":          Read,
	"GET /v1/orders/{order_id}/timeline": Read,
	"GET /v1/orders/{order_id}/replay":   Read,
	"GET /v1/mismatches":                 Read,
	"GET /v1/mismatches/{alert_id}":      Read,
	"GET /v1/reconcile/latest":           Read,
	"GET /v1/ops-alerts":                 Read,
	"GET /v1/stats":                      Read,
	"GET /v1/export/mismatches":          Read,
	"GET /v1/status":                     Read,
	"GET /v1/config":                     Read, // the effective configuration, without secrets
	"GET /metrics":                       Read,

	"POST /v1/mismatches/{alert_id}/resolve": Operate,
	"POST /v1/mismatches/{alert_id}/assign":  Operate,
	"POST /v1/mismatches/{alert_id}/notes":   Operate,
	"POST /v1/reconcile":                     Operate,
	"POST /v1/snapshots/{system}":            Operate,
}

// AccessOf is the access a registered pattern asks for (Operate when the
// table lacks it).
func AccessOf(pattern string) Access {
	if a, ok := Routes[pattern]; ok {
		return a
	}
	return Operate
}

// mayCall reports whether a token role may call a route of access a.
func mayCall(role string, a Access) bool {
	switch a {
	case Public, Signed:
		return true
	case Ingest:
		return role == config.TokenIngest || role == config.TokenOperate
	case Read:
		return role == config.TokenRead || role == config.TokenOperate
	}
	return role == config.TokenOperate
}

// Caller is the token a request was authenticated with.
type Caller struct {
	Name    string
	Role    string
	Systems []string // an ingest token's systems
}

type callerKey struct{}

// CallerOf returns the token a request came with (false when the server
// has no tokens or the route is public).
func CallerOf(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// maxBearer bounds the token accepted in an Authorization header.
const maxBearer = 4096

// ParseBearer reads the token of an "Authorization: Bearer <token>" header
// (RFC 6750): the scheme in any case, one or more spaces, and a token68 (A-Z
// a-z 0-9 - . _ ~ + / followed by any number of =) of at most 4096
// characters. Anything else is not a bearer token.
func ParseBearer(header string) (string, bool) {
	const scheme = "bearer"
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) || header[len(scheme)] != ' ' {
		return "", false
	}
	tok := strings.TrimLeft(header[len(scheme):], " ")
	if tok == "" || len(tok) > maxBearer {
		return "", false
	}
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return "", false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return "", false
		}
	}
	return tok, true
}

// tokenSet holds the configured tokens by their SHA-256; the tokens
// themselves are never kept.
type tokenSet []config.ResolvedToken

// match finds the token whose hash is the presented token's. Every
// configured hash is compared, each in constant time, whatever matched:
// the time taken says nothing of which token, if any, was close.
func (ts tokenSet) match(presented string) (Caller, bool) {
	h := config.HashToken(presented)
	found := -1
	for i := range ts {
		if subtle.ConstantTimeCompare(h[:], ts[i].Hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Caller{}, false
	}
	t := ts[found]
	return Caller{Name: t.Name, Role: t.Role, Systems: t.Systems}, true
}

// authorize checks the request's token against the route's access when
// tokens are configured. It answers 401 (with WWW-Authenticate: Bearer)
// when the token is missing or unknown, 403 when its role may not call
// the route, and otherwise returns the request carrying its Caller.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, pattern string) (*http.Request, bool) {
	access := AccessOf(pattern)
	if len(s.tokens) == 0 || access == Public || access == Signed {
		return r, true
	}
	header := r.Header.Get("Authorization")
	if header == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="driftwatch"`)
		httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "this route needs a token: send Authorization: Bearer <token>")
		return nil, false
	}
	tok, ok := ParseBearer(header)
	var caller Caller
	if ok {
		caller, ok = s.tokens.match(tok)
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="driftwatch", error="invalid_token"`)
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_token", "the bearer token is not one of http.tokens")
		s.log.Debug().Str("route", pattern).Str("remote", r.RemoteAddr).Msg("refused an unknown token")
		return nil, false
	}
	if !mayCall(caller.Role, access) {
		httpjson.WriteError(w, http.StatusForbidden, "forbidden",
			"token "+caller.Name+" ("+caller.Role+") may not call "+pattern+": it needs "+needs(access))
		s.log.Debug().Str("route", pattern).Str("token", caller.Name).Msg("refused a token its route")
		return nil, false
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, caller)), true
}

// needs says which roles may call a route of access a.
func needs(a Access) string {
	switch a {
	case Ingest:
		return "an ingest or operate token"
	case Read:
		return "a read or operate token"
	}
	return "an operate token"
}

// limitedIngest reports whether the caller is an ingest token, whose
// events are checked against its systems.
func limitedIngest(c Caller, ok bool) bool {
	return ok && c.Role == config.TokenIngest
}

// allowedSystems is an ingest token's systems as a lookup.
func allowedSystems(c Caller) func(string) bool {
	return func(s string) bool { return slices.Contains(c.Systems, s) }
}
