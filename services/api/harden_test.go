package api

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/services/config"
)

// TestSecurityHeadersOnEveryResponse: a page, an API reply, an error, a
// refusal and an unknown route all carry the security headers.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s := securedServer(t, securedConfig(t))
	for _, c := range []struct{ method, path, auth string }{
		{"GET", "/", ""},
		{"GET", "/assets/app.js", ""},
		{"GET", "/healthz", ""},
		{"GET", "/v1/stats", "Bearer " + readToken},
		{"GET", "/v1/stats", ""},
		{"POST", "/v1/reconcile", "Bearer " + readToken},
		{"GET", "/nowhere", ""},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		h := serve(s, req).Header()
		for k, want := range map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, k, got, want)
			}
		}
	}
	if !strings.Contains(ContentSecurityPolicy, "default-src 'self'") || !strings.Contains(ContentSecurityPolicy, "frame-ancestors 'none'") ||
		strings.Contains(ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP %q", ContentSecurityPolicy)
	}
}

// TestDashboardHasNoInlineCode: the dashboard's page holds no inline
// script, style element or style attribute, and app.js sets no style
// attribute: the Content-Security-Policy would block them.
func TestDashboardHasNoInlineCode(t *testing.T) {
	page, err := dashboardFS.ReadFile("dashboard/index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, bad := range []string{"<style", " style=", "javascript:", " onclick=", " onload=", " onsubmit="} {
		if strings.Contains(html, bad) {
			t.Errorf("index.html holds %q", bad)
		}
	}
	if n := strings.Count(html, "<script"); n != 1 || !strings.Contains(html, `<script src="/assets/app.js"`) {
		t.Errorf("index.html scripts: %d, want only app.js", n)
	}
	js, err := dashboardFS.ReadFile("dashboard/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"style:", "'style'", "eval(", "new Function", "setTimeout('", "javascript:"} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js holds %q", bad)
		}
	}
}

// TestCrossSiteRequestsRefused: on a mutating route a foreign Origin, a
// cross-site or same-site Sec-Fetch-Site, and a body type that a browser
// sends across sites without asking are refused, with or without tokens;
// the server's own origin, an allowed origin and a client without those
// headers pass; a GET is never refused for them.
func TestCrossSiteRequestsRefused(t *testing.T) {
	open, err := config.Parse("open.yaml", []byte(config.SixSystems+"http:\n  allowed_origins: [\"https://Ops.Example.com\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*config.Config{"without tokens": open, "with tokens": securedConfig(t)} {
		s := securedServer(t, cfg)
		for _, c := range []struct {
			name, method, contentType string
			headers                   map[string]string
			want                      int
		}{
			{"foreign origin", "POST", "application/json", map[string]string{"Origin": "https://evil.example"}, 403},
			{"null origin", "POST", "application/json", map[string]string{"Origin": "null"}, 403},
			{"own origin, other scheme", "POST", "application/json", map[string]string{"Origin": "https://example.com"}, 403},
			{"cross-site fetch", "POST", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
			{"same-site fetch", "POST", "application/json", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
			{"text/plain cross-site", "POST", "text/plain;charset=UTF-8", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
			{"text/plain without origin", "POST", "text/plain", nil, 415},
			{"text/plain, bad parameter", "POST", "Text/Plain; charset", nil, 415},
			{"form", "POST", "application/x-www-form-urlencoded", nil, 415},
			{"multipart", "POST", "multipart/form-data; boundary=x", nil, 415},
			{"form from own origin", "POST", "application/x-www-form-urlencoded", map[string]string{"Origin": "http://example.com"}, 415},
			{"own origin", "POST", "application/json", map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, 200},
			{"allowed origin", "POST", "application/json", map[string]string{"Origin": "https://ops.example.com", "Sec-Fetch-Site": "cross-site"}, 200},
			{"no browser headers", "POST", "application/json", nil, 200},
			{"no body type", "POST", "", nil, 200},
			{"GET from anywhere", "GET", "text/plain", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 200},
		} {
			path := "/v1/reconcile"
			if c.method == "GET" {
				path = "/v1/reconcile/latest"
			}
			req := httptest.NewRequest(c.method, path, strings.NewReader("{}"))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("Authorization", "Bearer "+operateToken)
			rec := serve(s, req)
			if got := rec.Code; got != c.want {
				t.Errorf("%s, %s: %d, want %d: %s", name, c.name, got, c.want, rec.Body)
			}
		}
	}
}

// TestLoopbackListenerChecksHost: a server on 127.0.0.1 answers a request
// that names it by a loopback name or address and refuses any other Host
// (DNS rebinding), with 421.
func TestLoopbackListenerChecksHost(t *testing.T) {
	s := New(zerolog.Nop())
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	_, port, _ := net.SplitHostPort(s.Addr())
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        200,
		"localhost:" + port:        200,
		"LOCALHOST":                200,
		"[::1]:" + port:            200,
		"127.0.0.2:" + port:        200,
		"rebind.attacker.example":  421,
		"attacker.example:" + port: 421,
		"10.0.0.1:" + port:         421,
		"localhost.evil.example":   421,
	} {
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
	if !loopbackHost("[::1]") || loopbackHost("") || loopbackHost("0.0.0.0") {
		t.Error("loopbackHost")
	}
}

// TestServerTimeoutsAndTLS: the server runs with its timeouts and header
// bound, and with http.tls serves HTTPS with the configured certificate.
func TestServerTimeoutsAndTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	s := startSecured(t, filepath.Join(dir, "tls.yaml"), "http:\n  max_connections: 8\n  tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n")
	if s.srv.ReadHeaderTimeout != ReadHeaderTimeout || s.srv.ReadTimeout != ReadTimeout || s.srv.WriteTimeout != WriteTimeout ||
		s.srv.IdleTimeout != IdleTimeout || s.srv.MaxHeaderBytes != MaxHeaderBytes || WriteTimeout <= ReadTimeout || s.maxConns != 8 {
		t.Fatalf("server settings: %+v, max connections %d", s.srv, s.maxConns)
	}
	certPEM, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || !strings.Contains(string(body), "ok") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered on the TLS port")
		}
	}

	bad, err := config.Parse("bad.yaml", []byte(config.SixSystems+"http:\n  tls: {cert_file: "+keyFile+", key_file: "+certFile+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := New(zerolog.Nop()).Secure(bad); err == nil || !strings.Contains(err.Error(), "http.tls") {
		t.Fatalf("swapped files: %v", err)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "driftwatch test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startSecured starts a server on a random loopback port with the six
// systems and the http section yaml (read as the file path), stopped at
// the test's end.
func startSecured(t *testing.T, path, yaml string) *Server {
	t.Helper()
	cfg, err := config.Parse(path, []byte(config.SixSystems+yaml))
	if err != nil {
		t.Fatal(err)
	}
	s := New(zerolog.Nop())
	if err := s.Secure(cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// TestConnectionCap: with http.max_connections connections open, the next
// is not served until one closes.
func TestConnectionCap(t *testing.T) {
	s := startSecured(t, "cap.yaml", "http:\n  max_connections: 8\n")
	get := func(timeout time.Duration) error {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + s.Addr() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Eight kept-alive connections, each known to be accepted: it has
	// been answered once, and stays open.
	var held []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", s.Addr()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := get(300 * time.Millisecond); err == nil {
		t.Fatal("a ninth connection was served")
	}
	held[0].Close()
	if err := get(5 * time.Second); err != nil {
		t.Fatalf("after one closed: %v", err)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}
