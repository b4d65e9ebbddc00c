package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

// chromium finds the system browser (Debian's chromium package).
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("DRIFTWATCH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" || os.Getenv("DRIFTWATCH_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium: install Debian's chromium package (.ci/run does)")
	}
	t.Skip("no chromium on this machine")
	return ""
}

// artifacts is where screenshots go (not committed).
func artifacts(t *testing.T) string {
	dir := filepath.Join("..", "..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDashboardInChromium drives the dashboard in real headless Chromium
// against a real driftwatch with real events: the mismatch list shows a
// freshly injected fault, the order page shows its timeline and gap, and
// resolving with a note works.
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	bin := chromium(t)
	env := apptest.Start(t, apptest.Config(t, ""), "")
	now := time.Now().UTC()
	for _, e := range []string{
		fmt.Sprintf(`{"event_id":"b1","order_id":"BROWSER-1","system":"shop","status":"unfulfilled","occurred_at":"%s","attributes":{"amount":"129.90","currency":"EUR"}}`, now.Format(time.RFC3339)),
		fmt.Sprintf(`{"event_id":"b2","order_id":"BROWSER-2","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, now.Format(time.RFC3339)),
		fmt.Sprintf(`{"event_id":"b3","order_id":"BROWSER-2","system":"erp","status":"Pending Fulfillment","occurred_at":"%s"}`, now.Format(time.RFC3339)),
	} {
		if status, body := env.Do(t, "POST", "/v1/events", "application/json", e); status != 202 {
			t.Fatalf("%d %s", status, body)
		}
	}
	id := detector.AlertID("BROWSER-1", detector.OrderNotAcknowledged, "shop", "erp")
	waitMismatch(t, env, id)

	pg := newPage(t, bin)
	ctx, must, text, shot := pg.ctx, pg.must, pg.text, pg.shot
	row := fmt.Sprintf(`tr.mismatch-row[data-alert-id="%s"]`, id)

	// The mismatch list shows the freshly injected fault.
	must("open the dashboard", chromedp.Do(ctx, chromedp.Navigate(env.BaseURL+"/"), chromedp.WaitVisible(chromedp.CSS(row))))
	if total := text("#total-count"); total == "" || total == "0" {
		t.Fatalf("total count %q", total)
	}
	shot("dashboard-mismatches.png")

	// Its order page shows the timeline and the gap in words.
	must("open the order", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` a.order-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-page .timeline-event`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-gaps .gap`)),
	))
	events, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#order-timeline .timeline-event').length`))
	must("count events", err)
	heading, gaps := text("#order-id"), text("#order-gaps")
	// The gap carries the mismatch's own pattern.
	if strings.TrimSpace(heading) != "BROWSER-1" || events != 1 || !strings.Contains(gaps, "never reflected it") || !strings.Contains(gaps, "order_not_acknowledged") {
		t.Fatalf("order page: heading %q, %d events, gaps %q", heading, events, gaps)
	}
	shot("dashboard-order.png")

	// Resolving: an empty note is refused, a note resolves it.
	mis := fmt.Sprintf(`.order-mismatch[data-alert-id="%s"]`, id)
	must("submit an empty note", chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(mis+` textarea.resolve-note`)),
		chromedp.Click(chromedp.CSS(mis+` button.resolve-submit`)),
		chromedp.WaitVisible(chromedp.CSS(mis+` .error`)),
	))
	if errText := text(mis + ` .error`); !strings.Contains(strings.ToLower(errText), "note") {
		t.Fatalf("empty note error: %q", errText)
	}
	must("resolve with a note", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(mis+` textarea.resolve-note`), "entered in NetSuite by hand"),
		chromedp.Click(chromedp.CSS(mis+` button.resolve-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`.resolved-ok`)),
	))
	m, err := detector.GetMismatch(env.App.Store, id)
	if err != nil || m.State != detector.StateResolved || m.Audit[len(m.Audit)-1].Note != "entered in NetSuite by hand" {
		t.Fatalf("after resolving in the browser: %+v %v", m, err)
	}
}

// page is a headless chromium tab for a browser test: its context (90 s,
// ended with the test), must (a step's error fails the test) and text (an
// element's text).
type page struct {
	t   *testing.T
	ctx context.Context
}

func newPage(t *testing.T, bin string) *page {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancel(); cancelTab(); cancelAlloc() })
	return &page{t: t, ctx: ctx}
}

func (p *page) must(step string, err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatalf("%s: %v", step, err)
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	p.must("text of "+sel, err)
	return v
}

// shot saves a full-page screenshot to test-artifacts/name.
func (p *page) shot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	p.must("screenshot", err)
	p.must("write screenshot", os.WriteFile(filepath.Join(artifacts(p.t), name), png, 0o644))
}

// watchCSP records the Content-Security-Policy violations the page
// reports from now on (cspClean fails on any).
func (p *page) watchCSP() {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`window.__cspViolations = [];
		document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
		true`))
	p.must("watch CSP violations", err)
}

// cspClean fails the test when the page reported a violation since
// watchCSP.
func (p *page) cspClean() {
	p.t.Helper()
	violations, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`window.__cspViolations`))
	p.must("read CSP violations", err)
	if len(violations) > 0 {
		p.t.Fatalf("Content-Security-Policy violations: %v", violations)
	}
}

// waitMismatch waits until the mismatch id is in the store.
func waitMismatch(t *testing.T, env *apptest.Env, id string) {
	t.Helper()
	apptest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		_, err := detector.GetMismatch(env.App.Store, id)
		return err
	})
}
