package app

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/driftwatch/driftwatch/services/config"
)

// ErrExposed: a listener is bound beyond loopback with no authentication
// configured for it, and --insecure was not given.
var ErrExposed = errors.New("refusing to listen beyond loopback without authentication")

// checkExposure is driftwatch's safe default. On loopback everything stays
// open (the one-command demo); a listener bound to any other address needs
// its authentication configured: HTTP needs http.tokens, the embedded NATS
// server nats.users or nats.config_file. Otherwise start refuses with a
// message that says how, unless insecure is set, and then every start
// warns. It returns the warnings to log.
func checkExposure(cfg *config.Config, opts Options) (warnings []string, err error) {
	var problems []string
	if opts.HTTPAddr != "" && !loopback(opts.HTTPAddr) && len(cfg.HTTP.Tokens) == 0 {
		problems = append(problems, fmt.Sprintf("the HTTP API on %s has no authentication: set http.tokens in the configuration (driftwatch token new makes one) or bind --http to 127.0.0.1 behind an authenticating reverse proxy", opts.HTTPAddr))
	}
	if opts.NATSURL == "" && opts.NATSListen != "" && !loopback(opts.NATSListen) && len(cfg.NATS.Users) == 0 && cfg.NATS.ConfigFile == "" {
		problems = append(problems, fmt.Sprintf("the embedded NATS server on %s has no authentication: set nats.users (driftwatch nats nkey makes a key) or nats.config_file in the configuration, or bind --nats-listen to 127.0.0.1", opts.NATSListen))
	}
	if len(problems) == 0 {
		return nil, nil
	}
	if !opts.Insecure {
		return nil, fmt.Errorf("%w: %s; or start with --insecure to accept the risk", ErrExposed, strings.Join(problems, "; "))
	}
	for _, p := range problems {
		warnings = append(warnings, "--insecure: "+p)
	}
	return warnings, nil
}

// loopback reports whether addr (host:port, or a URL's host:port) binds
// to a loopback address only. An empty host or an unspecified address
// (0.0.0.0, ::) binds to every interface.
func loopback(addr string) bool {
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
