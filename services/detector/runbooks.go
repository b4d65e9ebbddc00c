package detector

import (
	"strings"

	"github.com/driftwatch/driftwatch/services/config"
)

// Runbook is the alert record's runbook (CONTRACT.md section 6): what the
// pattern means for this mismatch, its usual root causes, the first checks
// to make, the exact commands that show the order (filled with its order
// id and systems, quoted for a POSIX shell where needed) and, when the
// configuration links one, the team's own runbook.
type Runbook struct {
	Summary  string   `json:"summary"`
	Causes   []string `json:"causes,omitempty"`
	Checks   []string `json:"checks,omitempty"`
	Commands []string `json:"commands"`
	URL      string   `json:"url,omitempty"`
}

// Brief is the runbook a published alert record carries: its summary,
// commands and URL. The causes and checks, the same for every mismatch of
// a pattern, are served with the mismatch (GET /v1/mismatches/{alert_id},
// driftwatch mismatches show, the dashboard): a burst of records stays
// small on the alert stream and in memory.
func (r *Runbook) Brief() *Runbook {
	if r == nil {
		return nil
	}
	return &Runbook{Summary: r.Summary, Commands: r.Commands, URL: r.URL}
}

// runbookText is a built-in runbook, with the placeholders of
// config.RunbookPlaceholders. Its commands follow the two every runbook
// has (driftwatch order, driftwatch replay --order).
type runbookText struct {
	summary  string
	causes   []string
	checks   []string
	commands []string
}

// builtinRunbooks has a runbook for every pattern (a test checks it).
var builtinRunbooks = map[string]runbookText{
	OrderNotAcknowledged: {
		summary: "{source} has order {order_id}, but {target}, the record system, has no record of it (or only a pending one) past the SLA: nobody fulfils or invoices it until {target} has it.",
		causes: []string{
			"Dropped webhook: {source}'s order webhook never reached the middleware, or the middleware's call into {target} failed and was not retried (an HTTP 4xx/5xx or a timeout at the time of the order).",
			"Rejected by {target}: the order failed {target}'s validation (an unknown SKU, customer, tax code or payment method) and sits in an error queue or a failed import.",
			"Mapping gap: {target} has the order under a status that its mapping table reads as pending or ignore.",
			"Correlation: {target} holds the order under another id than {order_id}; the middleware correlated it differently.",
		},
		checks: []string{
			"Open the order: does the timeline hold any {target} event for it, and when did {source}'s arrive?",
			"Search {target} for the order, also by {source}'s reference (external_ref): if it is there, find why its events are not sent; if not, re-send it from the middleware.",
			"Read the middleware's error log or dead-letter queue around the time of {source}'s event.",
		},
	},
	ShipmentNotReflected: {
		summary: "{source} says order {order_id} shipped ({source_status}), but {target} does not show the shipment past the SLA: what {target} tells customers, invoices and stock may be wrong.",
		causes: []string{
			"Dropped webhook: the warehouse's or the carrier's fulfilment update never reached {target} (a webhook not registered, a delivery that failed, a middleware restart).",
			"Mapping gap: {target}'s status for the shipment maps to an earlier state in its table (a new or renamed fulfilment status).",
			"Partial fulfilment: only part of the order shipped, and {target} keeps it on a record of its own (an item fulfilment) that the middleware does not send.",
			"Manual edit: someone changed the order by hand in {source} or in {target}.",
		},
		checks: []string{
			"Compare the systems side by side: what does {target} show ({target_status}), and since when?",
			"In the timeline, find {source}'s shipping event and look for a {target} event after it.",
			"Look up the shipment in {target} (the tracking number is in the event's attributes); if it is missing, re-send the fulfilment from the middleware.",
		},
	},
	ReturnNotReflected: {
		summary: "{source} has a return for order {order_id} ({source_status}) that {target} does not reflect past the SLA: refunds, stock and revenue in {target} may be wrong.",
		causes: []string{
			"Return records not sent: {target} keeps returns on records of their own (a return authorization, a credit memo), and the middleware does not send their status (status_field).",
			"Dropped webhook: {source}'s return webhook was not delivered, or not processed.",
			"Mapping gap: the return record's status is missing from {target}'s table, or maps to ignore.",
			"Handled by hand outside {target}: a refund made in the payment system only.",
		},
		checks: []string{
			"Find {source}'s return event in the timeline and look for a {target} return record after it.",
			"Search {target} for a return authorization or credit memo of the order: if there is one, check that the middleware sends its status with its status_field.",
			"If {target} has no return, create it there or re-send it from the middleware.",
		},
	},
	CancelNotPropagated: {
		summary: "Order {order_id} was cancelled in {source}, but {target} still has it open ({target_status}) past the SLA: it may still be picked, shipped or charged.",
		causes: []string{
			"Dropped webhook: the cancellation never reached {target} (cancellations often come on another webhook topic than order updates).",
			"Rejected by {target}: the order had moved on (picked, packed) and {target} refused the cancellation.",
			"Mapping gap: {target}'s cancelled status (Closed, Voided, ...) is missing from its table.",
			"Manual edit: someone re-opened the order by hand in {target}.",
		},
		checks: []string{
			"First stop the shipment: check in {target} and in the warehouse whether the order is picked, packed or shipped.",
			"Compare the systems side by side and find the cancellation in the timeline.",
			"Cancel the order in {target} by hand or re-send the cancellation from the middleware, then check that the payment was refunded or voided.",
		},
	},
	PaymentWithoutOrder: {
		summary: "{source} took payment for order {order_id} ({source_status}), but {target}, the record system, has no record of the order past the SLA: money was taken for an order nobody will fulfil.",
		causes: []string{
			"The order never reached {target}: the storefront's order webhook was dropped or rejected while the payment went through.",
			"Correlation: the payment carries another id than the order was created with (a cart or checkout id).",
			"An abandoned checkout whose payment was captured anyway.",
		},
		checks: []string{
			"Look up the payment in {source} and the order id it carries.",
			"Search {target} for the order: if it does not exist, create it, or refund the payment.",
			"Open the order: does any other system know it (the storefront, the marketplace)?",
		},
	},
	StatusNotPropagated: {
		summary: "{source} moved order {order_id} to {source_status}, and {target} does not reflect it ({target_status}) past the SLA.",
		causes: []string{
			"Dropped webhook: the update (a refund, a delivery) never reached {target}.",
			"Mapping gap: {target}'s status for it is missing from its table, or maps to an earlier state.",
			"{target} does not keep this step on the order (a delivery confirmation, a partial refund) although the flow expects it: limit the flow's dimensions.",
			"Timestamp reference or time zone: the events carry times off by hours, so the SLA was measured from the wrong moment.",
		},
		checks: []string{
			"Compare the systems side by side and read the timeline around {source}'s event.",
			"Check in {target} whether the change happened there at all.",
			"Re-send the update from the middleware, or correct {target} by hand.",
		},
	},
	AckedNotApplied: {
		summary: "{target} acknowledged {source}'s event for order {order_id} but never applied it: the integration reported success for a change that did not happen.",
		causes: []string{
			"{target} accepted the message and failed later (an import job or a queue that fails quietly).",
			"The change went to another record (a duplicate order, a wrong correlation).",
			"Mapping gap: {target} applied it under a status that its table does not read as the expected state.",
		},
		checks: []string{
			"Find the acknowledgement in the timeline: it is linked to the event it acknowledges.",
			"Read {target}'s import or job log for the acknowledged event.",
			"Re-send the event; make the integration acknowledge only what is applied.",
		},
	},
	UnmappedStatus: {
		summary: "{source} sent the status \"{source_status}\", which its platform's mapping table does not know (first seen on order {order_id}): events with it have the canonical state unknown and tell the detector nothing.",
		causes: []string{
			"Mapping gap: a new or renamed status in {source} (a platform update, a custom workflow state).",
			"A status of another field sent without its status_field, so it is looked up in the table's default field.",
			"A typo or another letter case in the middleware's translation (tables match exactly unless case_insensitive).",
		},
		checks: []string{
			"Find out what \"{source_status}\" means in {source}, and add it to a copy of the table in a folder of your own (mappings_dir).",
			"Backtest the changed table against the last week before using it.",
			"With the table in use, rebuild the projections (serve stopped) so the events already received are read again; the finding then resolves.",
		},
		commands: []string{
			"driftwatch replay --since 24h --system {source}",
			"driftwatch mapping test --candidate ./mappings --last 7d",
			"driftwatch rebuild",
		},
	},
	IllegalTransition: {
		summary: "{source} moved order {order_id} to {source_status} along a transition the state model does not document: a status went backwards, or a final state was left.",
		causes: []string{
			"Manual edit: someone re-opened or changed the order by hand in {source}.",
			"Events out of order: an older status was sent again (a webhook retry) with a later occurred_at.",
			"Timestamp reference or time zone: {source} sends local times as UTC (or the other way round), so its events are ordered wrongly.",
			"Mapping gap: one of the two statuses maps to the wrong canonical state.",
		},
		checks: []string{
			"Read {source}'s events in the timeline: both timestamps, the actor, and the event that moved it back.",
			"Check {source}'s own audit log for a change by hand at that time.",
			"If a mapping is wrong, correct the table and backtest it.",
		},
	},
	ManualOverride: {
		summary: "A change made by hand left order {order_id} disagreeing between {source} ({source_status}) and {target} ({target_status}).",
		causes: []string{
			"Manual edit: someone changed the status by hand in {target} (or in {source}) and not in the other system.",
			"A correction by hand in one system while the integration was down.",
		},
		checks: []string{
			"Find the manual event in the timeline (actor manual) and who made it, in that system's audit log.",
			"Decide which system is right, correct the other one, and say why in a note here.",
		},
	},
	ClockSkew: {
		summary: "{source}'s timestamps do not match when driftwatch received its events (order {order_id}): its clock or time zone is wrong, so the order of its events and the SLAs measured from them are off.",
		causes: []string{
			"Timestamp reference: {source} sends a local time marked as UTC (Z), or UTC marked as local; the error is a whole number of hours.",
			"Time zone: {source} sends times without an offset and its timezone is not configured (systems[].timezone), or configured wrong.",
			"A wrong clock on {source}'s or the middleware's host (no NTP).",
		},
		checks: []string{
			"Compare occurred_at with received_at for {source}'s recent events: a whole number of hours is a zone error, anything else a clock.",
			"Fix the middleware's timestamp format, or set systems[].timezone for {source}.",
		},
		commands: []string{
			"driftwatch replay --since 2h --system {source}",
		},
	},
	MissingEvent: {
		summary: "An imported snapshot of {source} shows order {order_id} as {source_status}, a state the log never received from {source}: events from {source} were lost on the way.",
		causes: []string{
			"Dropped webhook: {source} never sent the event, or the middleware lost it (a failed delivery not retried, a queue purged).",
			"Manual edit: someone changed the order by hand in {source}, where changes by hand fire no webhook.",
			"Mapping gap: the event arrived under a status that maps otherwise than the export's.",
		},
		checks: []string{
			"Compare the snapshot row with the log's last {source} event for the order in the timeline.",
			"Read {source}'s webhook delivery log for the order around that time.",
			"Re-send the missing event from the middleware, or ask the platform to deliver its webhooks again.",
		},
	},
}

// RunbookOf is m's runbook: the pattern's built-in text, or the text of
// its runbooks.<pattern>.file, with the link of runbooks.<pattern>.url,
// filled for m. cfg may be nil (the built-in text only).
func RunbookOf(cfg *config.Config, m *Mismatch) *Runbook {
	text, ok := builtinRunbooks[m.Pattern]
	if !ok {
		text = runbookText{
			summary: "A mismatch of pattern {pattern} on order {order_id}.",
			checks:  []string{"Compare the systems side by side and read the order's timeline."},
		}
	}
	var url string
	withBasics := true
	if cfg != nil {
		if o, ok := cfg.Runbooks[m.Pattern]; ok {
			url = o.URL
			if o.Text != nil {
				own := runbookText{summary: o.Text.Summary, causes: o.Text.Causes, checks: o.Text.Checks, commands: text.commands}
				if len(o.Text.Commands) > 0 {
					own.commands, withBasics = o.Text.Commands, false
				}
				text = own
			}
		}
	}
	return fill(m, text, url, withBasics)
}

// fill makes the runbook of m from text; withBasics puts the order and
// replay commands first.
func fill(m *Mismatch, text runbookText, url string, withBasics bool) *Runbook {
	src, tgt, srcStatus, tgtStatus := "the source system", "the target system", "?", "no record"
	if m.Source != nil {
		src, srcStatus = m.Source.System, sideStatus(m.Source)
	}
	switch {
	case m.Target != nil:
		tgt, tgtStatus = m.Target.System, sideStatus(m.Target)
	case m.FlowTo != "":
		tgt = m.FlowTo
	case m.GateTarget != "":
		tgt = m.GateTarget
	}
	prose := strings.NewReplacer("{order_id}", m.OrderID, "{alert_id}", m.AlertID, "{pattern}", m.Pattern,
		"{source}", src, "{target}", tgt, "{source_status}", srcStatus, "{target_status}", tgtStatus)
	shell := strings.NewReplacer("{order_id}", ShellQuote(m.OrderID), "{alert_id}", ShellQuote(m.AlertID), "{pattern}", ShellQuote(m.Pattern),
		"{source}", ShellQuote(src), "{target}", ShellQuote(tgt), "{source_status}", ShellQuote(srcStatus), "{target_status}", ShellQuote(tgtStatus))
	rb := &Runbook{Summary: prose.Replace(text.summary), Causes: []string{}, Checks: []string{}, Commands: []string{}, URL: url}
	for _, c := range text.causes {
		rb.Causes = append(rb.Causes, prose.Replace(c))
	}
	for _, c := range text.checks {
		rb.Checks = append(rb.Checks, prose.Replace(c))
	}
	if withBasics {
		order := ShellQuote(m.OrderID)
		positional := order
		if strings.HasPrefix(m.OrderID, "-") {
			positional = "-- " + order // not a flag
		}
		rb.Commands = append(rb.Commands, "driftwatch order "+positional, "driftwatch replay --order "+order)
	}
	for _, c := range text.commands {
		rb.Commands = append(rb.Commands, shell.Replace(c))
	}
	return rb
}

// sideStatus is a side's raw status, with its canonical state when that
// says more ("Pending Fulfillment (confirmed)").
func sideStatus(s *Side) string {
	canon := s.Canonical
	if s.Payment != "" && canon == "" {
		canon = s.Payment
	}
	if s.Status == "" {
		if canon == "" {
			return "?"
		}
		return canon
	}
	if canon != "" && canon != s.Status && canon != "unknown" {
		return s.Status + " (" + canon + ")"
	}
	return s.Status
}

// ShellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_.:/@%+=, (an order id with a space or a quote
// stays one argument).
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/@%+=,", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
