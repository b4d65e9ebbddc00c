package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// ClientOptions are a client's credentials and TLS settings for a NATS
// server, as the nats CLI takes them: driftwatch's client commands, and
// driftwatch's own connections to an existing NATS (--nats-url), build
// their connections from them. The zero value connects anonymously without
// TLS (unless the URL says tls://).
type ClientOptions struct {
	// Creds is a user JWT credentials file (--creds).
	Creds string
	// NKey is an NKey seed file (--nkey).
	NKey string
	// User and Password authenticate by name (--user, --password); a
	// user without a password is a token, as with the nats CLI.
	User, Password string
	// TLSCA verifies the server's certificate (--tls-ca); TLSCert and
	// TLSKey are the client's certificate (--tls-cert, --tls-key).
	TLSCA, TLSCert, TLSKey string
}

// HasCredentials reports whether the options authenticate (creds, nkey or
// user).
func (o ClientOptions) HasCredentials() bool {
	return o.Creds != "" || o.NKey != "" || o.User != ""
}

// Options returns the nats.go options. At most one of Creds, NKey and User
// may be set; a password needs a user; a client certificate needs its key.
// Files are checked here, so a missing one is named before connecting.
func (o ClientOptions) Options() ([]nats.Option, error) {
	var opts []nats.Option
	given := 0
	for _, s := range []string{o.Creds, o.NKey, o.User} {
		if s != "" {
			given++
		}
	}
	if given > 1 {
		return nil, errors.New("NATS credentials: give one of --creds, --nkey or --user")
	}
	if o.Password != "" && o.User == "" {
		return nil, errors.New("NATS credentials: --password needs --user")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("NATS TLS: --tls-cert and --tls-key go together")
	}
	for _, f := range []struct{ flag, path string }{{"--creds", o.Creds}, {"--nkey", o.NKey}, {"--tls-ca", o.TLSCA}, {"--tls-cert", o.TLSCert}, {"--tls-key", o.TLSKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	switch {
	case o.Creds != "":
		opts = append(opts, nats.UserCredentials(o.Creds))
	case o.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("--nkey %s: %w", o.NKey, err)
		}
		opts = append(opts, opt)
	case o.User != "" && o.Password != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.User != "":
		opts = append(opts, nats.Token(o.User))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// Redact returns a NATS URL (or a comma-separated list of them) fit for a
// log line or an error: the password of user:password@ becomes xxxxx, and
// so does a token (a user part without a password). Everything else is
// kept.
func Redact(url string) string {
	if !strings.Contains(url, "@") {
		return url
	}
	parts := strings.Split(url, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

func redactOne(u string) string {
	at := strings.LastIndexByte(u, '@')
	if at < 0 {
		return u
	}
	start := 0
	if i := strings.Index(u, "://"); i >= 0 && i < at {
		start = i + 3
	}
	info := u[start:at]
	if info == "" {
		return u
	}
	if c := strings.IndexByte(info, ':'); c >= 0 {
		return u[:start] + info[:c] + ":xxxxx" + u[at:]
	}
	return u[:start] + "xxxxx" + u[at:]
}
