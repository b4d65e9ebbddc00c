package app

import (
	"errors"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/services/config"
)

// TestExposure: loopback stays open; any other bind address needs its
// listener's authentication, or --insecure (then a warning).
func TestExposure(t *testing.T) {
	open := &config.Config{}
	withTokens := &config.Config{HTTP: config.HTTP{Tokens: []config.HTTPToken{{Name: "ops", Role: "read", SHA256: strings.Repeat("a", 64)}}}}
	withUsers := &config.Config{NATS: config.NATS{Users: []config.NATSUser{{Name: "shop", Role: "publisher", Systems: []string{"shop"}, NKey: "U"}}}}
	cases := []struct {
		name     string
		cfg      *config.Config
		opts     Options
		refused  []string // what the error must name
		warnings int
	}{
		{"loopback", open, Options{HTTPAddr: "127.0.0.1:8080", NATSListen: "127.0.0.1:4222"}, nil, 0},
		{"localhost and ::1", open, Options{HTTPAddr: "localhost:8080", NATSListen: "[::1]:4222"}, nil, 0},
		{"http on every interface", open, Options{HTTPAddr: "0.0.0.0:8080", NATSListen: "127.0.0.1:4222"}, []string{"--insecure", "http.tokens", "0.0.0.0:8080"}, 0},
		{"http with no host", open, Options{HTTPAddr: ":8080"}, []string{"http.tokens"}, 0},
		{"nats on a LAN address", open, Options{NATSListen: "10.0.0.5:4222"}, []string{"--insecure", "nats.users", "nats.config_file"}, 0},
		{"http with tokens", withTokens, Options{HTTPAddr: "0.0.0.0:8080", NATSListen: "127.0.0.1:4222"}, nil, 0},
		{"nats with users", withUsers, Options{NATSListen: "0.0.0.0:4222"}, nil, 0},
		{"external nats is not ours to guard", open, Options{NATSURL: "nats://10.0.0.5:4222", NATSListen: "0.0.0.0:4222"}, nil, 0},
		{"insecure", open, Options{HTTPAddr: "0.0.0.0:8080", NATSListen: "0.0.0.0:4222", Insecure: true}, nil, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warnings, err := checkExposure(c.cfg, c.opts)
			if len(c.refused) > 0 {
				if !errors.Is(err, ErrExposed) {
					t.Fatalf("started: %v", err)
				}
				for _, want := range c.refused {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("the refusal does not name %q: %v", want, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != c.warnings {
				t.Fatalf("warnings %v, want %d", warnings, c.warnings)
			}
		})
	}
}
