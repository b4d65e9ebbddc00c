package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/services/config"
)

func TestWebhookRetriesAndFormats(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first attempt fails
			return
		}
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, b)
	}))
	defer srv.Close()
	n := New([]config.Webhook{
		{URL: srv.URL + "/json", Kinds: []string{"critical"}},
		{URL: srv.URL + "/slack", Format: "slack", Kinds: []string{"escalation"}},
	}, zerolog.Nop())
	n.backoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = n.Run(ctx) }()
	n.Notify(Notification{Kind: "critical", State: "open", JSON: []byte(`{"alert_id":"a1"}`), Text: "x"})
	n.Notify(Notification{Kind: "low", State: "open", JSON: []byte(`{"alert_id":"a2"}`), Text: "y"}) // no hook wants it
	n.Notify(Notification{Kind: "escalation", State: "firing", JSON: []byte(`{}`), Text: "escalated: order O-1"})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(bodies)
		mu.Unlock()
		if got == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 || calls != 3 {
		t.Fatalf("%d deliveries after %d calls: %q", len(bodies), calls, bodies)
	}
	seen := map[string]bool{}
	for _, b := range bodies {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		if v["alert_id"] == "a1" {
			seen["json"] = true
		}
		if v["text"] == "escalated: order O-1" {
			seen["slack"] = true
		}
	}
	if !seen["json"] || !seen["slack"] {
		t.Fatalf("deliveries %q", bodies)
	}
}

// TestSecretsInWebhookURLsAreRedacted: a hook's path token, query secret
// and user information never reach a log line or an error.
func TestSecretsInWebhookURLsAreRedacted(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/SECRETTOKEN": "https://hooks.slack.com/…",
		"https://user:SECRETPASS@example.com/hook":               "https://example.com/…",
		"https://example.com/?token=SECRET":                      "https://example.com/…",
		"http://127.0.0.1:9000":                                  "http://127.0.0.1:9000",
		"not a url SECRET":                                       "(webhook URL)",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
	var logs bytes.Buffer
	n := New([]config.Webhook{{URL: "http://127.0.0.1:1/services/T0/B0/SECRETTOKEN"}}, zerolog.New(&logs))
	n.backoff, n.tries = time.Millisecond, 2
	n.deliver(context.Background(), job{hook: n.hooks[0], n: Notification{Kind: "critical", JSON: []byte(`{}`)}})
	if strings.Contains(logs.String(), "SECRET") || !strings.Contains(logs.String(), "webhook delivery gave up") {
		t.Fatalf("logs: %s", logs.String())
	}
}
