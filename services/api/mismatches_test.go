package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

// ownersStack is the test stack with owners and a linked runbook.
const ownersStack = `owners:
  systems: {erp: team-erp}
runbooks:
  order_not_acknowledged: {url: "https://wiki.example.com/runbooks/order-not-acknowledged"}
`

// published collects the alert records published on driftwatch.alerts.>
// (ops alerts left out), each with its Nats-Msg-Id.
type published struct {
	mu   sync.Mutex
	ids  []string
	recs []detector.Alert
	raw  [][]byte
}

func subscribe(t *testing.T, env *apptest.Env) *published {
	t.Helper()
	p := &published{}
	sub, err := env.NC.Subscribe("driftwatch.alerts.>", func(m *nats.Msg) {
		if strings.HasPrefix(m.Subject, events.OpsAlertsPrefix) {
			return
		}
		var a detector.Alert
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.ids = append(p.ids, m.Header.Get(events.HeaderMsgID))
		p.recs = append(p.recs, a)
		p.raw = append(p.raw, m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := env.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

// msgIDs lists the msg ids of the records of alert id seen so far, once
// the detector has published everything.
func (p *published) msgIDs(t *testing.T, env *apptest.Env, id string) []string {
	t.Helper()
	env.WaitSettled(t, 20*time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, x := range p.ids {
		if strings.HasPrefix(x, id+":") {
			out = append(out, x)
		}
	}
	return out
}

func (p *published) last(id string) detector.Alert {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.recs) - 1; i >= 0; i-- {
		if p.recs[i].AlertID == id {
			return p.recs[i]
		}
	}
	return detector.Alert{}
}

// do calls the API and decodes a 2xx reply into out.
func do(t *testing.T, env *apptest.Env, method, path, body string, out any) (int, string) {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	status, reply := env.Do(t, method, path, ct, body)
	if status/100 == 2 && out != nil {
		if err := json.Unmarshal([]byte(reply), out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, reply)
		}
	}
	return status, reply
}

// openMismatch sends a shop order the ERP never gets and waits for its
// order_not_acknowledged.
func openMismatch(t *testing.T, env *apptest.Env, order string) string {
	t.Helper()
	ev := fmt.Sprintf(`{"event_id":"%s-1","order_id":"%s","system":"shop","status":"unfulfilled","occurred_at":"%s"}`, order, order, time.Now().UTC().Format(time.RFC3339))
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", ev); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	id := detector.AlertID(order, detector.OrderNotAcknowledged, "shop", "erp")
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, err := detector.GetMismatch(env.App.Store, id)
		return err
	})
	return id
}

// TestMismatchOwnersNotesAndRunbook runs a mismatch's life through the
// API of a real driftwatch: it opens with its default owner and a
// runbook; an assignment is kept in the trail and republished as
// <alert_id>:assigned:<n>; the same owner again changes nothing; a note
// publishes nothing; the owner filter finds it; a resolved mismatch takes
// notes and no owner. Every published record validates against
// schemas/alert.schema.json.
func TestMismatchOwnersNotesAndRunbook(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, apptest.StackYAML+ownersStack), "")
	pub := subscribe(t, env)
	id := openMismatch(t, env, "OWN-1")
	base := "/v1/mismatches/" + id

	var m detector.Mismatch
	if status, body := do(t, env, "GET", base, "", &m); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	rb := m.Runbook
	if m.Owner != "team-erp" || rb == nil || !strings.Contains(rb.Summary, "OWN-1") || rb.URL != "https://wiki.example.com/runbooks/order-not-acknowledged" ||
		!slices.Contains(rb.Commands, "driftwatch replay --order OWN-1") || !slices.Contains(rb.Commands, "driftwatch order OWN-1") || len(rb.Causes) == 0 || len(rb.Checks) == 0 {
		t.Fatalf("opened: owner %q, runbook %+v", m.Owner, rb)
	}

	if status, body := do(t, env, "POST", base+"/assign", `{"owner":"kim","by":"lead","note":"kim knows NetSuite"}`, &m); status != 200 || m.Owner != "kim" || m.Runbook == nil {
		t.Fatalf("assign: %d %s", status, body)
	}
	last := m.Audit[len(m.Audit)-1]
	if last.Action != detector.ActionAssigned || last.From != "team-erp" || last.To != "kim" || last.By != "lead" || last.Note != "kim knows NetSuite" {
		t.Fatalf("audit %+v", last)
	}
	if status, body := do(t, env, "POST", base+"/assign", `{"owner":"kim"}`, &m); status != 200 || m.Owner != "kim" {
		t.Fatalf("same owner: %d %s", status, body)
	}
	if status, body := do(t, env, "POST", base+"/notes", `{"note":"called the ERP team","by":"kim"}`, &m); status != 200 ||
		m.Audit[len(m.Audit)-1].Action != detector.ActionNote || m.Audit[len(m.Audit)-1].Note != "called the ERP team" {
		t.Fatalf("note: %d %s", status, body)
	}
	if got, want := pub.msgIDs(t, env, id), []string{id + ":open", id + ":assigned:1"}; !slices.Equal(got, want) {
		t.Fatalf("published %q, want %q", got, want)
	}
	if a := pub.last(id); a.Owner != "kim" || a.State != detector.StateOpen || a.Runbook == nil {
		t.Fatalf("republished record: %+v", a)
	}

	// The owner filter.
	for q, want := range map[string]int{"owner=kim": 1, "owner=team-erp": 0, "owner=none": 0} {
		var page api.MismatchPage
		if status, body := do(t, env, "GET", "/v1/mismatches?state=all&order=OWN-1&"+q, "", &page); status != 200 || page.Total != want {
			t.Fatalf("%s: %d %s", q, status, body)
		}
	}
	if status, body := do(t, env, "POST", base+"/assign", `{"owner":""}`, &m); status != 200 || m.Owner != "" {
		t.Fatalf("unassign: %d %s", status, body)
	}
	var page api.MismatchPage
	if status, body := do(t, env, "GET", "/v1/mismatches?owner=none&order=OWN-1", "", &page); status != 200 || page.Total != 1 || page.Mismatches[0].Runbook == nil {
		t.Fatalf("owner=none: %d %s", status, body)
	}

	if status, body := do(t, env, "POST", base+"/resolve", `{"note":"entered in NetSuite by hand","by":"kim"}`, &m); status != 200 || m.State != detector.StateResolved {
		t.Fatalf("resolve: %d %s", status, body)
	}
	if status, body := do(t, env, "POST", base+"/assign", `{"owner":"kim"}`, nil); status != 409 || !strings.Contains(body, "already_resolved") {
		t.Fatalf("assigning a resolved mismatch: %d %s", status, body)
	}
	if status, body := do(t, env, "POST", base+"/notes", `{"note":"post-mortem: the import job was down"}`, &m); status != 200 || m.Audit[len(m.Audit)-1].By != "api" {
		t.Fatalf("a note on a resolved mismatch: %d %s", status, body)
	}
	if got, want := pub.msgIDs(t, env, id), []string{id + ":open", id + ":assigned:1", id + ":assigned:2", id + ":resolved"}; !slices.Equal(got, want) {
		t.Fatalf("published %q, want %q", got, want)
	}
	checkRecords(t, pub)
}

// checkRecords validates every published record against the alert schema.
func checkRecords(t *testing.T, p *published) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.AlertSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("alert.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("alert.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, raw := range p.raw {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Fatalf("%v\n%s", err, raw)
		}
	}
}

// TestMismatchChangesRefuseBadInput: the assign and notes routes answer a
// missing owner or note, an unknown key, a reserved or bad owner, a note
// too long and an unknown mismatch with the fitting status and code.
func TestMismatchChangesRefuseBadInput(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	id := openMismatch(t, env, "BAD-1")
	base := "/v1/mismatches/" + id
	for _, c := range []struct {
		path, body string
		status     int
		code       string
	}{
		{base + "/assign", ``, 400, "owner_required"},
		{base + "/assign", `{"by":"kim"}`, 400, "owner_required"},
		{base + "/assign", `{"ownr":"kim"}`, 400, "bad_body"},
		{base + "/assign", `{"owner":"none"}`, 400, "bad_owner"},
		{base + "/assign", `{"owner":" kim"}`, 400, "bad_owner"},
		{base + "/assign", `{"owner":"` + strings.Repeat("k", 129) + `"}`, 400, "bad_owner"},
		{base + "/assign", `{"owner":"kim","note":"` + strings.Repeat("n", api.MaxNoteLength+1) + `"}`, 400, "note_too_long"},
		{base + "/assign", `{"owner":"kim"} {"owner":"bo"}`, 400, "bad_body"},
		{base + "/notes", `{"by":"kim"}`, 400, "note_required"},
		{base + "/notes", `{"note":"   "}`, 400, "note_required"},
		{base + "/notes", `{"note":"x","by":"a\u0007b"}`, 400, "bad_by"},
		{"/v1/mismatches/dw-000000000000000000000000/assign", `{"owner":"kim"}`, 404, "mismatch_not_found"},
		{"/v1/mismatches/dw-000000000000000000000000/notes", `{"note":"x"}`, 404, "mismatch_not_found"},
	} {
		status, body := do(t, env, "POST", c.path, c.body, nil)
		if status != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) {
			t.Errorf("POST %s %.60s: %d %s; want %d %s", c.path[len(c.path)-7:], c.body, status, body, c.status, c.code)
		}
	}
	m, err := detector.GetMismatch(env.App.Store, id)
	if err != nil || m.Owner != "" || len(m.Audit) != 1 {
		t.Fatalf("refused requests changed the mismatch: %+v %v", m, err)
	}
}

// TestMismatchFilterValues: an unknown state, pattern, severity or system
// is a 400 bad_filter naming the parameter and the valid values; state=all
// is every state.
func TestMismatchFilterValues(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	for _, c := range []struct {
		query, param string
		valid        []string
	}{
		{"state=closed", "state", api.FilterStates},
		{"pattern=order_not_acked", "pattern", detector.Patterns},
		{"severity=urgent", "severity", detector.Severities},
		{"system=netsuite", "system", []string{"shop", "amazon", "erp", "wms", "stripe", "carrier"}},
	} {
		status, body := do(t, env, "GET", "/v1/mismatches?"+c.query, "", nil)
		var e api.FilterErrorBody
		if status != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Code != api.CodeBadFilter || e.Param != c.param || !slices.Equal(e.Valid, c.valid) ||
			!strings.Contains(e.Error, c.valid[0]) {
			t.Errorf("%s: %d %s", c.query, status, body)
		}
	}
	id := openMismatch(t, env, "ALL-1")
	if status, body := do(t, env, "POST", "/v1/mismatches/"+id+"/resolve", `{"note":"done"}`, nil); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	for q, want := range map[string]int{"state=all": 1, "state=open": 0, "state=resolved": 1, "": 1, "state=all&system=shop&pattern=order_not_acknowledged&severity=high": 1} {
		var page api.MismatchPage
		if status, body := do(t, env, "GET", "/v1/mismatches?order=ALL-1&"+q, "", &page); status != 200 || page.Total != want {
			t.Errorf("%q: %d %s", q, status, body)
		}
	}
}
