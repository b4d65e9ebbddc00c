package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/ingest"
)

const publishChunk = 1024

func newPublishCmd() *cobra.Command {
	var httpURL, configPath, format, output string
	var auth apiAuth
	var nf *natsFlags
	var quiet bool
	cmd := &cobra.Command{
		Use:   "publish FILE...",
		Short: "Append events from NDJSON or CSV files to the log",
		Long: `Append events from NDJSON files (one envelope per line) or CSV exports (a
header row naming envelope fields) to the log, over NATS (default) or the
HTTP API (--http). Invalid events are reported with their line and reason and
dead-lettered; the exit status is 1 when any event was rejected.

Over NATS an event of a system driftwatch does not configure is refused
before it is published, as the API refuses it: the configured systems come
from --config FILE (DRIFTWATCH_CONFIG), else from driftwatch serve's
GET /v1/config at ` + defaultHTTP + `.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sink batchSink
			if httpURL != "" {
				c := newAPIClient(httpURL, &auth)
				if c.err != nil {
					return c.err
				}
				sink = &httpSink{base: c.base, client: c.http}
			} else {
				cfg, done, err := natsSideConfig("publish", configPath, &auth)
				if err != nil {
					return err
				}
				defer done()
				nc, err := nf.connect("driftwatch-publish")
				if err != nil {
					return err
				}
				defer nc.Close()
				pub, err := events.NewPublisher(nc, events.WithSystems(cfg.Known), events.WithZones(cfg.Zones()))
				if err != nil {
					return err
				}
				sink = pub
			}
			var total tally
			for _, path := range args {
				t, err := publishFile(cmd.Context(), sink, path, events.FileFormat(format), quiet)
				total.add(t)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			if output == outJSON {
				if err := printJSON(map[string]any{"events": total.count(), "accepted": total.accepted, "duplicate": total.duplicate,
					"rejected": total.rejected, "events_per_second": total.rate()}); err != nil {
					return err
				}
			} else {
				printf(os.Stdout, "published %d events: %d accepted, %d duplicate, %d rejected (%.0f events/s)\n",
					total.count(), total.accepted, total.duplicate, total.rejected, total.rate())
			}
			if total.rejected > 0 {
				return fmt.Errorf("%d events rejected (dead-lettered to driftwatch.dlq.*)", total.rejected)
			}
			return nil
		},
	}
	f := cmd.Flags()
	nf = addNATSFlags(f, nats.DefaultURL, "NATS to publish to")
	f.StringVar(&httpURL, "http", "", "publish through the HTTP API at this address instead: host:port or an http(s):// URL ("+defaultHTTP+")")
	auth.addFlags(f)
	f.StringVar(&configPath, "config", "", "configuration file whose systems events over NATS are checked against (default: driftwatch serve's)")
	f.StringVar(&format, "format", "", "ndjson or csv (default: from the file name)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar and no per-event rejections")
	outputFlag(f, &output, outTable, outJSON)
	return cmd
}

// batchSink publishes a batch of envelopes and returns a result per event.
type batchSink interface {
	PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error)
}

type tally struct {
	accepted, duplicate, rejected int
	elapsed                       time.Duration
}

func (t *tally) add(o tally) {
	t.accepted += o.accepted
	t.duplicate += o.duplicate
	t.rejected += o.rejected
	t.elapsed += o.elapsed
}
func (t *tally) count() int { return t.accepted + t.duplicate + t.rejected }
func (t *tally) rate() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.count()) / t.elapsed.Seconds()
}

func publishFile(ctx context.Context, sink batchSink, path string, format events.FileFormat, quiet bool) (tally, error) {
	var t tally
	f, err := os.Open(path)
	if err != nil {
		return t, err
	}
	defer f.Close()
	if format == "" {
		format = events.FormatOf(path)
	}
	var r io.Reader = f
	if st, err := f.Stat(); err == nil && !quiet && isTerminal(os.Stderr) && st.Size() > 1<<20 {
		bar := progressbar.DefaultBytes(st.Size(), "publishing "+path)
		defer bar.Close()
		r = io.TeeReader(f, bar)
	}
	fr, err := events.NewFileReader(r, format)
	if err != nil {
		return t, err
	}
	start := time.Now()
	batch := make([][]byte, 0, publishChunk)
	lines := make([]int, 0, publishChunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := sink.PublishBatch(ctx, batch)
		for i, res := range results {
			switch res.Outcome {
			case events.Accepted:
				t.accepted++
			case events.Duplicate:
				t.duplicate++
			case events.Rejected:
				t.rejected++
				if !quiet {
					printf(os.Stderr, "%s:%d: rejected: %s\n", path, lines[i], res.Error)
				}
			}
		}
		batch, lines = batch[:0], lines[:0]
		return err
	}
	for {
		data, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.rejected++
			printf(os.Stderr, "%s: rejected: %v\n", path, err)
			continue
		}
		batch = append(batch, data)
		lines = append(lines, fr.Line())
		if len(batch) == publishChunk {
			if err := flush(); err != nil {
				return t, err
			}
		}
	}
	err = flush()
	t.elapsed = time.Since(start)
	return t, err
}

// httpSink posts batches as NDJSON to POST /v1/events.
type httpSink struct {
	base   string
	client *http.Client
}

func (h *httpSink) PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error) {
	body := bytes.Join(batch, []byte("\n"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s/v1/events: %w (is driftwatch serve running? see --http)", h.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("POST %s/v1/events: %s: %s", h.base, resp.Status, strings.TrimSpace(string(msg)))
	}
	var reply ingest.BatchReply
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return nil, fmt.Errorf("POST %s/v1/events: bad reply: %w", h.base, err)
	}
	if len(reply.Results) != len(batch) {
		return reply.Results, fmt.Errorf("POST %s/v1/events: %d results for %d events", h.base, len(reply.Results), len(batch))
	}
	return reply.Results, nil
}
