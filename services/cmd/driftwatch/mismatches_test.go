package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestMismatchCommands drives a mismatch through the client commands
// against a real driftwatch: the list shows its default owner and filters
// by owner; show prints the record, the runbook with the exact commands
// and the audit trail; assign, note and resolve change it, named in the
// trail as --by says.
func TestMismatchCommands(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, apptest.StackYAML+"owners:\n  systems: {erp: team-erp}\n"), "")
	ev := fmt.Sprintf(`{"event_id":"c1","order_id":"CLI 1","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, time.Now().UTC().Format(time.RFC3339))
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", ev); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	id := detector.AlertID("CLI 1", detector.OrderNotAcknowledged, "shop", "erp")
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, err := detector.GetMismatch(env.App.Store, id)
		return err
	})
	h := "--http=" + env.BaseURL

	out, err := runCLI(t, "mismatches", h, "--owner", "team-erp")
	if err != nil || !strings.Contains(out, "OWNER") || !strings.Contains(out, "team-erp") || !strings.Contains(out, id) {
		t.Fatalf("list by owner: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "mismatches", h, "--owner", "none"); err != nil || strings.Contains(out, id) {
		t.Fatalf("list of the unassigned: %v\n%s", err, out)
	}

	out, err = runCLI(t, "mismatches", "show", id, h)
	for _, want := range []string{"Owner     team-erp", "Runbook", "Usual causes:", "First checks:", "driftwatch order 'CLI 1'", "driftwatch replay --order 'CLI 1'",
		"Audit trail", "opened", "assigned unassigned -> team-erp", `"default owner (owners.systems.erp)"`} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("show lacks %q: %v\n%s", want, err, out)
		}
	}

	if out, err := runCLI(t, "mismatches", "assign", id, h, "--owner", "kim", "--by", "lead", "--note", "kim knows NetSuite"); err != nil || !strings.Contains(out, "assigned to kim (was team-erp)") {
		t.Fatalf("assign: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "mismatches", "assign", id, h, "--owner", "kim"); err != nil || !strings.Contains(out, "nothing changed") {
		t.Fatalf("assign again: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "mismatches", "note", id, h, "--note", "called the ERP team", "--by", "kim"); err != nil || !strings.Contains(out, "note added") {
		t.Fatalf("note: %v\n%s", err, out)
	}
	out, err = runCLI(t, "mismatches", "resolve", id, h, "--note", "entered by hand", "--by", "kim", "-o", "json")
	var m detector.Mismatch
	if err != nil || json.Unmarshal([]byte(out), &m) != nil || m.State != detector.StateResolved || m.Owner != "kim" || m.Runbook == nil {
		t.Fatalf("resolve: %v\n%s", err, out)
	}
	var trail []string
	for _, a := range m.Audit {
		trail = append(trail, a.Action+"/"+a.By+"/"+a.To+"/"+a.Note)
	}
	want := "opened/sla//|assigned/driftwatch/team-erp/default owner (owners.systems.erp)|assigned/lead/kim/kim knows NetSuite|note/kim//called the ERP team|resolved/kim//entered by hand"
	if got := strings.Join(trail, "|"); got != want {
		t.Fatalf("audit trail\n%s\nwant\n%s", got, want)
	}
	if _, err := runCLI(t, "mismatches", "assign", id, h, "--owner", "bo"); err == nil || !strings.Contains(err.Error(), "already resolved") {
		t.Fatalf("assigning a resolved mismatch: %v", err)
	}
	if out, err := runCLI(t, "mismatches", h, "--state", "all", "--order", "CLI 1", "-o", "json"); err != nil || !strings.Contains(out, `"owner": "kim"`) {
		t.Fatalf("state all: %v\n%s", err, out)
	}
}

// TestMismatchCommandsUsage: unknown filter values, a missing --owner or
// --note and a wrong number of arguments are bad usage (exit status 2),
// the filters' errors listing the valid values; an unknown system is
// found so by the API.
func TestMismatchCommandsUsage(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	h := "--http=" + env.BaseURL
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mismatches", h, "--pattern", "order_not_acked"}, "order_not_acknowledged, shipment_not_reflected"},
		{[]string{"mismatches", h, "--severity", "urgent"}, "critical, high, medium or low"},
		{[]string{"mismatches", h, "--state", "closed"}, "open, escalated, resolved or all"},
		{[]string{"mismatches", h, "--system", "netsuite"}, `--system: "netsuite" is not one of shop, amazon, erp, wms, stripe or carrier`},
		{[]string{"mismatches", "show", "dw-1", h, "-o", "csv"}, "table or json"},
		{[]string{"mismatches", "assign", "dw-1", h}, "--owner is required"},
		{[]string{"mismatches", "note", "dw-1", h}, "--note is required"},
		{[]string{"mismatches", "resolve", "dw-1", h}, "--note is required"},
		{[]string{"mismatches", "show", h}, "accepts 1 arg"},
	} {
		_, err := runCLI(t, c.args...)
		var ue usageError
		if err == nil || !(errors.As(err, &ue) || isCobraUsage(err)) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want bad usage saying %q", c.args[1:], err, c.want)
		}
	}
	if _, err := runCLI(t, "mismatches", "show", "dw-000000000000000000000000", h); err == nil || !strings.Contains(err.Error(), "no mismatch") {
		t.Fatalf("show of an unknown mismatch: %v", err)
	}
}
