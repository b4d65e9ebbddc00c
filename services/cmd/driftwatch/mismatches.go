package main

import (
	"fmt"
	"net/url"
	"os"
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

func newMismatchesCmd() *cobra.Command {
	var httpAddr, state, pattern, system, severity, order, output string
	var auth apiAuth
	var limit int
	cmd := &cobra.Command{
		Use:   "mismatches",
		Short: "List mismatches (open by default), most severe first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "pattern": pattern, "system": system, "severity": severity, "order": order} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", fmt.Sprint(limit))
			var page api.MismatchPage
			if err := newAPIClient(httpAddr, &auth).do("GET", "/v1/mismatches?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if output == "json" {
				return printJSON(page)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			printf(w, "SEVERITY\tPATTERN\tORDER\tSOURCE\tTARGET\tSTATE\tDETECTED_AT\tALERT_ID\n")
			for _, m := range page.Mismatches {
				src, tgt := sides(m)
				printf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Severity, m.Pattern, m.OrderID, src, tgt, m.State, m.DetectedAt, m.AlertID)
			}
			_ = w.Flush()
			printf(os.Stdout, "%d of %d shown\n", len(page.Mismatches), page.Total)
			if len(page.Mismatches) > 0 && output == "wide" {
				for _, m := range page.Mismatches {
					printf(os.Stdout, "\n%s %s\n  %s\n", m.AlertID, strings.ToUpper(m.Severity), m.Message)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", "driftwatch HTTP API address")
	auth.addFlags(f)
	f.StringVar(&state, "state", "open", "open (includes escalated), escalated, resolved, or all")
	f.StringVar(&pattern, "pattern", "", "only this pattern")
	f.StringVar(&system, "system", "", "only mismatches involving this system")
	f.StringVar(&severity, "severity", "", "only this severity")
	f.StringVar(&order, "order", "", "only this order")
	f.StringVarP(&output, "output", "o", "table", "table, wide (with messages) or json")
	f.IntVar(&limit, "limit", 100, "at most this many")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if state == "all" {
			state = ""
		}
		return nil
	}
	return cmd
}
