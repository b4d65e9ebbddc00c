// Package api is driftwatch's HTTP API and dashboard server (CONTRACT.md
// section 8). Services register their routes on it; it adds liveness and
// readiness, request logging and JSON errors for unknown routes.
package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

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
}

// New returns a server; routes are added with Handle before Start.
func New(log zerolog.Logger) *Server {
	s := &Server{mux: http.NewServeMux(), log: log}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
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
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc registers a handler function for a ServeMux pattern.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// SetReady flips /readyz.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// SetNotReady makes /readyz answer 503 with why, from now on: a service
// failed and driftwatch cannot go on.
func (s *Server) SetNotReady(why string) { s.notReady.Store(&why) }

// Handler is the server's root handler (for in-process tests).
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP routes a request, answering unknown paths with a JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Start listens on addr ("127.0.0.1:8080"; port 0 picks one) and serves in
// the background until Stop.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan error, 1)
	go func() {
		err := s.srv.Serve(ln)
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
