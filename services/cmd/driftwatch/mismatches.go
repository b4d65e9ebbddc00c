package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/detector"
)

// sides renders a mismatch's source and target for a table.
func sides(m *detector.Mismatch) (src, tgt string) {
	src, tgt = "-", "-"
	if m.Source != nil {
		src = m.Source.System + "=" + m.Source.Status
	}
	if m.Target != nil {
		tgt = m.Target.System + "=" + m.Target.Status
	} else if m.FlowTo != "" {
		tgt = m.FlowTo + " (no record)"
	}
	return src, tgt
}

// mismatchesAPI is the HTTP API flags the mismatches command and its
// subcommands share (persistent flags of mismatches).
type mismatchesAPI struct {
	httpAddr string
	auth     apiAuth
}

func (a *mismatchesAPI) client() *apiClient { return newAPIClient(a.httpAddr, &a.auth) }

func newMismatchesCmd() *cobra.Command {
	var state, pattern, system, severity, order, owner, output string
	var conn mismatchesAPI
	var limit int
	cmd := &cobra.Command{
		Use:   "mismatches",
		Short: "List mismatches (open by default), most severe first; show, assign, note and resolve one",
		Long: `List mismatches (open by default), most severe first.

An unknown --state, --pattern, --severity or --system is a usage error
(exit status 2) that lists the valid values. The subcommands show one
mismatch with its runbook and audit trail, and change it through the HTTP
API (assign and note need an operate token when the API has tokens).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "pattern": pattern, "system": system, "severity": severity, "order": order, "owner": owner} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", fmt.Sprint(limit))
			var page api.MismatchPage
			if err := conn.client().call("GET", "/v1/mismatches?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if output == outJSON {
				return printJSON(page)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			printf(w, "SEVERITY\tPATTERN\tORDER\tSOURCE\tTARGET\tSTATE\tOWNER\tDETECTED_AT\tALERT_ID\n")
			for _, m := range page.Mismatches {
				src, tgt := sides(m)
				printf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Severity, m.Pattern, m.OrderID, src, tgt, m.State, ownerText(m.Owner, "-"), m.DetectedAt, m.AlertID)
			}
			_ = w.Flush()
			printf(os.Stdout, "%d of %d shown\n", len(page.Mismatches), page.Total)
			if len(page.Mismatches) > 0 && output == outWide {
				for _, m := range page.Mismatches {
					printf(os.Stdout, "\n%s %s\n  %s\n", m.AlertID, strings.ToUpper(m.Severity), m.Message)
				}
			}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	httpFlag(pf, &conn.httpAddr)
	conn.auth.addFlags(pf)
	f := cmd.Flags()
	stateFlag(f, &state, detector.StateOpen, "only mismatches in this state (open includes escalated)")
	patternFlag(f, &pattern, "only this pattern")
	f.StringVar(&system, "system", "", "only mismatches involving this system")
	severityFlag(f, &severity, "only this severity")
	f.StringVar(&order, "order", "", "only this order")
	f.StringVar(&owner, "owner", "", "only this owner's mismatches (none: the unassigned ones)")
	outputFlag(f, &output, outTable, outWide, outJSON)
	f.IntVar(&limit, "limit", 100, "at most this many")
	cmd.AddCommand(newMismatchShowCmd(&conn), newMismatchAssignCmd(&conn), newMismatchNoteCmd(&conn), newMismatchResolveCmd(&conn))
	return cmd
}

// apiError is an error reply of the HTTP API.
type apiError struct {
	status int
	api.FilterErrorBody
}

func (e *apiError) Error() string {
	if e.status == http.StatusUnauthorized {
		return e.FilterErrorBody.Error + " (give the token with --token-file, or DRIFTWATCH_TOKEN)"
	}
	return e.FilterErrorBody.Error
}

// call is apiClient.do for the mismatch commands: body (when not nil) is
// sent as JSON, a 2xx reply decoded into out; an error reply is an
// *apiError, and a bad filter value (400 bad_filter) bad usage listing the
// valid values.
func (c *apiClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	err := c.do(method, path, rd, out)
	var e *apiError
	if errors.As(err, &e) && e.Code == api.CodeBadFilter { // --state, --pattern and --severity are checked as they are set; --system here
		return usagef("--%s: %q is not one of %s", e.Param, filterValue(path, e.Param), oneOf(e.Valid))
	}
	return err
}

// filterValue is a query parameter of path.
func filterValue(path, param string) string {
	if u, err := url.Parse(path); err == nil {
		return u.Query().Get(param)
	}
	return ""
}

// ownerText is an owner for people (none when empty).
func ownerText(owner, none string) string {
	if owner == "" {
		return none
	}
	return owner
}

// loginName is who the audit trail names by default: the login name.
func loginName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// mismatchPath is the API path of a mismatch (and a route under it).
func mismatchPath(id, route string) string {
	p := "/v1/mismatches/" + url.PathEscape(id)
	if route != "" {
		p += "/" + route
	}
	return p
}

func newMismatchShowCmd(conn *mismatchesAPI) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show ALERT_ID",
		Short: "One mismatch: the record, its owner, its runbook and its audit trail",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var m detector.Mismatch
			if err := conn.client().call("GET", mismatchPath(args[0], ""), nil, &m); err != nil {
				return err
			}
			if output == outJSON {
				return printJSON(&m)
			}
			printMismatch(os.Stdout, &m)
			return nil
		},
	}
	outputFlag(cmd.Flags(), &output, outTable, outJSON)
	return cmd
}

// printMismatch writes a mismatch for a person: the record, the runbook
// and the audit trail.
func printMismatch(out io.Writer, m *detector.Mismatch) {
	printf(out, "%s  %s %s, %s\n\n", m.AlertID, strings.ToUpper(m.Severity), m.Pattern, m.State)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	side := func(s *detector.Side, system string) string {
		if s == nil {
			return system + ": no record of the order"
		}
		t := s.System + ": " + s.Status
		if s.Canonical != "" && s.Canonical != s.Status {
			t += " (" + s.Canonical + ")"
		}
		if s.OccurredAt != "" {
			t += ", occurred " + s.OccurredAt
		}
		if s.ReceivedAt != "" {
			t += ", received " + s.ReceivedAt
		}
		if s.Seq != 0 {
			t += fmt.Sprintf(", seq %d", s.Seq)
		}
		return t
	}
	printf(w, "Order\t%s\n", m.OrderID)
	printf(w, "Owner\t%s\n", ownerText(m.Owner, "unassigned"))
	printf(w, "Source\t%s\n", side(m.Source, m.FlowFrom))
	if m.Target != nil || m.FlowTo != "" {
		printf(w, "Target\t%s\n", side(m.Target, m.FlowTo))
	}
	printf(w, "Detected\t%s by %s (onset %s, deadline %s)\n", m.DetectedAt, m.DetectedBy, orDash(m.OnsetAt), orDash(m.Deadline))
	if m.Escalation != "" {
		printf(w, "Escalated\t%s (%s)\n", m.EscalatedAt, m.Escalation)
	}
	if m.ResolvedAt != nil {
		printf(w, "Resolved\t%s\n", *m.ResolvedAt)
	}
	if m.Amount != "" {
		printf(w, "At risk\t%s %s\n", m.Amount, m.Currency)
	}
	if m.Occurrences > 1 {
		printf(w, "Seen\t%d times\n", m.Occurrences)
	}
	_ = w.Flush()
	printf(out, "\n%s\n", m.Message)
	if rb := m.Runbook; rb != nil {
		printf(out, "\nRunbook\n  %s\n", strings.ReplaceAll(rb.Summary, "\n", "\n  "))
		if len(rb.Causes) > 0 {
			printf(out, "\n  Usual causes:\n")
			for _, c := range rb.Causes {
				printf(out, "  - %s\n", c)
			}
		}
		if len(rb.Checks) > 0 {
			printf(out, "\n  First checks:\n")
			for i, c := range rb.Checks {
				printf(out, "  %d. %s\n", i+1, c)
			}
		}
		if len(rb.Commands) > 0 {
			printf(out, "\n  Commands:\n")
			for _, c := range rb.Commands {
				printf(out, "    %s\n", c)
			}
		}
		if rb.URL != "" {
			printf(out, "\n  More: %s\n", rb.URL)
		}
	}
	printf(out, "\nAudit trail\n")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, a := range m.Audit {
		what := a.Action
		if a.Action == detector.ActionAssigned {
			what += " " + ownerText(a.From, "unassigned") + " -> " + ownerText(a.To, "unassigned")
		}
		line := "  " + a.At + "\t" + what
		if a.By != "" || a.Note != "" {
			line += "\t" + "by " + ownerText(a.By, "?")
		}
		if a.Note != "" {
			line += "\t" + strconv.Quote(a.Note)
		}
		printf(w, "%s\n", line)
	}
	_ = w.Flush()
}

func orDash(s string) string { return ownerText(s, "-") }

// changeFlags are the flags of the commands that change a mismatch.
type changeFlags struct {
	by, note, output string
}

func (c *changeFlags) add(cmd *cobra.Command, noteHelp string) {
	f := cmd.Flags()
	f.StringVar(&c.by, "by", "", "who does it, for the audit trail (default: your login name)")
	f.StringVar(&c.note, "note", "", noteHelp)
	outputFlag(f, &c.output, outTable, outJSON) // table: one line saying what changed; json: the record
}

// who is --by, or the login name.
func (c *changeFlags) who() string {
	if c.by != "" {
		return c.by
	}
	return loginName()
}

// done prints a changed mismatch: the record as JSON, or line.
func (c *changeFlags) done(m *detector.Mismatch, line string) error {
	if c.output == outJSON {
		return printJSON(m)
	}
	printf(os.Stdout, "%s\n", line)
	return nil
}

func newMismatchAssignCmd(conn *mismatchesAPI) *cobra.Command {
	var flags changeFlags
	var owner string
	cmd := &cobra.Command{
		Use:   "assign ALERT_ID --owner NAME [--by NAME] [--note TEXT]",
		Short: "Give a mismatch to a person or team (--owner \"\" unassigns); its alert record is published again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("owner") { // set on the command line or by DRIFTWATCH_OWNER
				return usagef("--owner is required (--owner \"\" unassigns)")
			}
			var before, m detector.Mismatch
			c := conn.client()
			if err := c.call("GET", mismatchPath(args[0], ""), nil, &before); err != nil {
				return err
			}
			body := api.AssignRequest{Owner: &owner, By: flags.who(), Note: flags.note}
			if err := c.call("POST", mismatchPath(args[0], "assign"), body, &m); err != nil {
				return err
			}
			line := fmt.Sprintf("%s assigned to %s (was %s)", m.AlertID, ownerText(m.Owner, "nobody"), ownerText(before.Owner, "unassigned"))
			switch {
			case before.Owner == m.Owner:
				line = fmt.Sprintf("%s is %s already: nothing changed", m.AlertID, ownerText(m.Owner, "unassigned"))
			case m.Owner == "":
				line = fmt.Sprintf("%s unassigned (was %s)", m.AlertID, before.Owner)
			}
			return flags.done(&m, line)
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "the person or team that owns it now (\"\" unassigns)")
	flags.add(cmd, "why, for the audit trail")
	return cmd
}

func newMismatchNoteCmd(conn *mismatchesAPI) *cobra.Command {
	return newMismatchNotedCmd(conn, "note", "notes", "Add a note to a mismatch's audit trail (nothing else changes)",
		"--note is required", "the note (required)",
		func(by, note string) any { return api.NoteRequest{By: by, Note: note} },
		func(m *detector.Mismatch) string {
			return fmt.Sprintf("%s: note added (%d entries in the audit trail)", m.AlertID, len(m.Audit))
		})
}

func newMismatchResolveCmd(conn *mismatchesAPI) *cobra.Command {
	return newMismatchNotedCmd(conn, "resolve", "resolve", "Resolve a mismatch by hand, saying why; its resolved record is published",
		"--note is required: say why the mismatch is resolved (it is kept in the audit trail)", "why it is resolved (required)",
		func(by, note string) any { return api.ResolveRequest{By: by, Note: note} },
		func(m *detector.Mismatch) string {
			return fmt.Sprintf("%s resolved (%s on order %s)", m.AlertID, m.Pattern, m.OrderID)
		})
}

// newMismatchNotedCmd is a mismatch command that posts a required note
// (and who wrote it) to POST /v1/mismatches/{alert_id}/<route>, then says
// what changed.
func newMismatchNotedCmd(conn *mismatchesAPI, action, route, short, noNote, noteHelp string, request func(by, note string) any, said func(*detector.Mismatch) string) *cobra.Command {
	var flags changeFlags
	cmd := &cobra.Command{
		Use:   action + " ALERT_ID --note TEXT [--by NAME]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(flags.note) == "" {
				return usagef("%s", noNote)
			}
			var m detector.Mismatch
			if err := conn.client().call("POST", mismatchPath(args[0], route), request(flags.who(), flags.note), &m); err != nil {
				return err
			}
			return flags.done(&m, said(&m))
		},
	}
	flags.add(cmd, noteHelp)
	return cmd
}
