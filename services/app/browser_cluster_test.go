package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestDashboardAcrossInstances drives instance a's dashboard in headless
// Chromium while a mismatch sits on instance b (two instances on a 3-node
// cluster): the overview says which instance it is and what it owns, the
// list holds b's mismatch, and its page (record and runbook) loads from
// b, under the Content-Security-Policy without a violation. Screenshots
// of both go to test-artifacts/.
func TestDashboardAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser, a 3-node cluster and two instances")
	}
	bin := chromium(t)
	a, b := startInstances(t)
	order := ""
	for i := 0; order == ""; i++ {
		if o := fmt.Sprintf("ACROSS-%d", i); slices.Contains(b.App.Owned.Owned(), events.Partition(o, 8)) {
			order = o
		}
	}
	ev := fmt.Sprintf(`{"event_id":"x1","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, order, time.Now().UTC().Format(time.RFC3339))
	if status, body := a.Do(t, "POST", "/v1/events", "application/json", ev); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	id := detector.AlertID(order, detector.OrderNotAcknowledged, "shop", "erp")
	waitMismatch(t, b, id)

	pg := newPage(t, bin)
	ctx, must, text, shot := pg.ctx, pg.must, pg.text, pg.shot
	must("open a's dashboard", chromedp.Do(ctx, chromedp.Navigate(a.BaseURL+"/")))
	pg.watchCSP()
	must("the instance", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#status p.cluster-note[data-instance="a"]`))))
	if note := text(`#status p.cluster-note`); !strings.Contains(note, "Instance a: partitions") || !strings.Contains(note, "of 8") || !strings.Contains(note, "instances live: a, b") {
		t.Fatalf("the overview's cluster line: %q", note)
	}
	row := fmt.Sprintf(`tr.mismatch-row[data-alert-id="%s"]`, id)
	must("b's mismatch in a's list", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row))))
	shot("dashboard-cluster-overview.png")
	must("open it", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` a.mismatch-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#mismatch-page #mm-runbook .rb-command`)),
	))
	if page := text(`#mismatch-page`); !strings.Contains(page, order) {
		t.Fatalf("the mismatch page does not name %s:\n%.500s", order, page)
	}
	shot("dashboard-cluster-mismatch.png")
	pg.cspClean()
}
