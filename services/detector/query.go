package detector

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	storedjson "github.com/segmentio/encoding/json"

	"github.com/driftwatch/driftwatch/projections"
)

// Filter selects mismatches. Empty fields match everything; State "open"
// matches open and escalated mismatches (everything not resolved).
type Filter struct {
	State    string
	Pattern  string
	System   string // source or target
	Severity string
	OrderID  string
	// Owner keeps the mismatches of one owner; OwnerNone ("none") the
	// unassigned ones.
	Owner string
	// SinceNanos keeps mismatches detected at or after it.
	SinceNanos int64
	// DetectedBeforeNanos keeps mismatches detected before it (a minimum
	// age).
	DetectedBeforeNanos int64
	// Owns, when set, keeps the mismatches of the orders it accepts: an
	// instance of a cluster lists only its partitions' (its store may
	// hold others', kept from when they were its own).
	Owns func(orderID string) bool
}

// Match reports whether m passes the filter.
func (f *Filter) Match(m *Mismatch) bool {
	if f.Owns != nil && !f.Owns(m.OrderID) {
		return false
	}
	switch {
	case f.State == StateOpen && m.State == StateResolved,
		f.State != "" && f.State != StateOpen && f.State != m.State,
		f.Pattern != "" && f.Pattern != m.Pattern,
		f.Severity != "" && f.Severity != m.Severity,
		f.OrderID != "" && f.OrderID != m.OrderID,
		f.Owner == OwnerNone && m.Owner != "",
		f.Owner != "" && f.Owner != OwnerNone && f.Owner != m.Owner,
		f.SinceNanos != 0 && m.DetectedNanos < f.SinceNanos,
		f.DetectedBeforeNanos != 0 && m.DetectedNanos >= f.DetectedBeforeNanos:
		return false
	}
	if f.System != "" {
		src := m.Source != nil && m.Source.System == f.System
		tgt := (m.Target != nil && m.Target.System == f.System) || m.FlowTo == f.System
		return src || tgt
	}
	return true
}

// ScanMismatches calls fn for every stored mismatch passing f, in alert id
// order. fn may keep m.
func ScanMismatches(s *projections.Store, f Filter, fn func(m *Mismatch) error) error {
	return scanPrefix(s, prefixMis, func(k, v []byte) error {
		m := &Mismatch{}
		if err := storedjson.Unmarshal(v, m); err != nil {
			return err
		}
		if !f.Match(m) {
			return nil
		}
		return fn(m)
	})
}

// ListMismatches returns the mismatches passing f, most severe first, then
// largest value at risk, then newest; offset and limit page the result.
// total is the number that passed the filter.
func ListMismatches(s *projections.Store, f Filter, offset, limit int) (page []*Mismatch, total int, err error) {
	var all []*Mismatch
	if err := ScanMismatches(s, f, func(m *Mismatch) error { all = append(all, m); return nil }); err != nil {
		return nil, 0, err
	}
	SortMismatches(all)
	total = len(all)
	if offset > total {
		offset = total
	}
	end := total
	if limit > 0 && offset+limit < end {
		end = offset + limit
	}
	return all[offset:end], total, nil
}

// SortMismatches puts the most pressing first: by severity, then by
// amount (largest first), then the latest detected.
func SortMismatches(all []*Mismatch) {
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if ra, rb := SeverityRank(a.Severity), SeverityRank(b.Severity); ra != rb {
			return ra < rb
		}
		if va, vb := amountValue(a.Amount), amountValue(b.Amount); va != vb {
			return va > vb
		}
		return a.DetectedNanos > b.DetectedNanos
	})
}

// GetMismatch reads one mismatch.
func GetMismatch(s *projections.Store, alertID string) (*Mismatch, error) {
	m, found, err := getMismatch(s, join(prefixMis, alertID))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrMismatchNotFound
	}
	return &m, nil
}

// OpenForOrder lists an order's open mismatches.
func OpenForOrder(s *projections.Store, orderID string) ([]*Mismatch, error) {
	var out []*Mismatch
	prefix := join(prefixOpen, orderID, "")
	err := scanPrefix(s, prefix, func(k, _ []byte) error {
		m, err := GetMismatch(s, string(k[len(prefix):]))
		if errors.Is(err, ErrMismatchNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// amountValue parses a decimal amount for sorting (0 when absent or bad).
func amountValue(s string) float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0
	}
	return v
}

// MismatchCSVHeader is the column order of a mismatch export.
var MismatchCSVHeader = []string{"alert_id", "state", "order_id", "pattern", "severity", "detected_by",
	"source_system", "source_status", "source_canonical", "source_occurred_at", "source_received_at", "source_seq",
	"target_system", "target_status", "target_canonical", "target_occurred_at", "target_received_at", "target_seq",
	"onset_at", "deadline", "detected_at", "resolved_at", "amount", "currency", "message", "owner"}

// MismatchCSVRow renders one mismatch as a CSV row (both timestamps of both
// systems always).
func MismatchCSVRow(m *Mismatch) []string {
	side := func(s *Side) []string {
		if s == nil {
			return []string{"", "", "", "", "", ""}
		}
		return []string{s.System, s.Status, s.Canonical, s.OccurredAt, s.ReceivedAt, fmt.Sprint(s.Seq)}
	}
	resolved := ""
	if m.ResolvedAt != nil {
		resolved = *m.ResolvedAt
	}
	row := []string{m.AlertID, m.State, m.OrderID, m.Pattern, m.Severity, m.DetectedBy}
	row = append(row, side(m.Source)...)
	tgt := side(m.Target)
	if m.Target == nil && m.FlowTo != "" {
		tgt[0] = m.FlowTo
		tgt[1] = "(no record)"
	}
	row = append(row, tgt...)
	return append(row, m.OnsetAt, m.Deadline, m.DetectedAt, resolved, m.Amount, m.Currency, m.Message, m.Owner)
}
