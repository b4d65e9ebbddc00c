package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// SystemWebhook configures POST /v1/webhooks/<system>: the platform's own
// notifications, verified with the shared secret and translated into
// envelopes (events/webhook).
type SystemWebhook struct {
	// SecretFile holds the secret, or two (one per line) while it is
	// rotated. Without it the secret comes from the environment variable
	// DRIFTWATCH_WEBHOOK_SECRET_<SYSTEM> (upper case, - as _; two may be
	// given separated by a comma).
	SecretFile string `yaml:"secret_file"`
	// Header names the header carrying a shared secret, for the schemes
	// without a signature (BigCommerce without Standard Webhooks headers,
	// Amazon's relayed notifications); default X-Driftwatch-Secret.
	Header string `yaml:"header"`
	// Tolerance is how far a signed timestamp may be from now (Stripe,
	// Standard Webhooks, EasyPost); default 5m.
	Tolerance Duration `yaml:"tolerance"`
}

// WebhookSecretEnv is the environment variable that holds a system's
// webhook secret when its configuration names no file.
func WebhookSecretEnv(system string) string {
	return "DRIFTWATCH_WEBHOOK_SECRET_" + strings.ToUpper(strings.ReplaceAll(system, "-", "_"))
}

// ErrNoWebhookSecret: a system has no webhook secret configured.
var ErrNoWebhookSecret = errors.New("no webhook secret")

// WebhookSecrets reads a system's webhook secrets (one, or two while one
// is rotated): from systems[].webhook.secret_file, else from
// WebhookSecretEnv. The error names where it looked, never a secret.
func (c *Config) WebhookSecrets(system string) ([][]byte, error) {
	s := c.byID[system]
	if s == nil {
		return nil, fmt.Errorf("%q is not a configured system", system)
	}
	var raw, from string
	if s.Webhook != nil && s.Webhook.SecretFile != "" {
		from = "systems[" + system + "].webhook.secret_file"
		data, err := os.ReadFile(c.NATSPath(s.Webhook.SecretFile))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		raw = strings.ReplaceAll(string(data), "\r", "")
	} else {
		from = WebhookSecretEnv(system)
		raw = strings.ReplaceAll(os.Getenv(from), ",", "\n")
	}
	var out [][]byte
	for _, line := range strings.Split(raw, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, []byte(line))
		}
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("%w for %s: set systems[].webhook.secret_file or %s", ErrNoWebhookSecret, system, WebhookSecretEnv(system))
	case len(out) > 2:
		return nil, fmt.Errorf("%s holds %d secrets: one, or two while one is rotated", from, len(out))
	}
	return out, nil
}

// validHeaderName reports whether h is an HTTP header name (RFC 9110
// token characters).
func validHeaderName(h string) bool {
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return h != ""
}
