package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/ingest"
)

// CodeForbiddenSystem refuses an event of a system that the ingest token
// posting it may not post for.
const CodeForbiddenSystem = "forbidden_system"

// isNDJSON reports whether a Content-Type is one the ingest handler reads
// as NDJSON.
func isNDJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl"
}

// guardIngest serves POST /v1/events for an ingest token limited to some
// systems. An event's system is read as the log would read it
// (events.Parse: the subject it would go to, or the dead-letter subject of
// an invalid event); an event without a readable system goes on, to be
// rejected and dead-lettered under _unknown as always.
//
//   - One event (JSON): an event of another system is refused as a whole
//     request, 403 forbidden_system, and not dead-lettered.
//   - NDJSON: each event of another system is refused on its own: its
//     result is rejected with code forbidden_system, in its place among the
//     others, and counted in "rejected"; it is neither published nor
//     dead-lettered. The rest of the body is ingested as usual, still
//     streamed in constant memory.
func guardIngest(w http.ResponseWriter, r *http.Request, allowed func(string) bool, systems []string, next http.Handler) {
	if !isNDJSON(r.Header.Get("Content-Type")) {
		body, err := io.ReadAll(io.LimitReader(r.Body, ingest.MaxLine+1))
		if err != nil {
			httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "read body: "+err.Error())
			return
		}
		if len(body) <= ingest.MaxLine { // longer: the handler answers 413
			if ev, _ := events.Parse(body); ev.System != "" && !allowed(ev.System) {
				httpjson.WriteError(w, http.StatusForbidden, CodeForbiddenSystem, forbiddenMessage(ev.System, systems))
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		// The handler reads exactly what was checked: one event.
		r.Header.Set("Content-Type", "application/json")
		next.ServeHTTP(w, r)
		return
	}
	f := &systemFilter{src: bufio.NewReaderSize(r.Body, 64<<10), allowed: allowed, systems: systems}
	r.Body = io.NopCloser(f)
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	rec := NewBufferedResponse()
	next.ServeHTTP(rec, r)
	if len(f.refused) == 0 || rec.Status() != http.StatusOK {
		rec.copyTo(w)
		return
	}
	var reply ingest.BatchReply
	if err := json.Unmarshal(rec.body.Bytes(), &reply); err != nil {
		rec.copyTo(w)
		return
	}
	merged := make([]events.Result, 0, len(reply.Results)+len(f.refused))
	taken, refused := 0, f.refused
	for i := 0; i < f.lines; i++ {
		if len(refused) > 0 && refused[0].line == i {
			merged = append(merged, refused[0].result)
			refused = refused[1:]
			continue
		}
		if taken < len(reply.Results) {
			merged = append(merged, reply.Results[taken])
			taken++
		}
	}
	merged = append(merged, reply.Results[taken:]...)
	reply.Results = merged
	reply.Rejected += len(f.refused)
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	httpjson.Write(w, http.StatusOK, reply)
}

func forbiddenMessage(system string, systems []string) string {
	return "this token may post events for " + strings.Join(systems, ", ") + " only, not for " + system
}

// refusedLine is an NDJSON event the filter kept from the handler.
type refusedLine struct {
	line   int // its index among the body's non-blank lines
	result events.Result
}

// systemFilter is an NDJSON body that hands on, one line at a time, the
// events the token may post, trimmed as the handler trims them, and keeps
// a result for each event it withholds. Blank lines are dropped (the
// handler skips them). A line longer than ingest.MaxLine ends the body
// with bufio.ErrTooLong, which the handler answers with 413 as it would.
type systemFilter struct {
	src     *bufio.Reader
	allowed func(string) bool
	systems []string
	out     []byte // what Read hands on next
	line    []byte
	lines   int // non-blank lines read
	refused []refusedLine
	err     error
}

func (f *systemFilter) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.next()
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// next reads one line and sets out to it when it may go on.
func (f *systemFilter) next() {
	f.line = f.line[:0]
	for {
		chunk, err := f.src.ReadSlice('\n')
		if len(f.line)+len(chunk) > ingest.MaxLine {
			f.err = bufio.ErrTooLong
			return
		}
		f.line = append(f.line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			f.err = err // io.EOF, or the body failed: after this line
		}
		break
	}
	line := bytes.TrimSpace(f.line)
	if len(line) == 0 {
		return
	}
	idx := f.lines
	f.lines++
	if ev, _ := events.Parse(line); ev.System != "" && !f.allowed(ev.System) {
		f.refused = append(f.refused, refusedLine{line: idx, result: events.Result{
			Outcome: events.Rejected, EventID: ev.EventID, System: ev.System,
			Error: forbiddenMessage(ev.System, f.systems), Code: CodeForbiddenSystem,
		}})
		return
	}
	f.out = append(append(f.out[:0], line...), '\n')
}

// BufferedResponse keeps a handler's reply to be read before it is sent
// (or sent elsewhere: services/cluster answers forwarded requests so).
type BufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

// NewBufferedResponse returns an empty one.
func NewBufferedResponse() *BufferedResponse { return &BufferedResponse{header: http.Header{}} }

// Header is the reply's header.
func (b *BufferedResponse) Header() http.Header { return b.header }

// WriteHeader keeps the first status.
func (b *BufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

// Write keeps p (and status 200 when none was written).
func (b *BufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// Status is the reply's status (200 when the handler wrote none).
func (b *BufferedResponse) Status() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// Body is the reply's body.
func (b *BufferedResponse) Body() []byte { return b.body.Bytes() }

func (b *BufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.Status())
	_, _ = w.Write(b.body.Bytes())
}
