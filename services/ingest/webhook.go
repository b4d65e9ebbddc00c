package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/webhook"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// MaxWebhookBody bounds one platform notification. Platforms send far
// less (Shopify's largest order payloads are a few hundred KiB).
const MaxWebhookBody = 1 << 20

// WebhookHandler serves POST /v1/webhooks/{system}: a configured system's
// platform notifications as the platform sends them. The platform's own
// signature is verified with the system's secret (two during a rotation),
// the payload translated into envelopes (events/webhook) and the
// envelopes appended to the log, each once: their event ids come from the
// platform's delivery id, so a delivery retried for hours is stored once.
//
// Nothing unverified enters the log, and nothing is lost: a request whose
// signature fails is answered 401 and its bytes go to the dead-letter
// stream with the reason (bad_signature, expired, missing_signature) and
// the headers that identify it, never a secret; a verified payload that
// cannot be translated goes there with its reason and is answered 202, so
// that the platform does not retry what will never translate. A log that
// cannot take the events is a 503: the platform retries.
type WebhookHandler struct {
	cfg     *config.Config
	pub     *events.Publisher
	js      jetstream.JetStream
	log     zerolog.Logger
	counted *telemetry.EventCounter
	now     func() time.Time
	systems map[string]webhookSystem
}

type webhookSystem struct {
	platform string
	secrets  webhook.Secrets
	opts     webhook.Options
}

// NewWebhookHandler reads the secrets of every system whose platform has
// native webhooks and that has them configured (systems[].webhook, or the
// secret's environment variable); a secret file named but unreadable is
// an error.
func NewWebhookHandler(cfg *config.Config, pub *events.Publisher, js jetstream.JetStream, log zerolog.Logger, counted *telemetry.EventCounter) (*WebhookHandler, error) {
	h := &WebhookHandler{cfg: cfg, pub: pub, js: js, log: log, counted: counted, now: time.Now, systems: map[string]webhookSystem{}}
	platforms := webhook.Platforms()
	for _, s := range cfg.Systems {
		if !slices.Contains(platforms, s.Platform) {
			continue
		}
		secrets, err := cfg.WebhookSecrets(s.ID)
		if errors.Is(err, config.ErrNoWebhookSecret) && s.Webhook == nil {
			continue // no webhooks for this system
		}
		if err != nil {
			return nil, err
		}
		ws := webhookSystem{platform: s.Platform, secrets: secrets}
		if s.Webhook != nil {
			ws.opts = webhook.Options{Tolerance: s.Webhook.Tolerance.D(), SecretHeader: s.Webhook.Header}
		}
		h.systems[s.ID] = ws
	}
	return h, nil
}

// Systems are the systems that take webhooks, by id, with their platform.
func (h *WebhookHandler) Systems() map[string]string {
	out := make(map[string]string, len(h.systems))
	for id, s := range h.systems {
		out[id] = s.platform
	}
	return out
}

// WebhookReply is the answer to an accepted delivery.
type WebhookReply struct {
	Platform   string          `json:"platform"`
	DeliveryID string          `json:"delivery_id,omitempty"`
	Results    []events.Result `json:"results,omitempty"`
	// DeadLettered is the reason a verified payload was kept in the
	// dead-letter stream instead of the log.
	DeadLettered string `json:"dead_lettered,omitempty"`
}

func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	system := r.PathValue("system")
	ws, ok := h.systems[system]
	if !ok {
		msg := fmt.Sprintf("%q takes no webhooks: it is not a configured system, its platform has none, or no secret is set (systems[].webhook.secret_file or %s)", system, config.WebhookSecretEnv(system))
		httpjson.WriteError(w, http.StatusNotFound, "no_webhooks", msg)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpjson.WriteError(w, http.StatusRequestEntityTooLarge, events.CodeTooLarge, fmt.Sprintf("a notification is at most %d KiB", MaxWebhookBody>>10))
			return
		}
		httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "read body: "+err.Error())
		return
	}
	req := webhook.Request{Header: r.Header, Body: body, Received: h.now()}
	opts := ws.opts
	opts.Path = r.URL.Path
	if err := webhook.VerifyWith(ws.platform, req, ws.secrets, req.Received, opts); err != nil {
		if dlErr := h.deadLetter(r.Context(), system, req, err, opts); dlErr != nil {
			h.fail(w, dlErr)
			return
		}
		h.counted.Add(system, string(events.Rejected), 1)
		h.log.Warn().Str("system", system).Str("reason", string(webhook.ReasonOf(err))).Msg("webhook refused; kept in the dead-letter stream")
		w.Header().Set("WWW-Authenticate", `Signature realm="driftwatch"`)
		httpjson.WriteError(w, http.StatusUnauthorized, string(webhook.ReasonOf(err)), err.Error())
		return
	}
	evs, delivery, err := webhook.Translate(ws.platform, req, system)
	if err != nil {
		if dlErr := h.deadLetter(r.Context(), system, req, err, opts); dlErr != nil {
			h.fail(w, dlErr)
			return
		}
		h.counted.Add(system, string(events.Rejected), 1)
		httpjson.Write(w, http.StatusAccepted, WebhookReply{Platform: ws.platform, DeliveryID: delivery, DeadLettered: string(webhook.ReasonOf(err))})
		return
	}
	batch := make([][]byte, 0, len(evs))
	for i := range evs {
		data, err := evs[i].Marshal()
		if err != nil {
			h.fail(w, err)
			return
		}
		batch = append(batch, data)
	}
	results, err := h.pub.PublishBatch(r.Context(), batch)
	for _, res := range results {
		h.counted.Add(res.System, string(res.Outcome), 1)
	}
	if err != nil && !errors.Is(err, events.ErrInvalidEvent) {
		h.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, WebhookReply{Platform: ws.platform, DeliveryID: delivery, Results: results})
}

func (h *WebhookHandler) fail(w http.ResponseWriter, err error) {
	h.log.Error().Err(err).Msg("webhook delivery not stored")
	httpjson.WriteError(w, http.StatusServiceUnavailable, "log_unavailable", "the log did not take the delivery; the platform will retry: "+err.Error())
}

// identifying are the headers a dead-lettered delivery keeps: what tells
// which delivery it was and how it was signed. Signatures are digests,
// not secrets; a shared-secret header is never kept (only that it was
// there).
var identifying = []string{
	"X-Shopify-Topic", "X-Shopify-Webhook-Id", "X-Shopify-Shop-Domain", "X-Shopify-Triggered-At", "X-Shopify-Hmac-Sha256",
	"Stripe-Signature",
	"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
	"X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Source", "X-WC-Webhook-Signature",
	"X-Hmac-Signature", "X-Hmac-Signature-V2", "X-Timestamp", "X-Path",
	"Content-Type", "User-Agent",
}

// deadLetter keeps a delivery's bytes in the dead-letter stream with the
// reason and its identifying headers (Driftwatch-Webhook-<Header>).
func (h *WebhookHandler) deadLetter(ctx context.Context, system string, req webhook.Request, cause error, opts webhook.Options) error {
	msg := events.DeadLetterMsg(system, req.Body, cause)
	for _, name := range identifying {
		if v := req.Header.Get(name); v != "" {
			msg.Header.Set("Driftwatch-Webhook-"+name, v)
		}
	}
	secretHeader := opts.SecretHeader
	if secretHeader == "" {
		secretHeader = webhook.DefaultSecretHeader
	}
	if req.Header.Get(secretHeader) != "" {
		msg.Header.Set("Driftwatch-Webhook-"+secretHeader, "(present, not kept)")
	}
	if _, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(events.DLQStream)); err != nil {
		return fmt.Errorf("%w: %v", events.ErrDeadLetterFailed, err)
	}
	return nil
}
