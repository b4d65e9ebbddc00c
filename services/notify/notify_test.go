package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
