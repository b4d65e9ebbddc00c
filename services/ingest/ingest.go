// Package ingest is the HTTP front door of the log: POST /v1/events takes
// one JSON event or many as NDJSON, validates each against the envelope and
// the configured systems, appends the good ones to DRIFTWATCH_EVENTS with
// Nats-Msg-Id deduplication, dead-letters the bad ones with their reason, and
// answers per event accepted, duplicate or rejected.
//
// NDJSON bodies are read and published in chunks, so a large body needs
// constant memory apart from the per-event results.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// MaxLine is the longest body or NDJSON line read (below the NATS max
// payload, so a rejected one still fits in the dead-letter stream); a longer
// one fails the request with 413. Lines over events.MaxEventSize but under MaxLine
// are rejected one by one and dead-lettered.
const MaxLine = 1<<20 - 16<<10

// chunk is how many NDJSON events are published per asynchronous batch.
const chunk = 1024

// Handler serves POST /v1/events.
type Handler struct {
	pub     *events.Publisher
	log     zerolog.Logger
	counted *telemetry.EventCounter
	tracing *telemetry.Tracing
}

// New returns the handler. counted (stage "ingest") counts each result; an
// enabled tracing starts a span per request, whose context travels into
// the published events' headers through the Publisher's hook. Both may be
// nil.
func New(pub *events.Publisher, log zerolog.Logger, counted *telemetry.EventCounter, tracing *telemetry.Tracing) *Handler {
	return &Handler{pub: pub, log: log, counted: counted, tracing: tracing}
}

// MaxResults bounds the per-event results of one NDJSON reply: a body of
// any size gets a reply of bounded size. The counts cover every event;
// the rejected ones beyond the bound are still in the dead-letter stream
// with their reasons.
const MaxResults = 10000

// BatchReply is the reply to an NDJSON body: the counts of every event,
// and the results of the first MaxResults in body order (ResultsOmitted
// says how many more there were).
type BatchReply struct {
	Accepted       int             `json:"accepted"`
	Duplicate      int             `json:"duplicate"`
	Rejected       int             `json:"rejected"`
	Results        []events.Result `json:"results"`
	ResultsOmitted int             `json:"results_omitted,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, span := h.tracing.StartFromHTTP(r, "driftwatch.ingest")
	defer span.End()
	r = r.WithContext(ctx)
	if r.Method != http.MethodPost {
		httpjson.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl" {
		h.serveBatch(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxLine+1))
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "read body: "+err.Error())
		return
	}
	if len(body) > MaxLine {
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, events.CodeTooLarge, "body is larger than 1 MiB; an event is at most 64 KiB")
		return
	}
	res, err := h.pub.PublishRaw(r.Context(), body)
	if err != nil && !errors.Is(err, events.ErrInvalidEvent) {
		h.log.Error().Err(err).Msg("ingest publish failed")
		httpjson.WriteError(w, http.StatusServiceUnavailable, "log_unavailable", err.Error())
		return
	}
	h.observe(res)
	status := http.StatusOK
	if res.Outcome == events.Accepted {
		status = http.StatusAccepted
	} else if res.Outcome == events.Rejected {
		status = http.StatusBadRequest
	}
	httpjson.Write(w, status, res)
}

// MaxBatchBody bounds one NDJSON body (about 150,000 typical events):
// larger inputs are sent in several requests, as driftwatch publish does
// (1,024 events each). Events before the limit are published; the reply
// is then 413 and they are duplicates when the rest is sent again.
const MaxBatchBody = 64 << 20

func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxBatchBody {
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, events.CodeTooLarge, fmt.Sprintf("an NDJSON body is at most %d MiB: send larger inputs in several requests", MaxBatchBody>>20))
		return
	}
	reply, err := h.Ingest(r.Context(), http.MaxBytesReader(w, r.Body, MaxBatchBody))
	if err != nil {
		code := "log_unavailable"
		status := http.StatusServiceUnavailable
		var tooLarge *http.MaxBytesError
		if errors.Is(err, bufio.ErrTooLong) {
			code, status = "line_too_long", http.StatusRequestEntityTooLarge
		} else if errors.As(err, &tooLarge) {
			code, status = events.CodeTooLarge, http.StatusRequestEntityTooLarge
			err = fmt.Errorf("an NDJSON body is at most %d MiB: send larger inputs in several requests (the events before the limit were published)", MaxBatchBody>>20)
		}
		h.log.Error().Err(err).Msg("ingest batch failed")
		httpjson.WriteError(w, status, code, err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, reply)
}

// Ingest publishes every NDJSON line of body (blank lines are skipped).
func (h *Handler) Ingest(ctx context.Context, body io.Reader) (*BatchReply, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	reply := &BatchReply{Results: []events.Result{}}
	batch := make([][]byte, 0, chunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := h.pub.PublishBatch(ctx, batch)
		for _, res := range results {
			h.observe(res)
			switch res.Outcome {
			case events.Accepted:
				reply.Accepted++
			case events.Duplicate:
				reply.Duplicate++
			case events.Rejected:
				reply.Rejected++
			}
		}
		keep := min(len(results), max(MaxResults-len(reply.Results), 0))
		reply.Results = append(reply.Results, results[:keep]...)
		reply.ResultsOmitted += len(results) - keep
		batch = batch[:0]
		return err
	}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		batch = append(batch, append([]byte(nil), line...))
		if len(batch) == chunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return reply, nil
}

func (h *Handler) observe(res events.Result) { h.counted.Add(res.System, string(res.Outcome), 1) }
