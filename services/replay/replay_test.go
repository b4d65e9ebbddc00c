package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/replay"
)

func publish(t *testing.T, env *apptest.Env, lines ...string) {
	t.Helper()
	pub, _ := events.NewPublisher(env.NC)
	var batch [][]byte
	for _, l := range lines {
		batch = append(batch, []byte(l))
	}
	if _, err := pub.PublishBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func ev(id, order, system, status string, at time.Time) string {
	return fmt.Sprintf(`{"event_id":"%s","order_id":"%s","system":"%s","status":"%s","occurred_at":"%s"}`, id, order, system, status, at.Format(time.RFC3339Nano))
}

// scenario publishes healthy orders and known faults and waits until live
// detection raised them all.
func scenario(t *testing.T, env *apptest.Env) time.Time {
	start := time.Now()
	at := start.In(time.FixedZone("", -4*3600))
	var lines []string
	for i := 0; i < 30; i++ {
		o := fmt.Sprintf("P-%02d", i)
		switch i % 5 {
		case 0:
			lines = append(lines, ev("s"+o, o, "shop", "unfulfilled", at))
		case 1:
			lines = append(lines, ev("s"+o, o, "shop", "unfulfilled", at), ev("e"+o, o, "erp", "Pending Fulfillment", at))
		case 2:
			lines = append(lines, ev("s"+o, o, "shop", "unfulfilled", at), ev("e"+o, o, "erp", "Pending Fulfillment", at), ev("w"+o, o, "wms", "confirmed", at), ev("f"+o, o, "shop", "fulfilled", at.Add(time.Millisecond)))
		default:
			lines = append(lines, ev("s"+o, o, "shop", "unfulfilled", at), ev("e"+o, o, "erp", "Pending Fulfillment", at), ev("w"+o, o, "wms", "confirmed", at))
		}
	}
	lines = append(lines, fmt.Sprintf(`{"event_id":"k1","order_id":"P-00","system":"erp","kind":"ack","ack_of":"shop:sP-00","occurred_at":"%s"}`, at.Format(time.RFC3339Nano)))
	publish(t, env, lines...)
	apptest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		_, total, err := detector.ListMismatches(env.App.Store, detector.Filter{}, 0, 1)
		if err != nil || total < 18 {
			return fmt.Errorf("%d mismatches (%v)", total, err)
		}
		return nil
	})
	env.WaitSettled(t, 30*time.Second) // everything that will fire has fired
	return start
}

func keys(ms []*detector.Mismatch) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.OrderID+" "+m.Pattern)
	}
	sort.Strings(out)
	return out
}

func TestReplay(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	start := scenario(t, env)

	t.Run("order timeline shows both timestamps and the missing acknowledgement", func(t *testing.T) {
		status, body := env.Do(t, "GET", "/v1/orders/P-00/replay", "", "")
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		for _, want := range []string{`"occurred_at":"`, `"received_at":"`, "-04:00; erp never reflected it within the 2s SLA", "acknowledged the event", `"lag_ms"`} {
			if !strings.Contains(body, want) {
				t.Errorf("replay lacks %q: %s", want, body)
			}
		}
		// The gap carries the mismatch's own classification and id.
		var v replay.View
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		var stored []*detector.Mismatch
		if err := detector.ScanMismatches(env.App.Store, detector.Filter{}, func(m *detector.Mismatch) error {
			if m.OrderID == "P-00" && m.FlowTo != "" {
				stored = append(stored, m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(v.Gaps) == 0 || len(stored) == 0 {
			t.Fatalf("gaps %+v, flow mismatches %+v", v.Gaps, stored)
		}
		for _, g := range v.Gaps {
			found := false
			for _, m := range stored {
				found = found || (m.AlertID == g.AlertID && m.Pattern == g.Pattern && m.Severity == g.Severity)
			}
			if !found {
				t.Errorf("gap %+v has no stored mismatch with the same id, pattern and severity (%s)", g, keys(stored))
			}
		}
	})

	t.Run("a window replay finds what live detection found", func(t *testing.T) {
		var live []*detector.Mismatch
		if err := detector.ScanMismatches(env.App.Store, detector.Filter{}, func(m *detector.Mismatch) error { live = append(live, m); return nil }); err != nil {
			t.Fatal(err)
		}
		res, err := replay.Window(context.Background(), replay.WindowOptions{JS: env.JS, Config: apptest.Config(t, ""), Since: start.Add(-time.Second), Until: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		got, want := keys(res.Mismatches), keys(live)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("window replay:\n%s\nlive:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// A dry run: nothing was published or stored live.
		_, total, _ := detector.ListMismatches(env.App.Store, detector.Filter{}, 0, 1)
		if total != len(live) {
			t.Fatalf("the dry run changed the live store: %d vs %d", total, len(live))
		}
	})

	t.Run("backtest passes identical tables and flags a broken one", func(t *testing.T) {
		cfg := apptest.Config(t, "")
		same := t.TempDir()
		shopify, _ := os.ReadFile("../../schemas/mappings/shopify.yaml")
		if err := os.WriteFile(filepath.Join(same, "shopify.yaml"), shopify, 0o644); err != nil {
			t.Fatal(err)
		}
		cand, err := mapping.LoadDirs(same)
		if err != nil {
			t.Fatal(err)
		}
		res, err := replay.Backtest(context.Background(), replay.BacktestOptions{JS: env.JS, Config: cfg, Candidate: cand})
		if err != nil {
			t.Fatal(err)
		}
		if res.Regressions != 0 || len(res.Appear) != 0 || len(res.Disappear) != 0 || res.Events == 0 {
			t.Fatalf("identical tables: %+v", res)
		}
		broken := t.TempDir()
		text := string(shopify)
		text = strings.Replace(text, `"fulfilled": shipped`, `"fulfilled": pending`, 1) // moved to a wrong state
		text = strings.Replace(text, `"unfulfilled": confirmed`, ``, 1)                 // removed
		text = strings.Replace(text, "version: 1", "version: 2", 1)
		if text == string(shopify) {
			t.Fatal("the broken table did not change")
		}
		if err := os.WriteFile(filepath.Join(broken, "shopify.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cand, err = mapping.LoadDirs(broken)
		if err != nil {
			t.Fatal(err)
		}
		res, err = replay.Backtest(context.Background(), replay.BacktestOptions{JS: env.JS, Config: cfg, Candidate: cand, Sample: 1000})
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		for _, p := range res.Platforms {
			for _, c := range p.Changes {
				kinds[c.Kind+" "+c.Raw] = true
			}
		}
		if res.Regressions < 2 || !kinds[replay.NewlyUnmapped+" unfulfilled"] || !kinds[replay.Changed+" fulfilled"] {
			t.Fatalf("broken tables: regressions %d, changes %v", res.Regressions, kinds)
		}
		if len(res.Appear)+len(res.Disappear) == 0 {
			t.Fatal("a broken table changed no mismatch")
		}
	})
}
