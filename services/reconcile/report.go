package reconcile

import (
	"encoding/csv"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/driftwatch/driftwatch/projections"
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

// AtRisk is one open mismatch with its order value.
type AtRisk struct {
	AlertID  string `json:"alert_id"`
	OrderID  string `json:"order_id"`
	Pattern  string `json:"pattern"`
	Severity string `json:"severity"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Report is one reconciliation run.
type Report struct {
	ID             string `json:"id"`
	StartedAt      string `json:"started_at"`
	FinishedAt     string `json:"finished_at"`
	DurationMillis int64  `json:"duration_ms"`
	PeriodStart    string `json:"period_start"`
	PeriodEnd      string `json:"period_end"`

	Orders           int     `json:"orders"`
	OpenOrders       int     `json:"open_orders"`
	OrdersInMismatch int     `json:"orders_in_mismatch"`
	MismatchRate     float64 `json:"mismatch_rate"`
	InFlight         int     `json:"in_flight"`
	Raised           int     `json:"raised"`

	OpenMismatches int                `json:"open_mismatches"`
	ByPattern      map[string]int     `json:"by_pattern"`
	BySeverity     map[string]int     `json:"by_severity"`
	BySystemPair   map[string]int     `json:"by_system_pair"`
	SystemShare    map[string]float64 `json:"system_share"`
	// PeriodBySystem counts mismatches detected in the period per source
	// system (what channel_share is judged on).
	PeriodBySystem map[string]int    `json:"period_by_system"`
	PeriodTotal    int               `json:"period_total"`
	Oldest         *Oldest           `json:"oldest_unresolved"`
	TimeToDetect   Stat              `json:"time_to_detect"`
	TimeToResolve  Stat              `json:"time_to_resolve"`
	ValueAtRisk    map[string]string `json:"value_at_risk"`
	TopAtRisk      []AtRisk          `json:"top_at_risk"`
}

// Summarise fills the report's mismatch figures from the store: open
// mismatches now, and time to detect/resolve over [from, to].
func Summarise(s *projections.Store, rep *Report, from, to time.Time) error {
	rep.PeriodStart, rep.PeriodEnd = fmtTime(from), fmtTime(to)
	rep.ByPattern, rep.BySeverity, rep.BySystemPair = map[string]int{}, map[string]int{}, map[string]int{}
	rep.SystemShare, rep.PeriodBySystem, rep.ValueAtRisk = map[string]float64{}, map[string]int{}, map[string]string{}
	bySystem := map[string]int{}
	orders := map[string]bool{}
	value := map[string]*big.Rat{}
	var ttd, ttr []float64
	var atRisk []AtRisk
	fromN, toN := from.UnixNano(), to.UnixNano()
	err := detector.ScanMismatches(s, detector.Filter{}, func(m *detector.Mismatch) error {
		src := ""
		if m.Source != nil {
			src = m.Source.System
		}
		if m.DetectedNanos >= fromN && m.DetectedNanos <= toN {
			rep.PeriodBySystem[src]++
			rep.PeriodTotal++
			if m.OnsetNanos > 0 {
				ttd = append(ttd, time.Duration(m.DetectedNanos-m.OnsetNanos).Seconds())
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
		orders[m.OrderID] = true
		if rep.Oldest == nil || m.DetectedNanos < parseNanos(rep.Oldest.DetectedAt) {
			rep.Oldest = &Oldest{AlertID: m.AlertID, OrderID: m.OrderID, Pattern: m.Pattern, DetectedAt: m.DetectedAt,
				AgeSeconds: round3(time.Duration(toN - m.DetectedNanos).Seconds())}
		}
		if m.Amount != "" {
			if r, ok := new(big.Rat).SetString(m.Amount); ok {
				if value[m.Currency] == nil {
					value[m.Currency] = new(big.Rat)
				}
				value[m.Currency].Add(value[m.Currency], r)
				atRisk = append(atRisk, AtRisk{AlertID: m.AlertID, OrderID: m.OrderID, Pattern: m.Pattern, Severity: m.Severity, Amount: m.Amount, Currency: m.Currency})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep.OrdersInMismatch = len(orders)
	if rep.OpenOrders > 0 {
		rep.MismatchRate = round3(float64(rep.OrdersInMismatch) / float64(rep.OpenOrders))
	}
	for sys, n := range bySystem {
		rep.SystemShare[sys] = round3(float64(n) / float64(rep.OpenMismatches))
	}
	for cur, v := range value {
		rep.ValueAtRisk[cur] = v.FloatString(2)
	}
	sort.SliceStable(atRisk, func(i, j int) bool {
		a, _ := new(big.Rat).SetString(atRisk[i].Amount)
		b, _ := new(big.Rat).SetString(atRisk[j].Amount)
		return a.Cmp(b) > 0
	})
	if len(atRisk) > 20 {
		atRisk = atRisk[:20]
	}
	rep.TopAtRisk = atRisk
	rep.TimeToDetect, rep.TimeToResolve = stat(ttd), stat(ttr)
	return nil
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
		"open_orders": r.OpenOrders, "orders_in_mismatch": r.OrdersInMismatch, "mismatch_rate": r.MismatchRate,
		"open_mismatches": r.OpenMismatches, "raised": r.Raised, "by_pattern": r.ByPattern, "by_severity": r.BySeverity,
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

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("reconciliation %s (%d ms)\n\n", r.ID, r.DurationMillis)
	p("orders\t%d\nopen orders\t%d\nin flight (within SLA)\t%d\norders in mismatch\t%d\nmismatch rate\t%.1f%%\nopen mismatches\t%d\nraised by this run\t%d\n",
		r.Orders, r.OpenOrders, r.InFlight, r.OrdersInMismatch, 100*r.MismatchRate, r.OpenMismatches, r.Raised)
	p("time to detect\tmean %.1fs, p90 %.1fs (%d)\ntime to resolve\tmean %.1fs, p90 %.1fs (%d)\n",
		r.TimeToDetect.MeanSeconds, r.TimeToDetect.P90Seconds, r.TimeToDetect.Count, r.TimeToResolve.MeanSeconds, r.TimeToResolve.P90Seconds, r.TimeToResolve.Count)
	if r.Oldest != nil {
		p("oldest unresolved\t%s %s on %s, %s old\n", r.Oldest.AlertID, r.Oldest.Pattern, r.Oldest.OrderID, time.Duration(r.Oldest.AgeSeconds*float64(time.Second)).Round(time.Second))
	}
	for _, c := range sortedKeys(r.ValueAtRisk) {
		p("value at risk\t%s %s\n", r.ValueAtRisk[c], c)
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
		p("\nTOP VALUE AT RISK\n")
		for _, a := range r.TopAtRisk {
			p("  %s %s\t%s\t%s\t%s\n", a.Amount, a.Currency, a.OrderID, a.Pattern, a.Severity)
		}
	}
	return tw.Flush()
}

// WriteCSV writes the report as section,key,value rows.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	row := func(section, key string, value any) { _ = cw.Write([]string{section, key, fmt.Sprint(value)}) }
	row("section", "key", "value")
	row("run", "id", r.ID)
	row("run", "duration_ms", r.DurationMillis)
	row("orders", "total", r.Orders)
	row("orders", "open", r.OpenOrders)
	row("orders", "in_mismatch", r.OrdersInMismatch)
	row("orders", "mismatch_rate", r.MismatchRate)
	row("mismatches", "open", r.OpenMismatches)
	row("time_to_detect", "mean_seconds", r.TimeToDetect.MeanSeconds)
	row("time_to_detect", "p90_seconds", r.TimeToDetect.P90Seconds)
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
