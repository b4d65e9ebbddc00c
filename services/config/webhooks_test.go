package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const webhookStack = `systems:
  - {id: shop, platform: shopify, role: storefront, webhook: {secret_file: shop.secret}}
  - {id: erp, platform: netsuite, role: erp, record: true}
  - {id: pay, platform: stripe, role: payment}
flows:
  - {from: shop, to: erp, sla: 5m}
`

// TestWebhookSecrets: a secret file holds one secret, or two while one is
// rotated (relative to the configuration's folder); without a file the
// environment variable does (two separated by a comma); more than two, or
// none, is an error that says where to set it and never shows a secret.
func TestWebhookSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "driftwatch.yaml")
	if err := os.WriteFile(path, []byte(webhookStack), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop.secret"), []byte("new-secret\nold-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.WebhookSecrets("shop")
	if err != nil || len(got) != 2 || string(got[0]) != "new-secret" || string(got[1]) != "old-secret" {
		t.Fatalf("shop: %q %v", got, err)
	}
	t.Setenv("DRIFTWATCH_WEBHOOK_SECRET_PAY", "whsec_a, whsec_b")
	if got, err := cfg.WebhookSecrets("pay"); err != nil || len(got) != 2 || string(got[1]) != "whsec_b" {
		t.Fatalf("pay: %q %v", got, err)
	}
	t.Setenv("DRIFTWATCH_WEBHOOK_SECRET_PAY", "a,b,c-secret")
	if _, err := cfg.WebhookSecrets("pay"); err == nil || strings.Contains(err.Error(), "c-secret") {
		t.Fatalf("three secrets: %v", err)
	}
	if _, err := cfg.WebhookSecrets("erp"); err == nil || !strings.Contains(err.Error(), "DRIFTWATCH_WEBHOOK_SECRET_ERP") {
		t.Fatalf("erp without a secret: %v", err)
	}
}

// TestWebhookSectionNamesTheKey: a platform without native webhooks, a bad
// header name or a negative tolerance is an error naming the key.
func TestWebhookSectionNamesTheKey(t *testing.T) {
	for yaml, want := range map[string]string{
		strings.Replace(webhookStack, "{id: erp, platform: netsuite, role: erp, record: true}", "{id: erp, platform: netsuite, role: erp, record: true, webhook: {}}", 1): "systems[1].webhook: platform \"netsuite\" has no native webhooks",
		strings.Replace(webhookStack, "secret_file: shop.secret", "header: \"X Bad\"", 1):                                                                                 "systems[0].webhook.header",
		strings.Replace(webhookStack, "secret_file: shop.secret", "tolerance: -5m", 1):                                                                                    "systems[0].webhook.tolerance",
	} {
		if _, err := Parse("test.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

// TestAlertsSectionNamesTheKey: an escalation window for a name that is
// no pattern is an error naming it; a webhook URL that is not HTTP is
// refused without repeating it (its path carries the secret).
func TestAlertsSectionNamesTheKey(t *testing.T) {
	base := strings.Replace(webhookStack, ", webhook: {secret_file: shop.secret}", "", 1)
	_, err := Parse("test.yaml", []byte(base+"alerts:\n  escalate: {cancel_not_propagated: 1h, cancel_not_propagatd: 1h}\n"))
	if err == nil || !strings.Contains(err.Error(), "alerts.escalate.cancel_not_propagatd: not a pattern") || strings.Contains(err.Error(), "alerts.escalate.cancel_not_propagated:") {
		t.Fatalf("escalate: %v", err)
	}
	_, err = Parse("test.yaml", []byte(base+"alerts:\n  webhooks: [{url: \"hooks.slack.com/services/T0/B0/SECRETTOKEN\"}]\n"))
	if err == nil || !strings.Contains(err.Error(), "alerts.webhooks[0].url") || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("webhook url: %v", err)
	}
}
