package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestDashboardSignsInWithAToken drives the dashboard in headless Chromium
// against a driftwatch with http.tokens: the page loads without a token,
// the first API call's 401 opens the sign-in dialog, a wrong token is
// refused and asked again, an operate token shows the mismatches and
// resolves one (the audit names the token), and the page runs under the
// Content-Security-Policy without a violation.
func TestDashboardSignsInWithAToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	bin := chromium(t)
	env := apptest.Start(t, apptest.Config(t, securedStack(t)), "")
	if status, body, _ := call(t, env, "POST", "/v1/events", "application/json", shopEvent("sb1", "SIGNIN-1", "shop"), appIngestToken); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	id := detector.AlertID("SIGNIN-1", detector.OrderNotAcknowledged, "shop", "erp")
	waitMismatch(t, env, id)

	pg := newPage(t, bin)
	ctx, must, text, shot := pg.ctx, pg.must, pg.text, pg.shot
	must("open the dashboard", chromedp.Do(ctx, chromedp.Navigate(env.BaseURL+"/")))
	pg.watchCSP() // from here on: nothing renders data before the sign-in
	must("the sign-in dialog", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#signin[open] #signin-token`))))
	if reason := text("#signin-reason"); !strings.Contains(reason, "asks for an access token") {
		t.Fatalf("sign-in reason %q", reason)
	}
	shot("dashboard-sign-in.png")
	must("a wrong token", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#signin-token`), "not-the-token-of-this-driftwatch"),
		chromedp.Click(chromedp.CSS(`#signin-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin[open] #signin-token`)),
	))
	apptest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#signin[open] #signin-reason')?.textContent || ''`))
		if err != nil || !strings.Contains(r, "refused") {
			return fmt.Errorf("sign-in reason %q (%v)", r, err)
		}
		return nil
	})

	row := `tr.mismatch-row[data-alert-id="` + id + `"]`
	must("the operate token", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#signin-token`), appOperateToken),
		chromedp.Click(chromedp.CSS(`#signin-submit`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#signin`)),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS(`#sign-out`)),
		chromedp.WaitVisible(chromedp.CSS(`.share-fill`)),
	))
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem('driftwatch.token') || ''`))
	must("read sessionStorage", err)
	if stored != appOperateToken {
		t.Fatalf("sessionStorage holds %q", stored)
	}
	// The share bars get their width through the DOM, not a style attribute.
	width, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.share-fill').style.width`))
	must("share bar width", err)
	if !strings.HasSuffix(width, "%") {
		t.Fatalf("share bar width %q", width)
	}
	shot("dashboard-signed-in.png")

	must("open the order", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` a.order-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-page .timeline-event`)),
	))
	mis := `.order-mismatch[data-alert-id="` + id + `"]`
	must("resolve with a note", chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(mis+` textarea.resolve-note`)),
		chromedp.SendKeys(chromedp.CSS(mis+` textarea.resolve-note`), "entered in NetSuite by hand"),
		chromedp.Click(chromedp.CSS(mis+` button.resolve-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`.resolved-ok`)),
	))
	m, err := detector.GetMismatch(env.App.Store, id)
	if err != nil || m.State != detector.StateResolved || m.Audit[len(m.Audit)-1].By != "dashboard (token ops)" {
		t.Fatalf("after resolving in the browser: %+v %v", m, err)
	}
	pg.cspClean()

	// Signing out forgets the token: the dialog comes back.
	must("sign out", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#sign-out`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin[open] #signin-token`)),
	))
}
