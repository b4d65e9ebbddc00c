// Package api is driftwatch's HTTP API and dashboard server (CONTRACT.md
// section 8). Services register their routes on it; it adds liveness and
// readiness, JSON errors for unknown routes, and the HTTP section of the
// configuration: bearer tokens checked against the route table (Routes),
// refusal of cross-site requests on mutating routes, a Host check on a
// loopback listener, security headers on every response, timeouts, a cap
// on connections and optional TLS.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"

	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// Server is the HTTP server.
type Server struct {
	mux      *http.ServeMux
	log      zerolog.Logger
	srv      *http.Server
	ln       net.Listener
	ready    atomic.Bool
	notReady atomic.Pointer[string] // set once a service failed for good
	done     chan error

	routesMu sync.Mutex
	routes   []string // registered patterns, in order

	// Set by Secure before Start.
	tokens         tokenSet
	allowedOrigins map[string]bool
	certFile       string
	keyFile        string
	maxConns       int
	// loopback is set by Start when the listener is on the loopback
	// interface: requests must then name it in Host.
	loopback bool
}

// New returns a server; routes are added with Handle before Start.
func New(log zerolog.Logger) *Server {
	s := &Server{mux: http.NewServeMux(), log: log, maxConns: config.DefaultMaxConnections}
	s.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := s.notReady.Load(); why != nil {
			httpjson.WriteError(w, http.StatusServiceUnavailable, "failed", *why)
			return
		}
		if !s.ready.Load() {
			httpjson.WriteError(w, http.StatusServiceUnavailable, "not_ready", "driftwatch is starting or stopping")
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return s
}

// Handle registers a handler for a ServeMux pattern ("POST /v1/events").
// Who may call it is the pattern's entry in Routes.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.routesMu.Lock()
	s.routes = append(s.routes, pattern)
	s.routesMu.Unlock()
}

// HandleFunc registers a handler function for a ServeMux pattern.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) { s.Handle(pattern, h) }

// RegisteredRoutes lists the patterns registered so far.
func (s *Server) RegisteredRoutes() []string {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	return append([]string(nil), s.routes...)
}

// Secure applies the configuration's http section; call it before Start.
// It reads the tokens (their files and variables: an error names the key)
// and checks that the TLS files load.
func (s *Server) Secure(cfg *config.Config) error {
	tokens, err := cfg.ResolveTokens()
	if err != nil {
		return err
	}
	s.tokens = tokens
	s.allowedOrigins = make(map[string]bool, len(cfg.HTTP.AllowedOrigins))
	for _, o := range cfg.HTTP.AllowedOrigins {
		s.allowedOrigins[strings.ToLower(o)] = true
	}
	if cfg.HTTP.MaxConnections > 0 {
		s.maxConns = cfg.HTTP.MaxConnections
	}
	s.certFile, s.keyFile = cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile
	if s.certFile != "" {
		if _, err := tls.LoadX509KeyPair(s.certFile, s.keyFile); err != nil {
			return fmt.Errorf("config %s: http.tls: %w", cfg.Path, err)
		}
	}
	return nil
}

// SetReady flips /readyz.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// SetNotReady makes /readyz answer 503 with why, from now on: a service
// failed and driftwatch cannot go on.
func (s *Server) SetNotReady(why string) { s.notReady.Store(&why) }

// Handler is the server's root handler (for in-process tests).
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP routes a request. In order: every response gets the security
// headers; on a loopback listener a Host that is not loopback is refused
// (421: a DNS-rebinding page reaching 127.0.0.1 under its own name); an
// unknown route gets a JSON 404; a mutating request from another origin is
// refused (403), and so is one whose body is of a type browsers send
// across sites without asking (415); then, with tokens configured, the
// route's access is checked (401, 403).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if s.loopback && !loopbackHost(r.Host) {
		httpjson.WriteError(w, http.StatusMisdirectedRequest, "bad_host",
			"this driftwatch listens on the loopback interface: address it as localhost, 127.0.0.1 or [::1]")
		return
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
		return
	}
	if mutating(r.Method) {
		if s.crossSite(w, r) {
			return
		}
		if simpleBody(r.Header.Get("Content-Type")) {
			httpjson.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Content-Type "+r.Header.Get("Content-Type")+" is not taken here: send application/json (events: also application/x-ndjson; snapshots: text/csv)")
			return
		}
	}
	r, ok := s.authorize(w, r, pattern)
	if !ok {
		return
	}
	// The mux, not the handler found above, serves: it sets the request's
	// path values.
	if c, ok := CallerOf(r.Context()); limitedIngest(c, ok) && AccessOf(pattern) == Ingest {
		guardIngest(w, r, allowedSystems(c), c.Systems, s.mux)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// forwardedKey marks a request another instance received and forwarded.
type forwardedKey struct{}

// ServeForwarded serves a request another instance of a cluster received,
// authorised and forwarded here (services/cluster): the route's handler
// runs without a second authorisation, and IsForwarded tells it so.
// The caller, when the receiving instance had one (tokens), is who the
// audit trail names.
func (s *Server) ServeForwarded(w http.ResponseWriter, r *http.Request, caller *Caller) {
	setSecurityHeaders(w.Header())
	ctx := context.WithValue(r.Context(), forwardedKey{}, true)
	if caller != nil {
		ctx = context.WithValue(ctx, callerKey{}, *caller)
	}
	s.mux.ServeHTTP(w, r.WithContext(ctx))
}

// IsForwarded reports whether the request was forwarded by another
// instance (it must not be forwarded again).
func IsForwarded(ctx context.Context) bool { return ctx.Value(forwardedKey{}) != nil }

// Start listens on addr ("127.0.0.1:8080"; port 0 picks one) and serves in
// the background until Stop: HTTPS when Secure gave it a certificate, at
// most http.max_connections connections at once (the next wait to be
// accepted), with the timeouts above.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", addr, err)
	}
	s.loopback = isLoopback(ln.Addr())
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          newErrorLog(s.log),
	}
	if s.certFile != "" {
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	limited := netutil.LimitListener(ln, s.maxConns)
	s.done = make(chan error, 1)
	go func() {
		var err error
		if s.certFile != "" {
			err = s.srv.ServeTLS(limited, s.certFile, s.keyFile)
		} else {
			err = s.srv.Serve(limited)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop shuts the server down gracefully within ctx.
func (s *Server) Stop(ctx context.Context) error {
	s.ready.Store(false)
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; err == nil {
		err = serveErr
	}
	return err
}
