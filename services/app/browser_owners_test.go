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

// TestDashboardMismatchOwnerAndRunbook drives a mismatch's page in
// headless Chromium against a real driftwatch with owners and a linked
// runbook: the list shows the default owner; the mismatch's page shows its
// runbook with the exact commands; the operator takes it (the name asked
// once, kept in sessionStorage), hands it over, adds a note and resolves
// it, each in the audit trail by that name; the page runs under the
// Content-Security-Policy without a violation. A screenshot of the
// mismatch with its owner and runbook goes to test-artifacts/.
func TestDashboardMismatchOwnerAndRunbook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	bin := chromium(t)
	env := apptest.Start(t, apptest.Config(t, apptest.StackYAML+`owners:
  systems: {erp: team-erp}
runbooks:
  order_not_acknowledged: {url: "https://wiki.example.com/runbooks/order-not-acknowledged"}
`), "")
	ev := fmt.Sprintf(`{"event_id":"o1","order_id":"OWNER-1","system":"shop","status":"unfulfilled","occurred_at":"%s","attributes":{"amount":"349.00","currency":"EUR"}}`,
		time.Now().UTC().Format(time.RFC3339))
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", ev); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	id := detector.AlertID("OWNER-1", detector.OrderNotAcknowledged, "shop", "erp")
	waitMismatch(t, env, id)

	pg := newPage(t, bin)
	ctx, must, text, shot := pg.ctx, pg.must, pg.text, pg.shot
	row := fmt.Sprintf(`tr.mismatch-row[data-alert-id="%s"]`, id)
	must("open the dashboard", chromedp.Do(ctx, chromedp.Navigate(env.BaseURL+"/")))
	pg.watchCSP()
	must("the list", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row))))
	if owner := text(row + ` td.col-owner`); strings.TrimSpace(owner) != "team-erp" {
		t.Fatalf("the list's owner cell: %q", owner)
	}

	// The mismatch's page: owner and runbook.
	must("open the mismatch", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` a.mismatch-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#mismatch-page #mm-runbook .rb-command`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-owner[data-owner="team-erp"]`)),
	))
	runbook := text(`#mm-runbook`)
	for _, want := range []string{"OWNER-1", "usual causes", "first checks", "driftwatch order OWNER-1", "driftwatch replay --order OWNER-1", "Dropped webhook"} {
		if !strings.Contains(runbook, want) && !strings.Contains(strings.ToLower(runbook), want) { // headings are shown in capitals
			t.Fatalf("the runbook lacks %q:\n%s", want, runbook)
		}
	}
	link, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#mm-runbook .rb-link a').getAttribute('href')`))
	must("runbook link", err)
	if link != "https://wiki.example.com/runbooks/order-not-acknowledged" {
		t.Fatalf("runbook link %q", link)
	}

	// Take it: the name is asked once, then kept.
	must("take it", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#mm-take`)),
		chromedp.WaitVisible(chromedp.CSS(`#operator-dialog[open] #operator-name`)),
		chromedp.SendKeys(chromedp.CSS(`#operator-name`), "kim"),
		chromedp.Click(chromedp.CSS(`#operator-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-owner[data-owner="kim"]`)),
	))
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem('driftwatch.operator') || ''`))
	must("read sessionStorage", err)
	if stored != "kim" || !strings.Contains(text(`#operator`), "kim") {
		t.Fatalf("operator name: stored %q, header %q", stored, text(`#operator`))
	}

	// Hand it over and add a note: no dialog again.
	must("hand it over", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#mm-handover`), "team-wms"),
		chromedp.Click(chromedp.CSS(`#mm-handover-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-owner[data-owner="team-wms"]`)),
	))
	must("add a note", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#mm-note`), "the warehouse team re-runs the ERP import"),
		chromedp.Click(chromedp.CSS(`#mm-note-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`.note-added`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-audit li.action-note`)),
	))
	if trail := text(`#mm-audit`); !strings.Contains(trail, "kim → team-wms") || !strings.Contains(trail, "re-runs the ERP import") {
		t.Fatalf("audit trail on the page:\n%s", trail)
	}
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0); true`))
	must("scroll to the top", err)
	shot("dashboard-mismatch-owner-runbook.png")

	// Resolve it.
	must("resolve", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#mm-resolve textarea.resolve-note`), "re-imported into NetSuite"),
		chromedp.Click(chromedp.CSS(`#mm-resolve button.resolve-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-resolve .resolved-ok`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-chips .state-resolved`)),
		chromedp.WaitVisible(chromedp.CSS(`#mm-audit li.action-resolved`)),
	))
	if !strings.Contains(text(`#mm-owner-feedback`), "Resolved") {
		t.Fatalf("owner actions after the resolution: %q", text(`#mm-owner-feedback`))
	}

	m, err := detector.GetMismatch(env.App.Store, id)
	if err != nil || m.State != detector.StateResolved || m.Owner != "team-wms" {
		t.Fatalf("after the browser: %+v %v", m, err)
	}
	var trail []string
	for _, a := range m.Audit {
		trail = append(trail, a.Action+"/"+a.By+"/"+a.From+">"+a.To+"/"+a.Note)
	}
	want := "opened/sla/>/|assigned/driftwatch/>team-erp/default owner (owners.systems.erp)|assigned/kim/team-erp>kim/|assigned/kim/kim>team-wms/|" +
		"note/kim/>/the warehouse team re-runs the ERP import|resolved/kim/>/re-imported into NetSuite"
	if got := strings.Join(trail, "|"); got != want {
		t.Fatalf("audit trail\n%s\nwant\n%s", got, want)
	}
	pg.cspClean()
}
