package reconcile

import (
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/csvout"
	"github.com/driftwatch/driftwatch/services/detector"
)

// Oldest is the oldest unresolved mismatch.
type Oldest struct {
	AlertID    string  `json:"alert_id"`
	OrderID    string  `json:"order_id"`
	Pattern    string  `json:"pattern"`
	DetectedAt string  `json:"detected_at"`
	AgeSeconds float64 `json:"age_seconds"`
}

// AtRisk is one order in mismatch with its value. An order is listed once
// however many open mismatches it has; one that carries amounts in several
// currencies is listed with its largest amount.
type AtRisk struct {
	OrderID  string `json:"order_id"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	// AlertID, Pattern and Severity are the order's most severe open
	// mismatch (the oldest of equally severe ones).
	AlertID  string `json:"alert_id"`
	Pattern  string `json:"pattern"`
	Severity string `json:"severity"`
	// Patterns are the patterns of all its open mismatches, each once,
	// sorted; Mismatches counts them.
	Patterns   []string `json:"patterns"`
	Mismatches int      `json:"mismatches"`
}

// DetectStat is time to detect: the mean and p90 over the measured
// mismatches, and Skewed, the mismatches left out because their onset is
// after their detection even bounded by the source's received_at
// (detector.TimeToDetect).
type DetectStat struct {
	Stat
	Skewed int `json:"skewed"`
}

// Report is one reconciliation run. The package doc defines its figures.
type Report struct {
	ID             string `json:"id"`
	StartedAt      string `json:"started_at"`
	FinishedAt     string `json:"finished_at"`
	DurationMillis int64  `json:"duration_ms"`
	PeriodStart    string `json:"period_start"`
	PeriodEnd      string `json:"period_end"`

	// Orders counts the orders with projection rows the sweep read.
	Orders int `json:"orders"`
	// OpenOrders counts those that are not closed.
	OpenOrders int `json:"open_orders"`
	// ActiveOrders counts the orders active in the period, the mismatch
	// rate's denominator: not closed, an event received in the period, an
	// overdue flow or an open mismatch (orders with no rows included).
	ActiveOrders int `json:"active_orders"`
	// OrdersInMismatch counts the orders with at least one open mismatch.
	OrdersInMismatch int `json:"orders_in_mismatch"`
	// MismatchRate is OrdersInMismatch / ActiveOrders (0 with none active).
	MismatchRate float64 `json:"mismatch_rate"`
	InFlight     int     `json:"in_flight"`
	// Opened counts the mismatches this run opened (new, or reopened after a
	// resolution); open ones it found again are not counted.
	Opened int `json:"opened"`
	// Raised is Opened, under the name earlier reports used.
	Raised int `json:"raised"`

	OpenMismatches int                `json:"open_mismatches"`
	ByPattern      map[string]int     `json:"by_pattern"`
	BySeverity     map[string]int     `json:"by_severity"`
	BySystemPair   map[string]int     `json:"by_system_pair"`
	SystemShare    map[string]float64 `json:"system_share"`
	// PeriodBySystem counts mismatches detected in the period per source
	// system (what channel_share is judged on).
	PeriodBySystem map[string]int `json:"period_by_system"`
	PeriodTotal    int            `json:"period_total"`
	Oldest         *Oldest        `json:"oldest_unresolved"`
	TimeToDetect   DetectStat     `json:"time_to_detect"`
	TimeToResolve  Stat           `json:"time_to_resolve"`
	// ValueAtRisk is, per currency, the sum over the orders in mismatch of
	// each order's amount in that currency, counted once per order.
	ValueAtRisk map[string]string `json:"value_at_risk"`
	TopAtRisk   []AtRisk          `json:"top_at_risk"`

	// reconciled holds the orders the sweep counted as active and
	// reconciled (overdue flows or open mismatches): Summarise adds to
	// ActiveOrders every order in mismatch not among them.
	reconciled map[string]struct{}
}

// inMismatch gathers one order's open mismatches.
type inMismatch struct {
	worst    *detector.Mismatch
	patterns map[string]struct{}
	n        int
	amounts  map[string]amount // by currency: the largest
}

// amount is an amount as written and its value.
type amount struct {
	text  string
	value *big.Rat
}

// offer keeps a if it is the largest in its currency so far.
func offer(amounts map[string]amount, text, currency string) {
	if text == "" {
		return
	}
	v, ok := new(big.Rat).SetString(text)
	if !ok {
		return
	}
	if cur, found := amounts[currency]; !found || v.Cmp(cur.value) > 0 {
		amounts[currency] = amount{text: text, value: v}
	}
}

// Summarise fills the report's mismatch figures from the store: open
// mismatches now, time to detect/resolve and channel counts over [from,
// to], the orders in mismatch with their value (rows read per order in
// mismatch), and completes ActiveOrders with the orders in mismatch the
// sweep did not count (rep.reconciled), so that MismatchRate <= 1.
func Summarise(s *projections.Store, rep *Report, from, to time.Time) error {
	rep.PeriodStart, rep.PeriodEnd = fmtTime(from), fmtTime(to)
	rep.ByPattern, rep.BySeverity, rep.BySystemPair = map[string]int{}, map[string]int{}, map[string]int{}
	rep.SystemShare, rep.PeriodBySystem, rep.ValueAtRisk = map[string]float64{}, map[string]int{}, map[string]string{}
	rep.Raised = rep.Opened
	bySystem := map[string]int{}
	orders := map[string]*inMismatch{}
	var ttd, ttr []float64
	skewed := 0
	fromN, toN := from.UnixNano(), to.UnixNano()
	err := detector.ScanMismatches(s, detector.Filter{}, func(m *detector.Mismatch) error {
		src := ""
		if m.Source != nil {
			src = m.Source.System
		}
		if m.DetectedNanos >= fromN && m.DetectedNanos <= toN {
			rep.PeriodBySystem[src]++
			rep.PeriodTotal++
			switch d, outcome := detector.TimeToDetect(m); outcome {
			case detector.TTDMeasured:
				ttd = append(ttd, d.Seconds())
			case detector.TTDSkewed:
				skewed++
			}
		}
		if m.State == detector.StateResolved {
			if m.ResolvedNanos >= fromN && m.ResolvedNanos <= toN {
				ttr = append(ttr, time.Duration(m.ResolvedNanos-m.DetectedNanos).Seconds())
			}
			return nil
		}
		rep.OpenMismatches++
		rep.ByPattern[m.Pattern]++
		rep.BySeverity[m.Severity]++
		tgt := m.FlowTo
		if tgt == "" && m.Target != nil {
			tgt = m.Target.System
		}
		if tgt == "" {
			tgt = "-"
		}
		rep.BySystemPair[src+"->"+tgt]++
		bySystem[src]++
		if m.PerOrder() { // a finding about a system has no order figures
			o := orders[m.OrderID]
			if o == nil {
				o = &inMismatch{patterns: map[string]struct{}{}, amounts: map[string]amount{}}
				orders[m.OrderID] = o
			}
			o.n++
			o.patterns[m.Pattern] = struct{}{}
			if o.worst == nil || moreSevere(m, o.worst) {
				o.worst = m
			}
			offer(o.amounts, m.Amount, m.Currency)
		}
		if rep.Oldest == nil || m.DetectedNanos < parseNanos(rep.Oldest.DetectedAt) {
			rep.Oldest = &Oldest{AlertID: m.AlertID, OrderID: m.OrderID, Pattern: m.Pattern, DetectedAt: m.DetectedAt,
				AgeSeconds: round3(time.Duration(toN - m.DetectedNanos).Seconds())}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep.OrdersInMismatch = len(orders)
	value := map[string]*big.Rat{}
	var atRisk []AtRisk
	for id, o := range orders {
		if _, counted := rep.reconciled[id]; !counted {
			rep.ActiveOrders++ // in mismatch, so active, and not counted by the sweep
		}
		rows, err := s.Rows(id)
		if err != nil {
			return fmt.Errorf("rows of order %s: %w", id, err)
		}
		for i := range rows {
			offer(o.amounts, rows[i].Amount, rows[i].Currency)
		}
		if len(o.amounts) == 0 {
			continue
		}
		var top amount
		topCur := ""
		for _, cur := range sortedKeys(o.amounts) {
			a := o.amounts[cur]
			if value[cur] == nil {
				value[cur] = new(big.Rat)
			}
			value[cur].Add(value[cur], a.value)
			if top.value == nil || a.value.Cmp(top.value) > 0 {
				top, topCur = a, cur
			}
		}
		atRisk = append(atRisk, AtRisk{OrderID: id, Amount: top.text, Currency: topCur,
			AlertID: o.worst.AlertID, Pattern: o.worst.Pattern, Severity: o.worst.Severity,
			Patterns: sortedKeys(o.patterns), Mismatches: o.n})
	}
	if rep.ActiveOrders > 0 {
		rep.MismatchRate = round3(float64(rep.OrdersInMismatch) / float64(rep.ActiveOrders))
	}
	for sys, n := range bySystem {
		rep.SystemShare[sys] = round3(float64(n) / float64(rep.OpenMismatches))
	}
	for cur, v := range value {
		rep.ValueAtRisk[cur] = v.FloatString(2)
	}
	sort.Slice(atRisk, func(i, j int) bool {
		a, _ := new(big.Rat).SetString(atRisk[i].Amount)
		b, _ := new(big.Rat).SetString(atRisk[j].Amount)
		if c := a.Cmp(b); c != 0 {
			return c > 0
		}
		return atRisk[i].OrderID < atRisk[j].OrderID
	})
	if len(atRisk) > 20 {
		atRisk = atRisk[:20]
	}
	rep.TopAtRisk = atRisk
	rep.TimeToDetect = DetectStat{Stat: stat(ttd), Skewed: skewed}
	rep.TimeToResolve = stat(ttr)
	return nil
}

// moreSevere orders mismatches by severity, then age, then alert id.
func moreSevere(a, b *detector.Mismatch) bool {
	if ra, rb := detector.SeverityRank(a.Severity), detector.SeverityRank(b.Severity); ra != rb {
		return ra < rb
	}
	if a.DetectedNanos != b.DetectedNanos {
		return a.DetectedNanos < b.DetectedNanos
	}
	return a.AlertID < b.AlertID
}

func parseNanos(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

// Summary is what is published on driftwatch.reports.reconcile.
func (r *Report) Summary() map[string]any {
	return map[string]any{
		"id": r.ID, "finished_at": r.FinishedAt, "duration_ms": r.DurationMillis, "orders": r.Orders,
		"open_orders": r.OpenOrders, "active_orders": r.ActiveOrders, "orders_in_mismatch": r.OrdersInMismatch, "mismatch_rate": r.MismatchRate,
		"open_mismatches": r.OpenMismatches, "opened": r.Opened, "raised": r.Raised, "by_pattern": r.ByPattern, "by_severity": r.BySeverity,
		"system_share": r.SystemShare, "oldest_unresolved": r.Oldest, "time_to_detect": r.TimeToDetect,
		"time_to_resolve": r.TimeToResolve, "value_at_risk": r.ValueAtRisk,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fmtSeconds prints seconds as a Go duration, rounded to what a person
// reads: milliseconds under a second, tenths under a minute, seconds under
// an hour, minutes beyond.
func fmtSeconds(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("reconciliation %s (%s)\n\n", r.ID, fmtSeconds(float64(r.DurationMillis)/1000))
	if from, to := parseNanos(r.PeriodStart), parseNanos(r.PeriodEnd); from != 0 && to != 0 {
		p("period\t%s to %s (%s)\n", r.PeriodStart, r.PeriodEnd, fmtSeconds(time.Duration(to-from).Seconds()))
	}
	p("orders\t%d\nopen orders (not closed)\t%d\nactive orders in the period\t%d\nin flight (within SLA)\t%d\norders in mismatch\t%d\n",
		r.Orders, r.OpenOrders, r.ActiveOrders, r.InFlight, r.OrdersInMismatch)
	p("mismatch rate\t%.1f%% (orders in mismatch / active orders)\nopen mismatches\t%d\nopened by this run\t%d\n",
		100*r.MismatchRate, r.OpenMismatches, r.Opened)
	p("time to detect\t%s\ntime to resolve\t%s\n", statText(r.TimeToDetect.Stat, r.TimeToDetect.Skewed, true), statText(r.TimeToResolve, 0, false))
	if r.Oldest != nil {
		p("oldest unresolved\t%s %s on %s, %s old\n", r.Oldest.AlertID, r.Oldest.Pattern, r.Oldest.OrderID, fmtSeconds(r.Oldest.AgeSeconds))
	}
	for _, c := range sortedKeys(r.ValueAtRisk) {
		cur := c
		if cur == "" {
			cur = "(no currency given)"
		}
		p("value at risk\t%s %s\n", r.ValueAtRisk[c], cur)
	}
	section := func(title string, m map[string]int) {
		if len(m) == 0 {
			return
		}
		p("\n%s\n", strings.ToUpper(title))
		for _, k := range sortedKeys(m) {
			p("  %s\t%d\n", k, m[k])
		}
	}
	section("by pattern", r.ByPattern)
	section("by severity", r.BySeverity)
	section("by system pair", r.BySystemPair)
	if len(r.SystemShare) > 0 {
		p("\nSYSTEM SHARE\n")
		for _, k := range sortedKeys(r.SystemShare) {
			p("  %s\t%.1f%%\n", k, 100*r.SystemShare[k])
		}
	}
	if len(r.TopAtRisk) > 0 {
		p("\nTOP VALUE AT RISK (orders)\n")
		for _, a := range r.TopAtRisk {
			patterns := a.Pattern
			if len(a.Patterns) > 0 {
				patterns = strings.Join(a.Patterns, ", ")
			}
			p("  %s %s\t%s\t%s\t%s\n", a.Amount, a.Currency, a.OrderID, a.Severity, patterns)
		}
	}
	p("\nactive: not closed, an event received in the period, an overdue flow or an open mismatch.\n")
	return tw.Flush()
}

// statText is a Stat for people: "mean 2m35s, p90 5m0s (12)", with the
// skewed mismatches left out when there are some.
func statText(s Stat, skewed int, detect bool) string {
	t := fmt.Sprintf("mean %s, p90 %s (%d)", fmtSeconds(s.MeanSeconds), fmtSeconds(s.P90Seconds), s.Count)
	if s.Count == 0 {
		t = "none in the period"
	}
	if detect && skewed > 0 {
		t += fmt.Sprintf("; %d skewed (onset after detection) left out", skewed)
	}
	return t
}

// WriteCSV writes the report as section,key,value rows. A cell that a
// spreadsheet would run as a formula (a currency from an event, a negative
// amount) gets a leading quote (package csvout).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csvout.NewWriter(w)
	row := func(section, key string, value any) { _ = cw.Write([]string{section, key, fmt.Sprint(value)}) }
	row("section", "key", "value")
	row("run", "id", r.ID)
	row("run", "duration_ms", r.DurationMillis)
	row("orders", "total", r.Orders)
	row("orders", "open", r.OpenOrders)
	row("orders", "active", r.ActiveOrders)
	row("orders", "in_mismatch", r.OrdersInMismatch)
	row("orders", "mismatch_rate", r.MismatchRate)
	row("mismatches", "open", r.OpenMismatches)
	row("mismatches", "opened", r.Opened)
	row("time_to_detect", "count", r.TimeToDetect.Count)
	row("time_to_detect", "mean_seconds", r.TimeToDetect.MeanSeconds)
	row("time_to_detect", "p90_seconds", r.TimeToDetect.P90Seconds)
	row("time_to_detect", "skewed", r.TimeToDetect.Skewed)
	row("time_to_resolve", "mean_seconds", r.TimeToResolve.MeanSeconds)
	row("time_to_resolve", "p90_seconds", r.TimeToResolve.P90Seconds)
	for _, k := range sortedKeys(r.ByPattern) {
		row("by_pattern", k, r.ByPattern[k])
	}
	for _, k := range sortedKeys(r.BySeverity) {
		row("by_severity", k, r.BySeverity[k])
	}
	for _, k := range sortedKeys(r.BySystemPair) {
		row("by_system_pair", k, r.BySystemPair[k])
	}
	for _, k := range sortedKeys(r.SystemShare) {
		row("system_share", k, r.SystemShare[k])
	}
	for _, k := range sortedKeys(r.ValueAtRisk) {
		row("value_at_risk", k, r.ValueAtRisk[k])
	}
	cw.Flush()
	return cw.Error()
}
