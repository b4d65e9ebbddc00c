package main

import (
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/replay"
)

func newOrderCmd() *cobra.Command {
	var httpAddr, asOf, output string
	var auth apiAuth
	cmd := &cobra.Command{
		Use:   "order ORDER_ID",
		Short: "Show an order's current state in every system, side by side, and its timeline",
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
			if output == "json" {
				return printJSON(map[string]any{"order": view, "timeline": tl})
			}
			printOrder(view, tl)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", "driftwatch HTTP API address")
	auth.addFlags(f)
	f.StringVar(&asOf, "as-of", "", "show what each system's projection believed at this instant (RFC 3339)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
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
