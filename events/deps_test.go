package events

import (
	"os"
	"strings"
	"testing"
)

// TestClientModuleStaysLight keeps events/go.mod free of heavy dependencies:
// middleware imports this module, so it must not pull in driftwatch's
// daemon (the NATS server, Pebble, an OpenTelemetry SDK, a logger).
func TestClientModuleStaysLight(t *testing.T) {
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{
		"github.com/nats-io/nats-server",
		"github.com/cockroachdb/pebble",
		"go.opentelemetry.io/otel/sdk",
		"go.opentelemetry.io/otel/exporters",
		"github.com/rs/zerolog",
		"github.com/prometheus/",
		"github.com/spf13/cobra",
		"github.com/chromedp/",
	}
	for _, line := range strings.Split(string(data), "\n") {
		for _, f := range forbidden {
			if strings.Contains(line, f) {
				t.Errorf("events/go.mod requires %s (%q): the client module must stay light", f, strings.TrimSpace(line))
			}
		}
	}
}
