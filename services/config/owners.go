package config

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Patterns are the detector's mismatch patterns (CONTRACT.md section 6), the
// keys owners.patterns and runbooks take. The detector's own list
// (detector.Patterns) is this one; a test there keeps them equal.
var Patterns = []string{
	"order_not_acknowledged", "shipment_not_reflected", "return_not_reflected", "cancel_not_propagated",
	"payment_without_order", "status_not_propagated", "acked_not_applied", "unmapped_status",
	"illegal_transition", "manual_override", "clock_skew", "missing_event",
}

// Owners says who owns a mismatch when it opens (owners in the file). The
// first that applies wins: the owner of its pattern, then of its system
// (the mismatch's source system, or its target when the source has no
// entry), then the default. A mismatch no rule covers opens unassigned.
type Owners struct {
	Patterns map[string]string `yaml:"patterns"`
	Systems  map[string]string `yaml:"systems"`
	Default  string            `yaml:"default"`
}

// OwnerNone is the owner filter's word for "unassigned" (GET
// /v1/mismatches?owner=none); no owner may be called it.
const OwnerNone = "none"

// MaxOwnerLength bounds an owner's name (a person, a team, an on-call
// rotation).
const MaxOwnerLength = 128

// CheckOwner reports why name cannot be an owner ("" when it can): 1 to
// MaxOwnerLength characters, no control characters, no white space around
// it, and not the reserved word "none".
func CheckOwner(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len([]rune(name)) > MaxOwnerLength:
		return fmt.Sprintf("is longer than %d characters", MaxOwnerLength)
	case strings.TrimSpace(name) != name:
		return "has white space around it"
	case strings.EqualFold(name, OwnerNone):
		return fmt.Sprintf("%q is reserved: owner=%s filters the unassigned mismatches", name, OwnerNone)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "holds a control character"
	}
	return ""
}

// Runbook overrides a pattern's built-in runbook (runbooks.<pattern> in the
// file): URL links a runbook of the team's own (a wiki page) beside the
// built-in text; File replaces the built-in text with a Markdown file of
// the team's (RunbookText's format), read and checked when the
// configuration loads. A relative File is taken from the configuration's
// folder.
type Runbook struct {
	URL  string `yaml:"url"`
	File string `yaml:"file"`

	// Text is File's runbook, read at load (nil without File).
	Text *RunbookText `yaml:"-"`
}

// RunbookText is a runbook's text. Its strings may hold placeholders,
// filled for each mismatch: {order_id}, {alert_id}, {pattern}, {source},
// {target}, {source_status} and {target_status} (RunbookPlaceholders).
//
// A runbook file is Markdown: the text before the first "## " heading is
// the summary (a leading "# " title line is dropped), and the list items
// ("- ", "* " or "1. ") under a heading that names causes, checks or
// commands are those lists ("## Usual causes", "## First checks",
// "## Commands"); an indented line continues the item above it. Summary
// and checks are required; without a commands section the built-in
// commands stay. A command wrapped in backticks loses them.
type RunbookText struct {
	Summary  string
	Causes   []string
	Checks   []string
	Commands []string
}

// RunbookPlaceholders are the placeholders a runbook's text may hold.
var RunbookPlaceholders = []string{"order_id", "alert_id", "pattern", "source", "target", "source_status", "target_status"}

// maxRunbookFile bounds a runbook file.
const maxRunbookFile = 64 << 10

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// validateOwners checks owners and runbooks (their keys, owners' names and
// URLs; files are read by loadRunbooks); add reports a problem.
func (c *Config) validateOwners(add func(format string, args ...any)) {
	for _, pat := range slices.Sorted(maps.Keys(c.Owners.Patterns)) {
		if !slices.Contains(Patterns, pat) {
			add("owners.patterns.%s: %q is not a pattern: want one of %s", pat, pat, strings.Join(Patterns, ", "))
		}
		if why := CheckOwner(c.Owners.Patterns[pat]); why != "" {
			add("owners.patterns.%s: the owner %s", pat, why)
		}
	}
	for _, sys := range slices.Sorted(maps.Keys(c.Owners.Systems)) {
		if _, ok := c.byID[sys]; !ok {
			add("owners.systems.%s: %q is not a configured system", sys, sys)
		}
		if why := CheckOwner(c.Owners.Systems[sys]); why != "" {
			add("owners.systems.%s: the owner %s", sys, why)
		}
	}
	if c.Owners.Default != "" {
		if why := CheckOwner(c.Owners.Default); why != "" {
			add("owners.default: the owner %s", why)
		}
	}
	for _, pat := range slices.Sorted(maps.Keys(c.Runbooks)) {
		rb := c.Runbooks[pat]
		key := "runbooks." + pat
		if !slices.Contains(Patterns, pat) {
			add("%s: %q is not a pattern: want one of %s", key, pat, strings.Join(Patterns, ", "))
		}
		if rb.URL == "" && rb.File == "" {
			add("%s: give a url, a file or both", key)
		}
		if rb.URL != "" {
			u, err := url.Parse(rb.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("%s.url: %q is not an http or https URL", key, rb.URL)
			}
		}
	}
}

// loadRunbooks reads and checks every runbooks.<pattern>.file, relative
// to the configuration's folder, and returns the problems found.
func (c *Config) loadRunbooks() []string {
	var p []string
	for _, pat := range slices.Sorted(maps.Keys(c.Runbooks)) {
		rb := c.Runbooks[pat]
		if rb.File == "" {
			continue
		}
		key := "runbooks." + pat + ".file"
		path := rb.File
		if !filepath.IsAbs(path) && c.Path != "" {
			path = joinDir(c.Path, path)
		}
		data, err := readBounded(path, maxRunbookFile)
		if err != nil {
			p = append(p, fmt.Sprintf("%s: %v", key, err))
			continue
		}
		text, err := ParseRunbook(data)
		if err != nil {
			p = append(p, fmt.Sprintf("%s: %s: %v", key, rb.File, err))
			continue
		}
		rb.Text = text
		c.Runbooks[pat] = rb
	}
	return p
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a runbook may have", path, st.Size(), limit)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseRunbook reads a runbook file (RunbookText's format). An error names
// the line.
func ParseRunbook(data []byte) (*RunbookText, error) {
	rt := &RunbookText{}
	var summary []string
	var list *[]string // the section being read; nil: the summary
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxRunbookFile)
	line := 0
	cont := false // the previous line was a list item (an indented line continues it)
	for sc.Scan() {
		line++
		raw := strings.TrimRight(sc.Text(), " \t\r")
		if line == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		if err := checkPlaceholders(raw); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		trimmed := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(trimmed, "## "):
			name := strings.ToLower(strings.TrimSpace(trimmed[3:]))
			switch {
			case strings.Contains(name, "cause"):
				list, section = &rt.Causes, "causes"
			case strings.Contains(name, "check"):
				list, section = &rt.Checks, "checks"
			case strings.Contains(name, "command"):
				list, section = &rt.Commands, "commands"
			default:
				return nil, fmt.Errorf("line %d: the heading %q names no section: want causes, checks or commands", line, trimmed)
			}
			if len(*list) > 0 {
				return nil, fmt.Errorf("line %d: a second %s section", line, section)
			}
			cont = false
		case strings.HasPrefix(trimmed, "# ") && list == nil && len(summary) == 0:
			// The document's title.
		case list == nil:
			if trimmed != "" || len(summary) > 0 {
				summary = append(summary, trimmed)
			}
		case trimmed == "":
			cont = false
		default:
			if item, ok := listItem(trimmed); ok {
				if section == "commands" {
					item = strings.Trim(item, "`")
				}
				*list = append(*list, item)
				cont = true
			} else if cont && raw != trimmed { // indented: continues the item above
				(*list)[len(*list)-1] += " " + trimmed
			} else {
				return nil, fmt.Errorf("line %d: under %s, want a list item (\"- ...\")", line, section)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	rt.Summary = joinParagraphs(summary)
	if rt.Summary == "" {
		return nil, fmt.Errorf("no summary: write what the mismatch means before the first \"## \" heading")
	}
	if len(rt.Checks) == 0 {
		return nil, fmt.Errorf("no checks: a \"## First checks\" section with at least one item is required")
	}
	return rt, nil
}

// listItem strips a Markdown list marker ("- ", "* ", "1. ").
func listItem(s string) (string, bool) {
	if strings.HasPrefix(s, "- ") || strings.HasPrefix(s, "* ") {
		return strings.TrimSpace(s[2:]), true
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 && i+1 < len(s) && (s[i] == '.' || s[i] == ')') && s[i+1] == ' ' {
		return strings.TrimSpace(s[i+2:]), true
	}
	return "", false
}

// joinParagraphs joins lines into paragraphs separated by a blank line
// ("\n\n"), the lines of one paragraph by a space.
func joinParagraphs(lines []string) string {
	var paras []string
	var cur []string
	for _, l := range lines {
		if l == "" {
			if len(cur) > 0 {
				paras = append(paras, strings.Join(cur, " "))
				cur = nil
			}
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		paras = append(paras, strings.Join(cur, " "))
	}
	return strings.Join(paras, "\n\n")
}

func checkPlaceholders(s string) error {
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		if !slices.Contains(RunbookPlaceholders, m[1]) {
			return fmt.Errorf("unknown placeholder {%s}: want one of {%s}", m[1], strings.Join(RunbookPlaceholders, "}, {"))
		}
	}
	return nil
}
