package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookTestCommand: `webhook test` signs Shopify's documentation
// payload with the system's secret and posts it to a running serve (which
// reads the same secret), reading the system's platform from the server;
// a secret the server does not hold is refused, and the command says so.
func TestWebhookTestCommand(t *testing.T) {
	t.Setenv("DRIFTWATCH_WEBHOOK_SECRET_SHOP", "cli-secret")
	c := startServe(t, t.TempDir())
	payload := "../../../events/webhook/testdata/shopify/orders_cancelled.json"
	out, err := runCLI(t, "webhook", "test", "--http", c.httpAddr, "--system", "shop", "--topic", "orders/cancelled", payload)
	if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(out, `"accepted"`) {
		t.Fatalf("webhook test: %v\n%s", err, out)
	}
	wrong := filepath.Join(t.TempDir(), "wrong.secret")
	if err := os.WriteFile(wrong, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "webhook", "test", "--http", c.httpAddr, "--system", "shop", "--secret-file", wrong, payload)
	if err == nil || !strings.Contains(out, "401") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a wrong secret: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "webhook", "test", "--http", c.httpAddr, payload); !isUsage(err) {
		t.Fatalf("without --system: %v", err)
	}
}
