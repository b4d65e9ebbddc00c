package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/csvout"
)

func newExportCmd() *cobra.Command {
	var since, until, output, system, httpAddr, configPath string
	var auth apiAuth
	var nf *natsFlags
	cmd := &cobra.Command{
		Use:   "export events|mismatches --since T",
		Short: "Stream the log or the mismatch history as CSV or NDJSON (both timestamps always)",
		Long: `Stream the log (events, read from NATS) or the mismatch history
(mismatches, from driftwatch serve's API) to stdout as CSV or NDJSON.

An event's occurred_at sent without an offset is read in its system's
configured timezone, as the projector reads it: the configuration comes from
--config FILE, else from driftwatch serve (--http); without either, such
times are exported as sent, with a warning.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := parseWhen("since", since)
			if err != nil {
				return err
			}
			to, err := parseWhen("until", until)
			if err != nil {
				return err
			}
			switch args[0] {
			case "events":
				var zones events.ZoneOf
				cfg, done, err := clientConfig(configPath, httpAddr, &auth)
				if err != nil {
					var ue usageError
					if configPath != "" || errors.As(err, &ue) {
						return err
					}
					// The log reads without the configuration: only
					// times sent without an offset need it.
					printf(os.Stderr, "driftwatch: warning: without the configuration (driftwatch serve at --http: %s; or --config FILE), an occurred_at sent without an offset is exported as sent\n", briefCause(err))
				} else {
					defer done()
					if err := checkSystem("system", system, cfg); err != nil {
						return err
					}
					zones = cfg.Zones()
				}
				js, nc, err := connectJS(nf, "driftwatch-export")
				if err != nil {
					return err
				}
				defer nc.Close()
				return exportEvents(cmd.Context(), js, os.Stdout, from, to, system, output, zones)
			case "mismatches":
				if system != "" {
					cfg, done, err := clientConfig(configPath, httpAddr, &auth)
					if err != nil {
						return err
					}
					done()
					if err := checkSystem("system", system, cfg); err != nil {
						return err
					}
				}
				q := url.Values{"format": {output}, "state": {""}}
				if !from.IsZero() {
					q.Set("since", from.UTC().Format(time.RFC3339))
				}
				if system != "" {
					q.Set("system", system)
				}
				c := newAPIClient(httpAddr, &auth)
				if c.err != nil {
					return c.err
				}
				c.http.Timeout = 0 // a long export streams for as long as it takes
				resp, err := c.http.Get(c.base + "/v1/export/mismatches?" + q.Encode())
				if err != nil {
					return fmt.Errorf("driftwatch API at %s: %w (is driftwatch serve running? see --http)", c.base, err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					msg, _ := io.ReadAll(resp.Body)
					return fmt.Errorf("export: %s: %s", resp.Status, msg)
				}
				_, err = io.Copy(os.Stdout, resp.Body)
				return err
			default:
				return usagef("export what? %q: want events or mismatches", args[0])
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "from T (RFC 3339 or a duration ago: 24h, 30d); default: the beginning")
	f.StringVar(&until, "until", "", "until T (events only; default now)")
	legacyFormatFlag(cmd, outputFlag(f, &output, outCSV, outNDJSON))
	f.StringVar(&system, "system", "", "only this system")
	nf = addNATSFlags(f, nats.DefaultURL, "NATS holding the log (events)")
	httpFlag(f, &httpAddr)
	auth.addFlags(f)
	f.StringVar(&configPath, "config", "", "configuration file (default: driftwatch serve's, from --http): the systems, and their timezones for times sent without an offset")
	return cmd
}

// EventCSVHeader is the column order of an event export.
var EventCSVHeader = []string{"seq", "received_at", "occurred_at", "system", "order_id", "event_id", "kind", "status", "status_field", "actor", "ack_of", "external_ref", "attributes"}

// exportEvents streams the log from from (by the log's timestamp) until to.
// zones (may be nil) reads an occurred_at without an offset in its system's
// configured zone, as the projector does. CSV cells that a spreadsheet
// would run as a formula get a leading quote (package csvout).
func exportEvents(ctx context.Context, js jetstream.JetStream, w io.Writer, from, to time.Time, system, format string, zones events.ZoneOf) error {
	stream, err := js.Stream(ctx, events.EventsStream)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	filters := []string{events.InPrefix + ">"}
	if system != "" {
		filters = events.SystemSubjects(system)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if !from.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &from
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	cw := csvout.NewWriter(w)
	enc := json.NewEncoder(w)
	if format == "csv" {
		_ = cw.Write(EventCSVHeader)
	}
	defer cw.Flush()
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil // nothing more within a second: the end of the log
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if !to.IsZero() && meta.Timestamp.After(to) {
			return nil
		}
		ev, perr := events.CheckZoned(msg.Data(), nil, zones)
		recv := meta.Timestamp.UTC().Format(time.RFC3339Nano)
		if format == "ndjson" {
			rec := map[string]any{"seq": meta.Sequence.Stream, "received_at": recv, "subject": msg.Subject()}
			if perr != nil {
				rec["invalid"], rec["raw"] = perr.Error(), string(msg.Data())
			} else {
				rec["event"] = json.RawMessage(msg.Data())
			}
			if err := enc.Encode(rec); err != nil {
				return err
			}
		} else {
			if err := cw.Write([]string{fmt.Sprint(meta.Sequence.Stream), recv, ev.OccurredAt, ev.System, ev.OrderID, ev.EventID,
				string(ev.EffectiveKind()), ev.Status, ev.StatusField, string(ev.EffectiveActor()), ev.AckOf, ev.ExternalRef, string(ev.Attributes)}); err != nil {
				return err
			}
		}
		if meta.NumPending == 0 {
			return nil
		}
	}
}
