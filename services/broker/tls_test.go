package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
)

// testPKI is a self-signed CA with a server certificate for 127.0.0.1 and a
// client certificate, as PEM files.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "driftwatch test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	var p testPKI
	p.CA = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certPath, keyPath string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
	}
	p.ServerCert, p.ServerKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS: the embedded server serves its client port over TLS with a
// certificate from nats.tls. A client that trusts the CA connects and
// publishes through JetStream (and driftwatch's own in-process connection
// works, or the streams would not exist); a client without the CA is
// refused. With verify_clients a client also needs a certificate the CA
// signed.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	connect := func(t *testing.T, url string, o ClientOptions) (*client, error) {
		t.Helper()
		opts, err := o.Options()
		if err != nil {
			t.Fatal(err)
		}
		return dial(url, opts...)
	}
	publish := func(t *testing.T, c *client) {
		t.Helper()
		defer c.nc.Close()
		if !c.nc.TLSRequired() {
			t.Fatal("the connection is not over TLS")
		}
		if err := publishJS("driftwatch.in.shop", c.js, events.EventsStream)(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("server certificate", func(t *testing.T) {
		b := startBroker(t, Auth{TLS: ServerTLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}}, ClientOptions{})
		if !strings.HasPrefix(b.ClientURL, "tls://") {
			t.Fatalf("ClientURL %s", b.ClientURL)
		}
		c, err := connect(t, b.ClientURL, ClientOptions{TLSCA: pki.CA})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, c)
		// Without the CA: the server's certificate is not trusted.
		if c, err := connect(t, b.ClientURL, ClientOptions{}); err == nil {
			c.nc.Close()
			t.Fatal("a client without the CA connected")
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("without the CA: %v", err)
		}
		// Nor in plain text on a nats:// URL: the server requires TLS.
		if c, err := connect(t, strings.Replace(b.ClientURL, "tls://", "nats://", 1), ClientOptions{}); err == nil {
			c.nc.Close()
			t.Fatal("a client without the CA connected over nats://")
		}
	})

	t.Run("client certificates", func(t *testing.T) {
		b := startBroker(t, Auth{TLS: ServerTLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CA, VerifyClients: true}}, ClientOptions{})
		c, err := connect(t, b.ClientURL, ClientOptions{TLSCA: pki.CA, TLSCert: pki.ClientCert, TLSKey: pki.ClientKey})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, c)
		if c, err := connect(t, b.ClientURL, ClientOptions{TLSCA: pki.CA}); err == nil {
			// The handshake may complete before the server checks;
			// the connection must not work.
			defer c.nc.Close()
			if err := c.nc.Flush(); err == nil {
				t.Fatal("a client without a certificate connected")
			}
		}
		// A client certificate another CA signed.
		other := newTestPKI(t)
		if c, err := connect(t, b.ClientURL, ClientOptions{TLSCA: pki.CA, TLSCert: other.ClientCert, TLSKey: other.ClientKey}); err == nil {
			defer c.nc.Close()
			if err := c.nc.Flush(); err == nil {
				t.Fatal("a client with a certificate of another CA connected")
			}
		}
	})

	t.Run("with users", func(t *testing.T) {
		b := startBroker(t, Auth{
			TLS:   ServerTLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey},
			Users: []User{{Name: "shop", Role: RolePublisher, Systems: []string{"shop"}, PasswordFile: writeFile(t, t.TempDir(), "pw", "shop-password")}},
		}, ClientOptions{})
		c, err := connect(t, b.ClientURL, ClientOptions{TLSCA: pki.CA, User: "shop", Password: "shop-password"})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, c)
		if _, err := connect(t, b.ClientURL, ClientOptions{TLSCA: pki.CA}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("anonymous over TLS: %v", err)
		}
	})
}
