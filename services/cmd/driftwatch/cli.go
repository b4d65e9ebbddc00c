package main

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// The command line's shared dialect: the values of -o/--output, the
// filters' values, the --http address and the help's flag list. Every
// command takes these from here, so that one name means one thing
// everywhere and a wrong value is refused the same way (a usage error,
// exit status 2, listing the valid values).

// Output formats (-o/--output). Each command takes the ones that fit it;
// table, for people, is the default wherever it is offered.
const (
	outTable  = "table"  // aligned columns or a summary, for people
	outWide   = "wide"   // table with more detail (messages)
	outJSON   = "json"   // one JSON document
	outCSV    = "csv"    // RFC 4180, formula prefixes neutralised
	outNDJSON = "ndjson" // one JSON document per line
)

// defaultHTTP is the API address client commands find driftwatch serve at
// unless --http (DRIFTWATCH_HTTP) says otherwise.
const defaultHTTP = "127.0.0.1:8080"

// choiceValue is a string flag that takes one of a fixed list of values.
// A value outside the list is refused when it is set, from the command
// line or from its DRIFTWATCH_<FLAG> variable (applyEnv), with the list:
// cobra reports it as an invalid argument (exit status 2).
type choiceValue struct {
	value   *string
	allowed []string
	// aliases are former names still taken, not listed (text: table).
	aliases map[string]string
	// optional lets the empty value through (a filter not given).
	optional bool
}

func (c *choiceValue) String() string { return *c.value }
func (c *choiceValue) Type() string   { return "string" }

func (c *choiceValue) Set(v string) error {
	if a, ok := c.aliases[v]; ok {
		v = a
	}
	if (v == "" && c.optional) || slices.Contains(c.allowed, v) {
		*c.value = v
		return nil
	}
	return fmt.Errorf("%q is not one of %s", v, oneOf(c.allowed))
}

// oneOf renders a list of values for a message: "a, b or c".
func oneOf(vals []string) string {
	switch len(vals) {
	case 0:
		return "(none)"
	case 1:
		return vals[0]
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}

// choiceFlag registers --name taking one of allowed (or "" when optional),
// with def as its default. Its usage ends with the list.
func choiceFlag(fs *pflag.FlagSet, p *string, name, shorthand, def string, optional bool, usage string, allowed ...string) *choiceValue {
	*p = def
	c := &choiceValue{value: p, allowed: allowed, optional: optional}
	fs.VarP(c, name, shorthand, usage+": "+oneOf(allowed))
	return c
}

// outputFlag registers -o/--output with the formats a command offers; the
// first is the default.
func outputFlag(fs *pflag.FlagSet, p *string, formats ...string) *choiceValue {
	return choiceFlag(fs, p, "output", "o", formats[0], false, "output format", formats...)
}

// legacyFormatFlag keeps a command's former --format, hidden behind
// -o/--output: it sets the same value, and names a human format "text".
func legacyFormatFlag(cmd *cobra.Command, out *choiceValue) {
	if slices.Contains(out.allowed, outTable) {
		out.aliases = map[string]string{"text": outTable}
	}
	cmd.Flags().Var(out, "format", "the former name of --output")
	_ = cmd.Flags().MarkDeprecated("format", "use -o/--output")
}

// Filter values: what --state, --pattern and --severity take wherever a
// command filters mismatches (the values of CONTRACT.md section 6).
var (
	// StateFilters are the values of --state: open (which includes
	// escalated), escalated, resolved, or all.
	StateFilters = []string{detector.StateOpen, detector.StateEscalated, detector.StateResolved, "all"}
)

// stateFlag registers --state with its values.
func stateFlag(fs *pflag.FlagSet, p *string, def, usage string) *choiceValue {
	return choiceFlag(fs, p, "state", "", def, false, usage, StateFilters...)
}

// patternFlag registers --pattern: one of detector.Patterns, or none.
func patternFlag(fs *pflag.FlagSet, p *string, usage string) *choiceValue {
	return choiceFlag(fs, p, "pattern", "", "", true, usage, detector.Patterns...)
}

// severityFlag registers --severity: one of detector.Severities, or none.
func severityFlag(fs *pflag.FlagSet, p *string, usage string) *choiceValue {
	return choiceFlag(fs, p, "severity", "", "", true, usage, detector.Severities...)
}

// checkSystem refuses a --flag naming a system the configuration does not
// have (a usage error listing those it has); "" passes. A client command
// gets cfg from clientConfig: its --config, else the server's.
func checkSystem(flag, system string, cfg *config.Config) error {
	if system == "" || cfg == nil || cfg.Known(system) {
		return nil
	}
	return usagef("--%s: %q is not a configured system: want %s", flag, system, oneOf(systemIDs(cfg)))
}

// systemIDs lists the configured systems in the configuration's order.
func systemIDs(cfg *config.Config) []string {
	ids := make([]string, len(cfg.Systems))
	for i, s := range cfg.Systems {
		ids[i] = s.ID
	}
	return ids
}

// httpFlag registers a client command's --http: where driftwatch serve's
// API is (apiBaseURL reads it).
func httpFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "http", defaultHTTP, "driftwatch serve's HTTP API: host:port or an http(s):// URL")
}

// apiBaseURL reads a client command's --http: host:port (plain HTTP) or
// an http:// or https:// URL, with an optional path prefix (a proxy's).
// It returns the base the API's paths are appended to, without a trailing
// slash. Anything else is a usage error.
func apiBaseURL(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	bad := func(why string) error {
		return usagef("--http: %q: %s: want host:port (127.0.0.1:8080) or an http:// or https:// URL", addr, why)
	}
	if s == "" {
		return "", bad("empty")
	}
	if !strings.Contains(s, "://") {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return "", bad("no port")
		}
		return "http://" + s, nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("not an HTTP scheme")
	case u.Host == "":
		return "", bad("no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", bad("user, query or fragment")
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// listenAddr reads serve's and demo's --http, where the API listens: a
// host:port, or an http:// or https:// URL without a path (its host:port,
// or port 80 or 443 when it names none); empty, no API. https is served
// only with http.tls configured, and with it only https: tls says whether
// it is.
func listenAddr(addr string, tls bool) (string, error) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return "", nil // no HTTP API
	}
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return "", usagef("--http: %q: want host:port (127.0.0.1:8080) or an http:// or https:// URL", addr)
		}
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("--http: %q: a listen address is host:port or an http:// or https:// URL without a path", addr)
	}
	if u.Scheme == "https" && !tls {
		return "", usagef("--http: %q: https needs http.tls (cert_file and key_file) in the configuration", addr)
	}
	if u.Scheme == "http" && tls {
		return "", usagef("--http: %q: with http.tls configured the API serves https only", addr)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// usageTemplate is cobra's, with the flags listed by flagUsages.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{flagUsages .LocalFlags | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{flagUsages .InheritedFlags | trimTrailingWhitespaces}}{{end}}{{if .HasHelpSubCommands}}

Additional help topics:{{range .Commands}}{{if .IsAdditionalHelpTopicCommand}}
  {{rpad .CommandPath .CommandPathPadding}} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

func init() { cobra.AddTemplateFunc("flagUsages", flagUsages) }

// flagUsages lists a command's flags as pflag does, except that a bool
// flag shows as itself (--quiet), not as --quiet[=true|false]: pflag
// marks every bool so, while a bool flag is set by naming it.
func flagUsages(fs *pflag.FlagSet) string {
	shown := pflag.NewFlagSet("", pflag.ContinueOnError)
	shown.SortFlags = fs.SortFlags
	fs.VisitAll(func(f *pflag.Flag) {
		c := *f
		if c.Value.Type() == "bool" {
			c.Value = plainBool{c.Value}
		}
		shown.AddFlag(&c)
	})
	return shown.FlagUsages()
}

// plainBool hides a bool flag's IsBoolFlag from pflag's usage printer
// only; the flag parsed on the command line keeps its own value.
type plainBool struct{ v pflag.Value }

func (b plainBool) String() string     { return b.v.String() }
func (b plainBool) Set(s string) error { return b.v.Set(s) }
func (b plainBool) Type() string       { return "bool" }
