package main

import (
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/replay"
)

func newOrderCmd() *cobra.Command {
	var httpAddr, asOf, output string
	var auth apiAuth
	cmd := &cobra.Command{
		Use:   "order ORDER_ID",
		Short: "Show an order's current state in every system, side by side, its timeline and its open mismatches",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newAPIClient(httpAddr, &auth)
			path := "/v1/orders/" + url.PathEscape(args[0])
			if asOf != "" {
				path += "?as_of=" + url.QueryEscape(asOf)
			}
			var view api.OrderView
			if err := c.do("GET", path, nil, &view); err != nil {
				return err
			}
			var tl replay.TimelineView
			if err := c.do("GET", "/v1/orders/"+url.PathEscape(args[0])+"/timeline", nil, &tl); err != nil {
				return err
			}
			if output == outJSON { // the order's open_mismatches are in its view
				return printJSON(map[string]any{"order": view, "timeline": tl})
			}
			// Its open mismatches (escalated included), most severe first.
			q := url.Values{"order": {args[0]}, "state": {detector.StateOpen}, "limit": {"1000"}}
			var page api.MismatchPage
			if err := c.do("GET", "/v1/mismatches?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			printOrder(view, tl)
			printOrderMismatches(page, output == outWide)
			return nil
		},
	}
	f := cmd.Flags()
	httpFlag(f, &httpAddr)
	auth.addFlags(f)
	f.StringVar(&asOf, "as-of", "", "show what each system's projection believed at this instant (RFC 3339)")
	outputFlag(f, &output, outTable, outWide, outJSON)
	return cmd
}

// printOrderMismatches lists an order's open mismatches under its
// timeline; wide adds each one's message.
func printOrderMismatches(page api.MismatchPage, wide bool) {
	if len(page.Mismatches) == 0 {
		printf(os.Stdout, "\nno open mismatches\n")
		return
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	printf(w, "\nOPEN MISMATCHES\nSEVERITY\tPATTERN\tSOURCE\tTARGET\tSTATE\tDETECTED_AT\tALERT_ID\n")
	for _, m := range page.Mismatches {
		src, tgt := sides(m)
		printf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Severity, m.Pattern, src, tgt, m.State, m.DetectedAt, m.AlertID)
	}
	_ = w.Flush()
	if page.Total > len(page.Mismatches) {
		printf(os.Stdout, "%d of %d shown (driftwatch mismatches --order %s)\n", len(page.Mismatches), page.Total, page.Mismatches[0].OrderID)
	}
	if wide {
		for _, m := range page.Mismatches {
			printf(os.Stdout, "\n%s %s\n  %s\n", m.AlertID, strings.ToUpper(m.Severity), m.Message)
		}
	}
}

func printOrder(v api.OrderView, tl replay.TimelineView) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	printf(w, "order %s", v.OrderID)
	if v.AsOf != "" {
		printf(w, " as of %s", v.AsOf)
	}
	printf(w, "\n\nSYSTEM\tROLE\tSTATUS\tCANONICAL\tPAYMENT\tOCCURRED_AT\tRECEIVED_AT\tSEQ\tACTOR\n")
	for _, s := range v.Systems {
		role := s.Role
		if s.Record {
			role += " (record)"
		}
		if !s.HasRecord {
			printf(w, "%s\t%s\t(no record)\t\t\t\t\t\t\n", s.System, role)
			continue
		}
		status := s.Status
		if s.StatusField != "" {
			status = s.StatusField + "=" + s.Status
		}
		if s.Unmapped {
			status += " (unmapped)"
		}
		printf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.System, role, status, dash(s.Canonical), dash(s.Payment), s.OccurredAt, s.ReceivedAt, s.Seq, s.Actor)
	}
	printf(w, "\nSEQ\tSYSTEM\tKIND\tEVENT\tSTATUS\tCANONICAL\tOCCURRED_AT\tRECEIVED_AT\tLAG\tNOTES\n")
	for _, e := range tl.Events {
		var notes []string
		if e.Late {
			notes = append(notes, "late (older than current)")
		}
		if e.ClockSkew {
			notes = append(notes, "clock skew")
		}
		if e.Unmapped {
			notes = append(notes, "unmapped")
		}
		if e.AckOf != "" {
			notes = append(notes, "acks "+e.AckOf)
		}
		for _, a := range e.AckedBy {
			notes = append(notes, "acked by "+a.AckSystem+" at "+a.ReceivedAt)
		}
		canon := e.Canonical
		if e.Payment != "" {
			canon = strings.TrimPrefix(canon+"+"+e.Payment, "+")
		}
		printf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.System, e.Kind, e.EventID, dash(e.Status), dash(canon), e.OccurredAt, e.ReceivedAt, lag(e.LagMillis), strings.Join(notes, "; "))
	}
	_ = w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
