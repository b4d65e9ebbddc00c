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
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

func newReconcileCmd() *cobra.Command {
	var httpAddr, output string
	var latest bool
	var auth apiAuth
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Sweep every open order now and print the report (or --latest for the last one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newAPIClient(httpAddr, &auth)
			method, path := "POST", "/v1/reconcile"
			if latest {
				method, path = "GET", "/v1/reconcile/latest"
			}
			var rep reconcile.Report
			if err := c.do(method, path, nil, &rep); err != nil {
				return err
			}
			switch output {
			case outJSON:
				return printJSON(rep)
			case outCSV:
				return rep.WriteCSV(os.Stdout)
			default:
				return rep.WriteText(os.Stdout)
			}
		},
	}
	f := cmd.Flags()
	httpFlag(f, &httpAddr)
	auth.addFlags(f)
	legacyFormatFlag(cmd, outputFlag(f, &output, outTable, outJSON, outCSV))
	f.BoolVar(&latest, "latest", false, "print the last report instead of running a sweep")
	return cmd
}

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Import a system's export of its current order states"}
	var system, httpAddr, format, configPath, output string
	var auth apiAuth
	var nf *natsFlags
	var quiet bool
	imp := &cobra.Command{
		Use:   "import --system SYSTEM FILE",
		Short: "Append a system's export (CSV or NDJSON: order_id, status, optional status_field and timestamp) to the log as snapshot events",
		Long: `Append a system's export to the log as kind snapshot events. Where a row
differs from what the log shows for that system, driftwatch raises
missing_event: an event that never reached the log. Event ids come from the
rows' content, so importing the same file twice adds nothing.

Large files stream in bounded memory: the file is sent in pieces of at most
100,000 rows and 16 MiB, each one import. Every refused row is printed to
stderr with its line in the file and why; the summary names the lines
applied. A record over 64 KiB, a field over 8 KiB (that row is refused), or
a line that is not CSV is reported with its line number.

A system driftwatch does not configure is refused before the file is read:
over NATS the configured systems come from --config FILE
(DRIFTWATCH_CONFIG), else from driftwatch serve's GET /v1/config at
` + defaultHTTP + `; through the API (--http), from the server.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if system == "" {
				return usagef("--system is required")
			}
			var cfg *config.Config
			if httpAddr != "" {
				c, done, err := clientConfig("", httpAddr, &auth)
				if err != nil {
					return err
				}
				done()
				cfg = c
			} else {
				c, done, err := natsSideConfig("snapshot import", configPath, &auth)
				if err != nil {
					return err
				}
				defer done()
				cfg = c
			}
			if err := checkSystem("system", system, cfg); err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if format == "" {
				format = string(events.FormatOf(args[0]))
			}
			if format != string(events.FormatCSV) && format != string(events.FormatNDJSON) {
				return usagef("--format: %q: want csv or ndjson", format)
			}
			var r io.Reader = f
			var bar *progressbar.ProgressBar
			if st, err := f.Stat(); err == nil && !quiet && isTerminal(os.Stderr) {
				bar = progressbar.DefaultBytes(st.Size(), "importing "+args[0])
				r = io.TeeReader(f, bar)
			}
			var importPiece func(piece []byte) (reconcile.ImportStats, error)
			if httpAddr != "" {
				c := newAPIClient(httpAddr, &auth)
				if c.err != nil {
					return c.err
				}
				c.http.Timeout = 0
				importPiece = func(piece []byte) (reconcile.ImportStats, error) {
					return postSnapshot(c, system, format, piece)
				}
			} else {
				nc, err := nf.connect("driftwatch-snapshot")
				if err != nil {
					return err
				}
				defer nc.Close()
				pub, err := events.NewPublisher(nc, events.WithSystems(cfg.Known), events.WithZones(cfg.Zones()))
				if err != nil {
					return err
				}
				now := time.Now()
				importPiece = func(piece []byte) (reconcile.ImportStats, error) {
					return reconcile.Import(cmd.Context(), pub, system, bytes.NewReader(piece), events.FileFormat(format), now, reconcile.DefaultLimits, nil)
				}
			}
			var total reconcile.ImportStats
			err = reconcile.Split(r, events.FileFormat(format), reconcile.DefaultLimits, snapshotPieceBytes, func(piece []byte, delta int) error {
				st, err := importPiece(piece)
				st.Shift(delta)
				for _, rf := range st.Refused {
					order := ""
					if rf.OrderID != "" {
						order = " (order " + rf.OrderID + ")"
					}
					printf(os.Stderr, "line %d%s refused: %s: %s\n", rf.Line, order, rf.Code, rf.Error)
				}
				st.Refused = nil // printed; the total keeps the counts
				total.Add(st)
				if err != nil && st.Stopped != nil {
					return st.Stopped
				}
				return err
			})
			if bar != nil {
				_ = bar.Finish()
			}
			if output == outJSON {
				if total.Applied == nil {
					total.Applied = []reconcile.LineRange{}
				}
				total.Refused = []reconcile.RefusedRow{} // printed to stderr as they came
				if perr := printJSON(total); perr != nil && err == nil {
					err = perr
				}
			} else {
				printf(os.Stdout, "imported %d rows of %s: %d new, %d already in the log, %d refused\n", total.Rows, system, total.Accepted, total.Duplicate, total.Rejected)
				if len(total.Applied) > 0 {
					printf(os.Stdout, "applied: lines %s\n", lineRanges(total.Applied))
				}
			}
			if err != nil {
				var stop *reconcile.StopError
				if errors.As(err, &stop) {
					return fmt.Errorf("import stopped at line %d of %s (%s): %s", stop.Line, args[0], stop.Code, stop.Message)
				}
				return err
			}
			if total.Rejected > 0 {
				return fmt.Errorf("%d rows refused", total.Rejected)
			}
			return nil
		},
	}
	f := imp.Flags()
	f.StringVar(&system, "system", "", "the system the export comes from (required)")
	nf = addNATSFlags(f, nats.DefaultURL, "NATS to publish to")
	f.StringVar(&httpAddr, "http", "", "import through the HTTP API at this address instead: host:port or an http(s):// URL ("+defaultHTTP+")")
	auth.addFlags(f)
	f.StringVar(&configPath, "config", "", "configuration file whose systems are checked over NATS (default: driftwatch serve's)")
	f.StringVar(&format, "format", "", "the file's format, csv or ndjson (default: from the file name)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	outputFlag(f, &output, outTable, outJSON)
	cmd.AddCommand(imp)
	return cmd
}

// snapshotPieceBytes is the most bytes snapshot import sends in one
// request: a quarter of the server's default body limit.
const snapshotPieceBytes = reconcile.DefaultMaxBytes / 4

// postSnapshot imports one piece of an export through POST
// /v1/snapshots/{system}. A stopped import's reply carries its result too:
// it is returned with the *reconcile.StopError.
func postSnapshot(c *apiClient, system, format string, piece []byte) (reconcile.ImportStats, error) {
	path := "/v1/snapshots/" + url.PathEscape(system) + "?format=" + url.QueryEscape(format)
	req, err := http.NewRequest("POST", c.base+path, bytes.NewReader(piece))
	if err != nil {
		return reconcile.ImportStats{}, err
	}
	if format == string(events.FormatCSV) {
		req.Header.Set("Content-Type", "text/csv")
	} else {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reconcile.ImportStats{}, fmt.Errorf("driftwatch API at %s: %w (is driftwatch serve running? see --http)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reconcile.ImportStats{}, err
	}
	var reply struct {
		httpjson.ErrorBody
		reconcile.ImportStats
	}
	jerr := json.Unmarshal(data, &reply)
	switch {
	case resp.StatusCode/100 == 2 && jerr == nil:
		return reply.ImportStats, nil
	case reply.Stopped != nil:
		return reply.ImportStats, reply.Stopped
	case reply.Error != "":
		return reply.ImportStats, errors.New(reply.Error)
	}
	return reconcile.ImportStats{}, fmt.Errorf("POST %s: %s", path, resp.Status)
}

// lineRanges renders line ranges as "2-1001, 1003".
func lineRanges(rs []reconcile.LineRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprint(r.From)
		if r.To != r.From {
			parts[i] += fmt.Sprintf("-%d", r.To)
		}
	}
	return strings.Join(parts, ", ")
}
