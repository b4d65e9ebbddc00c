package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

func newReconcileCmd() *cobra.Command {
	var httpAddr, format string
	var latest bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Sweep every open order now and print the report (or --latest for the last one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newAPIClient(httpAddr)
			method, path := "POST", "/v1/reconcile"
			if latest {
				method, path = "GET", "/v1/reconcile/latest"
			}
			var rep reconcile.Report
			if err := c.do(method, path, nil, &rep); err != nil {
				return err
			}
			switch format {
			case "json":
				return printJSON(rep)
			case "csv":
				return rep.WriteCSV(os.Stdout)
			case "text":
				return rep.WriteText(os.Stdout)
			default:
				return usagef("--format: %q: want text, json or csv", format)
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", "driftwatch HTTP API address")
	f.StringVar(&format, "format", "text", "text, json or csv")
	f.BoolVar(&latest, "latest", false, "print the last report instead of running a sweep")
	return cmd
}

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Import a system's export of its current order states"}
	var system, natsURL, httpAddr, format string
	var quiet bool
	imp := &cobra.Command{
		Use:   "import --system SYSTEM FILE",
		Short: "Append a system's export (CSV or NDJSON: order_id, status, optional status_field and timestamp) to the log as snapshot events",
		Long: `Append a system's export to the log as kind snapshot events. Where a row
differs from what the log shows for that system, driftwatch raises
missing_event: an event that never reached the log. Event ids come from the
rows' content, so importing the same file twice adds nothing. Large files
stream in constant memory.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if system == "" {
				return usagef("--system is required")
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if format == "" {
				format = string(events.FormatOf(args[0]))
			}
			var r io.Reader = f
			var bar *progressbar.ProgressBar
			if st, err := f.Stat(); err == nil && !quiet && isTerminal(os.Stderr) {
				bar = progressbar.DefaultBytes(st.Size(), "importing "+args[0])
				r = io.TeeReader(f, bar)
			}
			var st reconcile.ImportStats
			if httpAddr != "" {
				c := newAPIClient(httpAddr)
				c.http = &http.Client{Timeout: 0}
				q := "?format=" + format
				if err := c.do("POST", "/v1/snapshots/"+system+q, r, &st); err != nil {
					return err
				}
			} else {
				nc, err := nats.Connect(natsURL, nats.Name("driftwatch-snapshot"))
				if err != nil {
					return fmt.Errorf("connect to NATS %s: %w", natsURL, err)
				}
				defer nc.Close()
				pub, err := events.NewPublisher(nc)
				if err != nil {
					return err
				}
				st, err = reconcile.Import(cmd.Context(), pub, system, r, events.FileFormat(format), time.Now(), nil)
				if err != nil {
					return err
				}
			}
			if bar != nil {
				_ = bar.Finish()
			}
			for _, e := range st.Errors {
				printf(os.Stderr, "rejected: %s\n", e.Error)
			}
			printf(os.Stdout, "imported %d rows of %s: %d new, %d already in the log, %d rejected\n", st.Rows, system, st.Accepted, st.Duplicate, st.Rejected)
			if st.Rejected > 0 {
				return fmt.Errorf("%d rows rejected", st.Rejected)
			}
			return nil
		},
	}
	f := imp.Flags()
	f.StringVar(&system, "system", "", "the system the export comes from (required)")
	f.StringVar(&natsURL, "nats-url", nats.DefaultURL, "NATS to publish to")
	f.StringVar(&httpAddr, "http", "", "import through the HTTP API at this address instead")
	f.StringVar(&format, "format", "", "csv or ndjson (default: from the file name)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	cmd.AddCommand(imp)
	return cmd
}
