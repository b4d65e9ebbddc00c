// Package notify delivers alerts beyond NATS: HTTP webhooks configured in
// alerts.webhooks, as the alert's JSON (format json) or as a Slack-compatible
// {"text": ...} message (format slack). Deliveries are queued and retried
// with exponential backoff; a full queue drops the oldest delivery and says
// so in the log (the alert itself is always on the NATS subject).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/services/config"
)

// Notification is one alert to deliver.
type Notification struct {
	// Kind is the severity of a mismatch alert or the kind of an ops alert;
	// a webhook's kinds filter on it.
	Kind string
	// State is open, escalated, resolved, firing or cleared.
	State string
	// JSON is the alert record; Text the sentence for chat.
	JSON []byte
	Text string
}

// Notifier posts notifications to the configured webhooks.
type Notifier struct {
	hooks   []config.Webhook
	client  *http.Client
	log     zerolog.Logger
	queue   chan job
	backoff time.Duration
	tries   int
}

type job struct {
	hook config.Webhook
	n    Notification
}

// New returns a notifier for hooks (nil when there are none).
func New(hooks []config.Webhook, log zerolog.Logger) *Notifier {
	if len(hooks) == 0 {
		return nil
	}
	return &Notifier{hooks: hooks, client: &http.Client{Timeout: 10 * time.Second}, log: log,
		queue: make(chan job, 10000), backoff: 500 * time.Millisecond, tries: 6}
}

// Run delivers queued notifications on two workers until ctx ends (a nil
// Notifier returns at once).
func (n *Notifier) Run(ctx context.Context) error {
	if n == nil {
		return nil
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-n.queue:
					n.deliver(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// Notify queues a notification for every hook that wants its kind.
func (n *Notifier) Notify(note Notification) {
	if n == nil {
		return
	}
	for _, h := range n.hooks {
		if !wants(h, note) {
			continue
		}
		select {
		case n.queue <- job{h, note}:
		default:
			n.log.Warn().Str("url", RedactURL(h.URL)).Msg("webhook queue full; dropping a notification (it is still on NATS)")
		}
	}
}

// RedactURL is a webhook URL fit for a log line or an error: its scheme
// and host only, with "/…" where it had a path or query and no user
// information. Chat webhooks carry their secret in the path (a Slack
// hook's /services/T…/B…/token), others in the query or the user part.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook URL)"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		out += "/…"
	}
	return out
}

func wants(h config.Webhook, note Notification) bool {
	if len(h.Kinds) == 0 {
		return true
	}
	for _, k := range h.Kinds {
		if k == note.Kind || k == note.State {
			return true
		}
	}
	return false
}

func (n *Notifier) deliver(ctx context.Context, j job) {
	body := j.n.JSON
	if j.hook.Format == "slack" {
		body, _ = json.Marshal(map[string]string{"text": j.n.Text})
	}
	wait := n.backoff
	for attempt := 1; attempt <= n.tries; attempt++ {
		err := n.post(ctx, j.hook.URL, body)
		if err == nil {
			return
		}
		n.log.Warn().Err(err).Str("url", RedactURL(j.hook.URL)).Int("attempt", attempt).Msg("webhook delivery failed")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
	n.log.Error().Str("url", RedactURL(j.hook.URL)).Msg("webhook delivery gave up")
}

// post sends body to target. Its errors never carry target's path,
// query or credentials (RedactURL).
func (n *Notifier) post(ctx context.Context, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: bad URL", RedactURL(target))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "driftwatch")
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = RedactURL(ue.URL)
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}
