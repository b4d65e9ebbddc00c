package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/csvout"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/replay"
)

// parseWhen reads an instant: RFC 3339, or a duration meaning that long ago
// ("2h", "7d").
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := config.ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usagef("--%s: %q is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor a duration ago (2h, 7d)", flag, s)
}

func newReplayCmd() *cobra.Command {
	var order, since, until, system, output, httpAddr, configPath string
	var auth apiAuth
	var nf *natsFlags
	var quiet bool
	cmd := &cobra.Command{
		Use:   "replay --order ID | --since T [--until T] [--system S]",
		Short: "Diagnose from the log: an order's timeline with its gaps, or detection re-run over a window (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (order == "") == (since == "") {
				return usagef("give either --order ID or --since T")
			}
			if order != "" {
				var v replay.View
				if err := newAPIClient(httpAddr, &auth).do("GET", "/v1/orders/"+url.PathEscape(order)+"/replay", nil, &v); err != nil {
					return err
				}
				return printReplay(v, output)
			}
			from, err := parseWhen("since", since)
			if err != nil {
				return err
			}
			to, err := parseWhen("until", until)
			if err != nil {
				return err
			}
			cfg, done, err := clientConfig(configPath, httpAddr, &auth)
			if err != nil {
				return err
			}
			defer done()
			if err := checkSystem("system", system, cfg); err != nil {
				return err
			}
			js, nc, err := connectJS(nf, "driftwatch-replay")
			if err != nil {
				return err
			}
			defer nc.Close()
			opts := replay.WindowOptions{JS: js, Config: cfg, Since: from, Until: to, System: system}
			var bar *progressbar.ProgressBar
			if !quiet && isTerminal(os.Stderr) {
				opts.Progress = func(done, total uint64) {
					if bar == nil {
						bar = progressbar.Default(int64(total), "replaying")
					}
					_ = bar.Set64(int64(done))
				}
			}
			res, err := replay.Window(cmd.Context(), opts)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			return printMismatches(res.Mismatches, output, fmt.Sprintf("dry run over %d log messages (detection on %d): %d mismatches", res.Events, res.Detected, len(res.Mismatches)))
		},
	}
	f := cmd.Flags()
	f.StringVar(&order, "order", "", "an order's cross-system timeline with the gaps that matter")
	f.StringVar(&since, "since", "", "re-run detection over the events received since T (RFC 3339 or a duration ago: 2h)")
	f.StringVar(&until, "until", "", "... until T (default now)")
	f.StringVar(&system, "system", "", "only mismatches involving this system (--since)")
	outputFlag(f, &output, outTable, outJSON, outCSV)
	httpFlag(f, &httpAddr)
	auth.addFlags(f)
	nf = addNATSFlags(f, nats.DefaultURL, "NATS holding the log (for --since)")
	f.StringVar(&configPath, "config", "", "configuration file (for --since; default: driftwatch serve's, from --http)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func printReplay(v replay.View, output string) error {
	switch output {
	case "json":
		return printJSON(v)
	case "csv":
		cw := csvout.NewWriter(os.Stdout)
		_ = cw.Write([]string{"seq", "system", "kind", "event_id", "status", "canonical", "payment", "occurred_at", "received_at", "lag_ms", "actor", "ack_of", "notes"})
		for _, e := range v.Events {
			_ = cw.Write([]string{fmt.Sprint(e.Seq), e.System, e.Kind, e.EventID, e.Status, e.Canonical, e.Payment, e.OccurredAt, e.ReceivedAt, fmt.Sprint(e.LagMillis), e.Actor, e.AckOf, strings.Join(e.Notes, "; ")})
		}
		cw.Flush()
		return cw.Error()
	case "table":
	default:
		return usagef("--output: %q: want table, json or csv", output)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	printf(w, "order %s\n\nSEQ\tSYSTEM\tKIND\tSTATUS\tCANONICAL\tOCCURRED_AT (source)\tRECEIVED_AT (log)\tLAG\tACTOR\tNOTES\n", v.OrderID)
	for _, e := range v.Events {
		canon := e.Canonical
		if e.Payment != "" {
			canon = strings.TrimPrefix(canon+"+"+e.Payment, "+")
		}
		status := e.Status
		if e.Kind == "ack" {
			status = "ack of " + e.AckOf
		}
		printf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.System, e.Kind, dash(status), dash(canon), e.OccurredAt, e.ReceivedAt, lag(e.LagMillis), e.Actor, strings.Join(e.Notes, "; "))
	}
	_ = w.Flush()
	if len(v.Gaps) > 0 {
		printf(os.Stdout, "\nGAPS\n")
		for _, g := range v.Gaps {
			state := "open"
			if g.Late {
				state = "late"
			}
			printf(os.Stdout, "  [%s] %s %s (%s): %s\n", g.Severity, g.Pattern, g.AlertID, state, g.Message)
		}
	} else {
		printf(os.Stdout, "\nno gaps: every flow was reflected within its SLA\n")
	}
	return nil
}

func printMismatches(ms []*detector.Mismatch, output, summary string) error {
	switch output {
	case "json":
		return printJSON(ms)
	case "csv":
		cw := csvout.NewWriter(os.Stdout)
		_ = cw.Write(detector.MismatchCSVHeader)
		for _, m := range ms {
			_ = cw.Write(detector.MismatchCSVRow(m))
		}
		cw.Flush()
		return cw.Error()
	case "table":
	default:
		return usagef("--output: %q: want table, json or csv", output)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	printf(w, "SEVERITY\tPATTERN\tORDER\tSOURCE\tTARGET\tDETECTED_AT\tMESSAGE\n")
	for _, m := range ms {
		src, tgt := sides(m)
		printf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Severity, m.Pattern, m.OrderID, src, tgt, m.DetectedAt, m.Message)
	}
	_ = w.Flush()
	printf(os.Stdout, "%s\n", summary)
	return nil
}
