// Package mapping holds driftwatch's versioned mapping tables (CONTRACT.md
// section 2): for each platform, raw status field -> raw value -> canonical
// state. Tables are YAML, one file per platform; the built-in ones are
// embedded from schemas/mappings, and a user folder (mappings_dir) replaces
// the built-in table of the same platform.
//
// Loading is strict: an unknown canonical state, a duplicate key, a missing
// version or an unknown key refuses the table with file, line, key and
// reason. Lookups are allocation-free map reads; a Set is immutable after
// loading and safe for concurrent use.
package mapping

import (
	"strings"

	"github.com/driftwatch/driftwatch/events/canonical"
)

// Result is what a raw status means canonically. A status may carry a
// fulfilment state, a payment state or both; Ignore marks statuses that say
// nothing about the order's state.
type Result struct {
	State   canonical.State
	Payment canonical.Payment
	Ignore  bool
}

// String renders the result as it is written in a table.
func (r Result) String() string {
	switch {
	case r.Ignore:
		return "ignore"
	case r.State != canonical.None && r.Payment != canonical.NoPayment:
		return r.State.String() + "+" + r.Payment.String()
	case r.Payment != canonical.NoPayment:
		return "payment:" + r.Payment.String()
	default:
		return r.State.String()
	}
}

// Table is one platform's mapping table.
type Table struct {
	Platform        string
	Version         int
	CaseInsensitive bool
	DefaultField    string
	// Source says where the table came from ("builtin" or a file path).
	Source string

	fields map[string]map[string]Result
	// states and payments are the canonical states the table can express.
	states   [canonical.Unknown + 1]bool
	payments [canonical.Failed + 1]bool
}

// Fields lists the table's raw field names.
func (t *Table) Fields() []string {
	out := make([]string, 0, len(t.fields))
	for f := range t.fields {
		out = append(out, f)
	}
	return out
}

// Entries returns a copy of one field's raw value -> result map.
func (t *Table) Entries(field string) map[string]Result {
	out := make(map[string]Result, len(t.fields[field]))
	for k, v := range t.fields[field] {
		out[k] = v
	}
	return out
}

// Lookup maps a raw status. field "" means the table's default field; the
// resolved field name is returned. ok is false when the field or the value
// is missing from the table (an unmapped status). Matching is exact after
// trimming spaces, or case-insensitive when the table says so.
func (t *Table) Lookup(field, raw string) (res Result, resolvedField string, ok bool) {
	if field == "" {
		field = t.DefaultField
	}
	values, found := t.fields[field]
	if !found {
		return Result{}, field, false
	}
	key := strings.TrimSpace(raw)
	if t.CaseInsensitive {
		key = strings.ToLower(key)
	}
	res, ok = values[key]
	return res, field, ok
}

// CanExpressState reports whether some raw status of the platform maps to s.
func (t *Table) CanExpressState(s canonical.State) bool { return int(s) < len(t.states) && t.states[s] }

// CanExpressPayment reports whether some raw status maps to payment p.
func (t *Table) CanExpressPayment(p canonical.Payment) bool {
	return int(p) < len(t.payments) && t.payments[p]
}

// FieldCanExpressPayment reports whether some raw status of one field maps
// to payment p (a credit memo's field may say partially_refunded and never
// refunded, while the platform's return record can).
func (t *Table) FieldCanExpressPayment(field string, p canonical.Payment) bool {
	for _, r := range t.fields[field] {
		if r.Payment == p {
			return true
		}
	}
	return false
}

// ExpressibleState is the state a system on this platform can be expected
// to reach when another system is at s (CONTRACT.md section 6): s itself if
// the table can express it; for a ranked s, the highest ranked state at or
// below s that the table can express; otherwise None (nothing is expected).
func (t *Table) ExpressibleState(s canonical.State) canonical.State {
	if t.CanExpressState(s) {
		return s
	}
	if !s.Ranked() {
		return canonical.None
	}
	for c := s - 1; c >= canonical.Pending; c-- {
		if t.CanExpressState(c) {
			return c
		}
	}
	return canonical.None
}

// Set is the loaded tables by platform.
type Set struct {
	tables map[string]*Table
}

// Table returns the table of platform.
func (s *Set) Table(platform string) (*Table, bool) {
	t, ok := s.tables[platform]
	return t, ok
}

// Platforms lists the loaded platforms.
func (s *Set) Platforms() []string {
	out := make([]string, 0, len(s.tables))
	for p := range s.tables {
		out = append(out, p)
	}
	return out
}

// Versions returns platform -> version of every loaded table.
func (s *Set) Versions() map[string]int {
	out := make(map[string]int, len(s.tables))
	for p, t := range s.tables {
		out[p] = t.Version
	}
	return out
}
