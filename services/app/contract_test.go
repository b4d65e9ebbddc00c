package app_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/cluster"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/policy"
)

// The outside contract (CONTRACT.md at the repository's root) is the
// product's own document. These tests keep it true where code can tell:
// its configuration examples, subjects, streams, patterns and ops alert
// kinds exist in the code, and the code's exist in it (the configuration
// keys it leaves to the README are named there).

func contractSection(t *testing.T, n string) string {
	t.Helper()
	doc := readDoc(t, "CONTRACT.md")
	start := strings.Index(doc, "\n## "+n+". ")
	if start < 0 {
		t.Fatalf("CONTRACT.md has no section %s", n)
	}
	rest := doc[start+1:]
	if end := strings.Index(rest[3:], "\n## "); end >= 0 {
		rest = rest[:end+3]
	}
	return rest
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// yamlBlocks returns the ```yaml blocks of text.
func yamlBlocks(text string) []string {
	var out []string
	for _, part := range strings.Split(text, "```yaml\n")[1:] {
		if end := strings.Index(part, "```"); end >= 0 {
			out = append(out, part[:end])
		}
	}
	return out
}

// TestContractConfigurationKeysExist: every key in section 5's examples is
// a key of the configuration (decoded with unknown keys refused).
func TestContractConfigurationKeysExist(t *testing.T) {
	blocks := yamlBlocks(contractSection(t, "5"))
	if len(blocks) == 0 {
		t.Fatal("section 5 has no yaml example")
	}
	for i, b := range blocks {
		dec := yaml.NewDecoder(strings.NewReader(b))
		dec.KnownFields(true)
		var c config.Config
		if err := dec.Decode(&c); err != nil {
			t.Errorf("section 5, example %d: %v", i+1, err)
		}
	}
}

// configKeys lists the configuration's keys as dotted paths (a list's
// items as []), from the yaml tags.
func configKeys(typ reflect.Type, prefix string) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		out = append(out, path)
		ft := f.Type
		suffix := "."
		if ft.Kind() == reflect.Slice {
			ft, suffix = ft.Elem(), "[]."
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !ft.Implements(reflect.TypeFor[yaml.Unmarshaler]()) && !reflect.PointerTo(ft).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
			out = append(out, configKeys(ft, path+suffix)...)
		}
	}
	return out
}

// TestEveryConfigurationKeyIsDocumented: every key of the configuration
// appears in CONTRACT.md section 5's examples, or is named by its path in
// CONTRACT.md or the README.
func TestEveryConfigurationKeyIsDocumented(t *testing.T) {
	examples := map[string]bool{}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(prefix, c)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(strings.TrimSuffix(prefix, ".")+"[].", c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := prefix + n.Content[i].Value
				examples[key] = true
				walk(key+".", n.Content[i+1])
			}
		}
	}
	for _, b := range yamlBlocks(contractSection(t, "5")) {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(b), &n); err != nil {
			t.Fatal(err)
		}
		walk("", &n)
	}
	docs := readDoc(t, "CONTRACT.md") + readDoc(t, "README.md")
	var missing []string
	for _, key := range configKeys(reflect.TypeFor[config.Config](), "") {
		plain := strings.ReplaceAll(key, "[]", "")
		if examples[key] || strings.Contains(docs, "`"+key+"`") || strings.Contains(docs, "`"+plain+"`") || documentedParent(docs, key) {
			continue
		}
		missing = append(missing, key)
	}
	if len(missing) > 0 {
		t.Fatalf("configuration keys named neither in CONTRACT.md section 5 nor, by path, in CONTRACT.md or the README: %v", missing)
	}
}

// documentedParent: a key under a section the docs name as a whole with
// its keys listed (`memory` and its keys in the README, for one).
func documentedParent(docs, key string) bool {
	parent, leaf, ok := cutLast(key)
	if !ok {
		return false
	}
	plain := strings.ReplaceAll(parent, "[]", "")
	for _, p := range []string{"`" + parent + "`", "`" + plain + "`"} {
		if i := strings.Index(docs, p); i >= 0 {
			window := docs[i:min(len(docs), i+1500)]
			if strings.Contains(window, leaf) {
				return true
			}
		}
	}
	return false
}

func cutLast(key string) (string, string, bool) {
	i := strings.LastIndex(key, ".")
	if i < 0 {
		return "", "", false
	}
	return strings.TrimSuffix(key[:i], "[]"), key[i+1:], true
}

// TestContractPatternsAreTheDetectors: section 6's table of patterns is
// exactly detector.Patterns.
func TestContractPatternsAreTheDetectors(t *testing.T) {
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	var doc []string
	for _, m := range row.FindAllStringSubmatch(contractSection(t, "6"), -1) {
		if slices.Contains(detector.Patterns, m[1]) || strings.Contains(m[1], "_") {
			doc = append(doc, m[1])
		}
	}
	slices.Sort(doc)
	code := slices.Sorted(slices.Values(detector.Patterns))
	if !slices.Equal(doc, code) {
		t.Fatalf("CONTRACT.md section 6 names patterns %v; the detector knows %v", doc, code)
	}
}

// TestContractSubjectsAndStreams: section 4 names every subject and stream
// the code uses, each subject in it starts as one of the code's, and its
// ops alert kinds are the alert policy's.
func TestContractSubjectsAndStreams(t *testing.T) {
	sec := contractSection(t, "4")
	code := []string{events.InPrefix, events.DLQPrefix, events.AlertsPrefix, events.OpsAlertsPrefix, events.ReportsSubject, events.ValidateSubject, cluster.InstancePrefix}
	for _, s := range append(code, events.EventsStream, events.AlertsStream, events.DLQStream, cluster.Bucket, cluster.HandoverBucket) {
		if !strings.Contains(sec, "`"+s) {
			t.Errorf("section 4 does not name %s", s)
		}
	}
	subject := regexp.MustCompile("(?m)^\\| `(driftwatch\\.[^`]+)` \\|")
	for _, m := range subject.FindAllStringSubmatch(sec, -1) {
		literal, _, _ := strings.Cut(m[1], "<")
		if !slices.ContainsFunc(code, func(c string) bool { return c == literal || strings.HasPrefix(c, literal) && literal != "" }) {
			t.Errorf("section 4 names %s, which the code does not publish", m[1])
		}
	}
	var kinds []string
	for _, line := range strings.Split(sec, "\n") {
		if strings.HasPrefix(line, "| `driftwatch.alerts.ops.") {
			for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(line, -1) {
				kinds = append(kinds, m[1])
			}
		}
	}
	want := []string{policy.KindChannelShare, policy.KindEscalation, policy.KindMismatchRate, policy.KindSourceSilent}
	slices.Sort(kinds)
	if !slices.Equal(kinds, want) {
		t.Errorf("section 4's ops alert kinds %v, the policy's %v", kinds, want)
	}
}
