package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events/webhook"
	"github.com/driftwatch/driftwatch/services/config"
)

// defaultTopics is the topic `webhook test` sends when --topic is not
// given, for the platforms that name it in a header.
var defaultTopics = map[string]string{webhook.Shopify: "orders/updated", webhook.WooCommerce: "order.updated"}

func newWebhookCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Native platform webhooks (POST /v1/webhooks/<system>)"}
	cmd.AddCommand(newWebhookTestCmd())
	return cmd
}

func newWebhookTestCmd() *cobra.Command {
	var httpAddr, configPath, system, platform, secretFile, topic, deliveryID string
	var auth apiAuth
	cmd := &cobra.Command{
		Use:   "test --system SYSTEM PAYLOAD.json",
		Short: "Sign a platform payload the way the platform does and post it to POST /v1/webhooks/<system>",
		Long: `Sign a platform's notification payload with the system's webhook secret,
the way the platform signs its deliveries, and post it to a running
driftwatch, as the platform would: to check a setup, or to replay a
payload copied from the platform's logs. The secret comes from
--secret-file, else from DRIFTWATCH_WEBHOOK_SECRET_<SYSTEM> (as serve
reads it); the platform from --platform, else from the configuration
(--config, or the running server's).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if system == "" {
				return usagef("--system: the system the payload comes from is required")
			}
			body, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if platform == "" {
				cfg, done, err := clientConfig(configPath, httpAddr, &auth)
				if err != nil {
					return err
				}
				defer done()
				s, ok := cfg.System(system)
				if !ok {
					return usagef("--system: %q is not a configured system", system)
				}
				platform = s.Platform
			}
			secret, err := webhookSecret(secretFile, system)
			if err != nil {
				return err
			}
			base, err := apiBaseURL(httpAddr)
			if err != nil {
				return err
			}
			path := "/v1/webhooks/" + url.PathEscape(system)
			headers := webhook.SignWith(platform, body, secret, time.Now(), webhook.Options{Path: path})
			if headers == nil {
				return usagef("--platform: %q has no native webhooks (those that do: %s)", platform, strings.Join(webhook.Platforms(), ", "))
			}
			if deliveryID == "" {
				b := make([]byte, 16)
				_, _ = rand.Read(b)
				deliveryID = hex.EncodeToString(b)
			}
			if topic == "" {
				topic = defaultTopics[platform]
			}
			switch platform {
			case webhook.Shopify:
				headers.Set("X-Shopify-Topic", topic)
				headers.Set("X-Shopify-Webhook-Id", deliveryID)
				headers.Set("X-Shopify-Triggered-At", time.Now().UTC().Format(time.RFC3339Nano))
			case webhook.WooCommerce:
				headers.Set("X-WC-Webhook-Topic", topic)
				headers.Set("X-WC-Webhook-Delivery-ID", deliveryID)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, base+path, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header = headers
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("driftwatch API at %s: %w (is driftwatch serve running? see --http)", base, err)
			}
			defer resp.Body.Close()
			reply, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			printf(os.Stdout, "%s %s\n%s\n", resp.Status, path, bytes.TrimSpace(reply))
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("the webhook was refused: %s", resp.Status)
			}
			return nil
		},
	}
	f := cmd.Flags()
	httpFlag(f, &httpAddr)
	auth.addFlags(f)
	f.StringVar(&configPath, "config", "", "configuration file, for the system's platform (default: the running server's)")
	f.StringVar(&system, "system", "", "the configured system the payload comes from")
	f.StringVar(&platform, "platform", "", "the platform to sign as (default: the system's platform in the configuration)")
	f.StringVar(&secretFile, "secret-file", "", "the webhook secret (default: DRIFTWATCH_WEBHOOK_SECRET_<SYSTEM>)")
	f.StringVar(&topic, "topic", "", "the topic header, for Shopify (default orders/updated) and WooCommerce (default order.updated)")
	f.StringVar(&deliveryID, "delivery-id", "", "the delivery id header, for Shopify and WooCommerce (default: a new one; repeat one to send a retry)")
	return cmd
}

// webhookSecret reads the first secret of file, else of the system's
// environment variable (the one the server signs with during a rotation
// is the first).
func webhookSecret(file, system string) ([]byte, error) {
	raw := ""
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		raw = string(data)
	} else {
		raw = strings.ReplaceAll(os.Getenv(config.WebhookSecretEnv(system)), ",", "\n")
	}
	for _, line := range strings.Split(raw, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return []byte(line), nil
		}
	}
	return nil, usagef("no webhook secret: give --secret-file or set %s", config.WebhookSecretEnv(system))
}
