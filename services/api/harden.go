package api

import (
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/services/httpjson"
)

// The server's timeouts. A request's headers must arrive within
// ReadHeaderTimeout and its whole body within ReadTimeout (a snapshot
// piece of 16 MiB, a publish chunk: send larger files in pieces, as
// `driftwatch publish` and `snapshot import` do). WriteTimeout bounds a
// request from its headers to the end of its reply, handler included, so
// it is longer than ReadTimeout (an upload is processed while it is read)
// and leaves a streamed export of the whole mismatch history minutes to
// finish. IdleTimeout closes a kept-alive connection that sends nothing.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 5 * time.Minute
	WriteTimeout      = 10 * time.Minute
	IdleTimeout       = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
)

// ContentSecurityPolicy is sent with every response. The dashboard loads
// only its own script and style sheet (no inline script, no inline style
// attribute: app.js sets styles through the DOM), its favicon is a data:
// URL, and it calls only its own origin. No page may frame it.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// setSecurityHeaders sets the headers every response carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// mutating reports whether a method changes state (and so is checked
// against cross-site requests).
func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// ownOrigin is the origin the request was addressed to:
// scheme://Host, https when it came over TLS.
func ownOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.ToLower(r.Host)
}

// crossSite refuses, with 403, a mutating request that a browser sent from
// another origin: an Origin header that is neither the server's own nor
// one of http.allowed_origins, or, from an origin not allowed,
// Sec-Fetch-Site cross-site or same-site (a sibling host). A request
// without either header (curl, middleware, driftwatch's client commands)
// passes: browsers always send Origin on these methods.
func (s *Server) crossSite(w http.ResponseWriter, r *http.Request) bool {
	origin := strings.ToLower(r.Header.Get("Origin"))
	if origin != "" && s.allowedOrigins[origin] {
		return false
	}
	if origin != "" && origin != ownOrigin(r) {
		httpjson.WriteError(w, http.StatusForbidden, "cross_origin",
			"a request from "+origin+" may not change anything here (http.allowed_origins lists the origins that may)")
		return true
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		httpjson.WriteError(w, http.StatusForbidden, "cross_origin", "a request from another site may not change anything here")
		return true
	}
	return false
}

// simpleBody reports whether a Content-Type is one a browser sends across
// sites without asking first (a CORS "simple" request): text/plain,
// application/x-www-form-urlencoded or multipart/form-data. Only the part
// before the first ';' counts, as browsers read it, so a malformed
// parameter does not hide the type.
func simpleBody(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return true
	}
	return false
}

// loopbackHost reports whether a Host header names the loopback interface:
// localhost, 127.0.0.0/8 or [::1], with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLoopback reports whether a listener's address is on the loopback
// interface.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// newErrorLog sends the HTTP server's own messages (a failed TLS
// handshake, an accept error) to the log; a handshake failure, which any
// port scan causes, at debug level.
func newErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(logWriter(func(p []byte) {
		msg := strings.TrimSpace(string(p))
		if strings.Contains(msg, "TLS handshake error") {
			log.Debug().Msg(msg)
			return
		}
		log.Warn().Msg(msg)
	}), "", 0)
}

type logWriter func(p []byte)

func (f logWriter) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}
