package mapping

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/schemas"
	"go.yaml.in/yaml/v3"
)

// ErrInvalidTable is matched (errors.Is) by every *TableError.
var ErrInvalidTable = errors.New("mapping: invalid table")

// TableError says what is wrong with a table: the file, the line, the key
// and the reason.
type TableError struct {
	File   string
	Line   int
	Key    string
	Reason string
}

func (e *TableError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("mapping table %s: %s: %s", loc, e.Key, e.Reason)
	}
	return fmt.Sprintf("mapping table %s: %s", loc, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidTable) true.
func (e *TableError) Is(target error) bool { return target == ErrInvalidTable }

// LoadBuiltin loads the tables embedded from schemas/mappings.
func LoadBuiltin() (*Set, error) {
	return Load("")
}

// Load loads the built-in tables, then every *.yaml/*.yml file of dir (when
// dir is not empty), each replacing the built-in table of its platform. Any
// invalid table refuses the whole set: a half-loaded set would silently turn
// known statuses into unmapped ones.
func Load(dir string) (*Set, error) {
	return LoadDirs(dir)
}

// LoadDirs loads the built-in tables, then each folder in turn (empty names
// are skipped), a later folder's table replacing an earlier one of the same
// platform: the configured mappings_dir, then a candidate folder.
func LoadDirs(dirs ...string) (*Set, error) {
	set := &Set{tables: map[string]*Table{}}
	entries, err := fs.ReadDir(schemas.Mappings, schemas.MappingsDir)
	if err != nil {
		return nil, fmt.Errorf("read built-in mapping tables: %w", err)
	}
	for _, e := range entries {
		name := schemas.MappingsDir + "/" + e.Name()
		data, err := fs.ReadFile(schemas.Mappings, name)
		if err != nil {
			return nil, fmt.Errorf("read built-in mapping table %s: %w", name, err)
		}
		t, err := Parse("schemas/"+name, data)
		if err != nil {
			return nil, err
		}
		t.Source = "builtin"
		set.tables[t.Platform] = t
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if err := set.overlay(dir); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// overlay replaces tables with those of dir.
func (set *Set) overlay(dir string) error {
	files, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read mapping folder %s: %w", dir, err)
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		ext := filepath.Ext(f.Name())
		if !f.IsDir() && (ext == ".yaml" || ext == ".yml") {
			names = append(names, f.Name())
		}
	}
	sort.Strings(names)
	seen := map[string]string{}
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read mapping table %s: %w", path, err)
		}
		t, err := Parse(path, data)
		if err != nil {
			return err
		}
		if prev, dup := seen[t.Platform]; dup {
			return &TableError{File: path, Key: "platform", Reason: fmt.Sprintf("platform %q is also defined by %s", t.Platform, prev)}
		}
		seen[t.Platform] = path
		t.Source = path
		set.tables[t.Platform] = t
	}
	return nil
}

// Parse parses and validates one table. file names the table in errors; its
// stem must equal the table's platform.
func Parse(file string, data []byte) (*Table, error) {
	fail := func(n *yaml.Node, key, reason string) error {
		line := 0
		if n != nil {
			line = n.Line
		}
		return &TableError{File: file, Line: line, Key: key, Reason: reason}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fail(nil, "", "not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fail(&doc, "", "must be a YAML mapping with platform, version, default_field and fields")
	}
	root := doc.Content[0]
	t := &Table{fields: map[string]map[string]Result{}}
	var haveVersion, haveFields bool
	var fieldsNode, defaultNode *yaml.Node
	seenKeys := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seenKeys[k.Value] {
			return nil, fail(k, k.Value, "duplicate key")
		}
		seenKeys[k.Value] = true
		switch k.Value {
		case "platform":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, fail(v, "platform", "must be a non-empty string")
			}
			t.Platform = v.Value
		case "version":
			var ver int
			if v.Kind != yaml.ScalarNode || v.Decode(&ver) != nil || ver < 1 {
				return nil, fail(v, "version", fmt.Sprintf("must be an integer >= 1, got %q", v.Value))
			}
			t.Version = ver
			haveVersion = true
		case "case_insensitive":
			if v.Kind != yaml.ScalarNode || v.Decode(&t.CaseInsensitive) != nil {
				return nil, fail(v, "case_insensitive", "must be true or false")
			}
		case "default_field":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, fail(v, "default_field", "must be a non-empty string")
			}
			t.DefaultField = v.Value
			defaultNode = v
		case "fields":
			if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
				return nil, fail(v, "fields", "must be a mapping of raw field -> raw value -> canonical state")
			}
			fieldsNode = v
			haveFields = true
		default:
			return nil, fail(k, k.Value, "unknown key; a table has platform, version, case_insensitive, default_field and fields")
		}
	}
	if t.Platform == "" {
		return nil, fail(root, "platform", "is missing")
	}
	if stem := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)); stem != t.Platform {
		return nil, fail(root, "platform", fmt.Sprintf("%q does not match the file name %q", t.Platform, filepath.Base(file)))
	}
	if !haveVersion {
		return nil, fail(root, "version", "is missing: every table carries a version, bumped on every change")
	}
	if !haveFields {
		return nil, fail(root, "fields", "is missing")
	}
	for i := 0; i+1 < len(fieldsNode.Content); i += 2 {
		fk, fv := fieldsNode.Content[i], fieldsNode.Content[i+1]
		if _, dup := t.fields[fk.Value]; dup {
			return nil, fail(fk, "fields."+fk.Value, "duplicate field")
		}
		if fv.Kind != yaml.MappingNode {
			return nil, fail(fv, "fields."+fk.Value, "must be a mapping of raw value -> canonical state")
		}
		values := make(map[string]Result, len(fv.Content)/2)
		for j := 0; j+1 < len(fv.Content); j += 2 {
			rk, rv := fv.Content[j], fv.Content[j+1]
			keyPath := fmt.Sprintf("fields.%s.%q", fk.Value, rk.Value)
			raw := strings.TrimSpace(rk.Value)
			if rk.Kind != yaml.ScalarNode || raw == "" {
				return nil, fail(rk, keyPath, "a raw value must be a non-empty string")
			}
			if t.CaseInsensitive {
				raw = strings.ToLower(raw)
			}
			if _, dup := values[raw]; dup {
				return nil, fail(rk, keyPath, "duplicate key")
			}
			res, reason := parseResult(rv)
			if reason != "" {
				return nil, fail(rv, keyPath, reason)
			}
			values[raw] = res
			if res.State != canonical.None {
				t.states[res.State] = true
			}
			if res.Payment != canonical.NoPayment {
				t.payments[res.Payment] = true
			}
		}
		t.fields[fk.Value] = values
	}
	if t.DefaultField == "" {
		if len(t.fields) != 1 {
			return nil, fail(root, "default_field", "is missing (required when a table has more than one field)")
		}
		for f := range t.fields {
			t.DefaultField = f
		}
	} else if _, ok := t.fields[t.DefaultField]; !ok {
		return nil, fail(defaultNode, "default_field", fmt.Sprintf("%q is not one of the table's fields", t.DefaultField))
	}
	return t, nil
}

// parseResult reads one value: "confirmed", "ignore", {payment: paid} or
// {state: confirmed, payment: paid}.
func parseResult(n *yaml.Node) (Result, string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "ignore" {
			return Result{Ignore: true}, ""
		}
		s, ok := canonical.ParseState(n.Value)
		if !ok {
			if _, isPayment := canonical.ParsePayment(n.Value); isPayment {
				return Result{}, fmt.Sprintf("%q is a payment state: write {payment: %s}", n.Value, n.Value)
			}
			return Result{}, fmt.Sprintf("unknown canonical state %q (want one of %s, or ignore)", n.Value, stateList())
		}
		return Result{State: s}, ""
	case yaml.MappingNode:
		var r Result
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				return Result{}, "duplicate key " + k.Value
			}
			seen[k.Value] = true
			switch k.Value {
			case "state":
				s, ok := canonical.ParseState(v.Value)
				if v.Kind != yaml.ScalarNode || !ok {
					return Result{}, fmt.Sprintf("unknown canonical state %q (want one of %s)", v.Value, stateList())
				}
				r.State = s
			case "payment":
				p, ok := canonical.ParsePayment(v.Value)
				if v.Kind != yaml.ScalarNode || !ok {
					return Result{}, fmt.Sprintf("unknown payment state %q (want one of %s)", v.Value, paymentList())
				}
				r.Payment = p
			default:
				return Result{}, fmt.Sprintf("unknown key %q: a value is {state: ..., payment: ...}", k.Value)
			}
		}
		if r.State == canonical.None && r.Payment == canonical.NoPayment {
			return Result{}, "an empty mapping: give state, payment or both"
		}
		return r, ""
	default:
		return Result{}, "must be a canonical state, ignore, or {state: ..., payment: ...}"
	}
}

func stateList() string {
	names := make([]string, len(canonical.States))
	for i, s := range canonical.States {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

func paymentList() string {
	names := make([]string, len(canonical.Payments))
	for i, p := range canonical.Payments {
		names[i] = p.String()
	}
	return strings.Join(names, ", ")
}
