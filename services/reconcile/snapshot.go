package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/driftwatch/driftwatch/events"
)

// Snapshot column names and their accepted aliases.
var snapshotColumns = map[string]string{
	"order_id": "order_id", "order": "order_id", "id": "order_id",
	"status": "status", "state": "status",
	"status_field": "status_field", "field": "status_field",
	"occurred_at": "occurred_at", "timestamp": "occurred_at", "updated_at": "occurred_at",
	"external_ref": "external_ref",
}

// SnapshotEvent turns one row of a system's export into a kind snapshot
// envelope. The event id is derived from the row's content, so importing
// the same file twice appends nothing new (the log deduplicates it). A row
// without a timestamp is stamped with the import time.
func SnapshotEvent(system string, row map[string]string, attrs map[string]json.RawMessage, importedAt time.Time) ([]byte, error) {
	ev := map[string]any{"system": system, "kind": "snapshot", "actor": "system"}
	for k, v := range row {
		if v == "" {
			continue
		}
		name, ok := snapshotColumns[strings.ToLower(strings.TrimSpace(k))]
		if !ok {
			continue
		}
		ev[name] = v
	}
	h := sha256.New()
	for _, k := range []string{"order_id", "status", "status_field", "occurred_at"} {
		v, _ := ev[k].(string)
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	ev["event_id"] = "snapshot-" + hex.EncodeToString(h.Sum(nil)[:12])
	if _, ok := ev["occurred_at"]; !ok {
		ev["occurred_at"] = importedAt.UTC().Format(time.RFC3339Nano)
	}
	if len(attrs) > 0 {
		ev["attributes"] = attrs
	}
	return json.Marshal(ev)
}

// Default limits of one import (DefaultLimits).
const (
	// DefaultMaxBytes is the largest request body POST
	// /v1/snapshots/{system} reads (64 MiB); driftwatch snapshot import
	// sends a larger file in several requests.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxRows is the most data rows one import takes. It also
	// bounds the size of the import's result, which lists every refused
	// row.
	DefaultMaxRows = 100_000
	// DefaultMaxRecordBytes is the longest CSV record (all of its lines,
	// line endings included) or NDJSON line: events.MaxEventSize, as a
	// longer row could not become a valid event anyway.
	DefaultMaxRecordBytes = events.MaxEventSize
	// DefaultMaxFieldBytes is the longest CSV field, unquoted.
	DefaultMaxFieldBytes = 8 << 10
)

// Limits bound one import. A zero field takes its default.
type Limits struct {
	// MaxBytes is the largest request body. Import does not count bytes:
	// the HTTP handler enforces it (http.MaxBytesReader), and Import stops
	// with code too_large when its reader fails with *http.MaxBytesError.
	MaxBytes int64
	// MaxRows is the most data rows of one import; the row after them
	// stops the import (code too_many_rows).
	MaxRows int
	// MaxRecordBytes is the longest CSV record or NDJSON line; a longer one
	// stops the import (code record_too_long).
	MaxRecordBytes int
	// MaxFieldBytes is the longest CSV field; a row with a longer one is
	// refused (code field_too_long) and the import goes on.
	MaxFieldBytes int
}

// DefaultLimits are the limits of POST /v1/snapshots/{system} and of
// driftwatch snapshot import.
var DefaultLimits = Limits{MaxBytes: DefaultMaxBytes, MaxRows: DefaultMaxRows, MaxRecordBytes: DefaultMaxRecordBytes, MaxFieldBytes: DefaultMaxFieldBytes}

// WithDefaults is l with each zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultMaxRows
	}
	if l.MaxRecordBytes <= 0 {
		l.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if l.MaxFieldBytes <= 0 {
		l.MaxFieldBytes = DefaultMaxFieldBytes
	}
	return l
}

// Codes of refused rows and of a stopped import (besides the envelope's
// validation codes, which a row the log rejected carries).
const (
	CodeFieldTooLong  = "field_too_long"    // a CSV field over MaxFieldBytes: the row is refused
	CodeNotConfirmed  = "not_confirmed"     // the log did not confirm the row: it may or may not be there
	CodeTooLarge      = events.CodeTooLarge // the body is over MaxBytes: the import stopped
	CodeTooManyRows   = "too_many_rows"     // more than MaxRows rows: the import stopped
	CodeRecordTooLong = "record_too_long"   // a record over MaxRecordBytes: the import stopped
	CodeBadCSV        = "bad_csv"           // a record that is not CSV (a stray quote): the import stopped
	CodeReadFailed    = "read_failed"       // the input could not be read: the import stopped
	CodeLogFailed     = "log_unavailable"   // the log failed to take a batch: the import stopped
)

// ImportStats is an import's result, row by row. Every data row read is
// either applied, that is in the log after the import (Accepted: new;
// Duplicate: the log already had it), or refused (Rejected, each listed in
// Refused with its line and why). Applied gives the lines of the applied
// rows as ranges of consecutive rows. So Rows == Accepted + Duplicate +
// Rejected, and every row is in exactly one of Applied and Refused.
//
// Lines are the input's lines, counting from 1 (in a CSV file the header
// is line 1; a record with line breaks inside quotes spans several lines
// and is named by its first). Blank lines are not rows.
//
// An import is not all-or-nothing: rows are appended to the log in batches
// as they are read, and the log is append-only, so rows read before a
// problem that stops the import stay in it. Stopped then says where and
// why: no row from Stopped.Line on was read or appended. Sending the same
// rows again is safe: a row's event id comes from its content, so a row
// already in the log comes back as a duplicate.
type ImportStats struct {
	Rows      int          `json:"rows"`
	Accepted  int          `json:"accepted"`
	Duplicate int          `json:"duplicate"`
	Rejected  int          `json:"rejected"`
	Applied   []LineRange  `json:"applied"`
	Refused   []RefusedRow `json:"refused"`
	Stopped   *StopError   `json:"stopped,omitempty"`
}

// LineRange is the rows from line From to line To, both included.
type LineRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// RefusedRow is a row that is not in the log, and why.
type RefusedRow struct {
	Line    int    `json:"line"`
	OrderID string `json:"order_id,omitempty"` // as the row gave it, cut at 128 bytes
	Code    string `json:"code"`
	Error   string `json:"error"`
}

// StopError is why an import stopped before the end of its input: Line is
// the first line not imported (the row on it and every later one were
// not read or not appended). Import returns it as its error, and in
// ImportStats.Stopped.
type StopError struct {
	Line    int    `json:"line"`
	Code    string `json:"code"`
	Message string `json:"error"`
	Err     error  `json:"-"`
}

func (e *StopError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// Unwrap gives the underlying error, if any.
func (e *StopError) Unwrap() error { return e.Err }

// Shift moves every line of st by delta (for the result of a piece of a
// larger file: see Split).
func (st *ImportStats) Shift(delta int) {
	for i := range st.Applied {
		st.Applied[i].From += delta
		st.Applied[i].To += delta
	}
	for i := range st.Refused {
		st.Refused[i].Line += delta
	}
	if st.Stopped != nil {
		st.Stopped.Line += delta
	}
}

// Add adds the result of the next piece of the same file (its lines
// already shifted) to st.
func (st *ImportStats) Add(next ImportStats) {
	st.Rows += next.Rows
	st.Accepted += next.Accepted
	st.Duplicate += next.Duplicate
	st.Rejected += next.Rejected
	for _, r := range next.Applied {
		if n := len(st.Applied); n > 0 && st.Applied[n-1].To+1 == r.From {
			st.Applied[n-1].To = r.To
			continue
		}
		st.Applied = append(st.Applied, r)
	}
	st.Refused = append(st.Refused, next.Refused...)
	if next.Stopped != nil {
		st.Stopped = next.Stopped
	}
}

// Publisher is what an import publishes through.
type Publisher interface {
	PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error)
}

// Import reads a CSV (header row) or NDJSON export of system's current
// states and appends its rows to the log as snapshot events, in batches,
// in memory bounded by lim (a zero Limits: DefaultLimits), whatever the
// input's size. progress, when set, is called with the rows done.
//
// A row that breaks a per-row rule (a field over lim.MaxFieldBytes, an
// invalid envelope) is refused and the import goes on. A problem with the
// input itself stops it: a record over lim.MaxRecordBytes, a record that is
// not CSV, a row beyond lim.MaxRows, a failed read (among them the HTTP
// body limit), or a log that fails to take a batch. The rows read before
// it are still appended, and the result says which; the error is then a
// *StopError, also in the result's Stopped. Other errors (an unknown
// format) leave the log untouched.
func Import(ctx context.Context, pub Publisher, system string, r io.Reader, format events.FileFormat, importedAt time.Time, lim Limits, progress func(rows int)) (ImportStats, error) {
	if format != events.FormatCSV && format != events.FormatNDJSON && format != "" {
		return ImportStats{Applied: []LineRange{}, Refused: []RefusedRow{}}, fmt.Errorf("unknown snapshot format %q: want csv or ndjson", format)
	}
	im := &importer{ctx: ctx, pub: pub, system: system, importedAt: importedAt, lim: lim.WithDefaults(), progress: progress}
	im.st.Applied, im.st.Refused = []LineRange{}, []RefusedRow{}
	im.batch = make([][]byte, 0, 1000)
	rr := &recordReader{br: bufio.NewReaderSize(r, 64<<10), csv: format == events.FormatCSV, max: im.lim.MaxRecordBytes}
	var stop *StopError
	if format == events.FormatCSV {
		stop = im.readCSV(rr)
	} else {
		stop = im.readNDJSON(rr)
	}
	if ferr := im.flush(); ferr != nil && stop == nil {
		stop = ferr
		stop.Line = rr.line + 1
	}
	sort.SliceStable(im.st.Refused, func(i, j int) bool { return im.st.Refused[i].Line < im.st.Refused[j].Line })
	if stop != nil {
		im.st.Stopped = stop
		return im.st, stop
	}
	return im.st, nil
}

// Split reads an export and calls send with consecutive pieces of it, in
// order, each an export of the same format on its own (a CSV piece starts
// with the file's header) of at most lim.MaxRows rows and at most maxBytes
// bytes, so that each can be imported in one request. Records are copied
// as they are, blank lines included, so a line of a piece plus delta is
// the line of the file (ImportStats.Shift). An input without rows is sent
// as one piece as it is, for the import to report on. Memory: one piece.
//
// Split does not parse CSV fields (the import does). It stops, after the
// pieces before, at a record over lim.MaxRecordBytes or a failed read, with
// a *StopError naming the line of the file; an error from send stops it
// and is returned as it is.
func Split(r io.Reader, format events.FileFormat, lim Limits, maxBytes int, send func(piece []byte, delta int) error) error {
	lim = lim.WithDefaults()
	rr := &recordReader{br: bufio.NewReaderSize(r, 64<<10), csv: format == events.FormatCSV, max: lim.MaxRecordBytes}
	var header []byte // a CSV file's header record
	headerLines := 0
	piece := make([]byte, 0, 1<<20)
	rows, firstLine, sent := 0, 0, false
	// flush sends the piece when it has records, or when it is the last
	// and nothing was sent.
	flush := func(last bool) error {
		if len(piece) == len(header) && (sent || !last) {
			return nil
		}
		sent = true
		delta := 0
		if firstLine > 0 {
			delta = firstLine - (headerLines + 1)
		}
		err := send(piece, delta)
		piece, rows, firstLine = append(piece[:0], header...), 0, 0
		return err
	}
	if maxBytes < lim.MaxRecordBytes {
		maxBytes = lim.MaxRecordBytes
	}
	for {
		rec, line, err := rr.next()
		if errors.Is(err, io.EOF) {
			return flush(true)
		}
		if err != nil {
			stop := readStop(line, err, lim)
			if ferr := flush(false); ferr != nil {
				return ferr
			}
			return stop
		}
		blank := len(bytes.TrimSpace(rec)) == 0
		if rr.csv {
			// As encoding/csv: only an empty line is blank; "  " is a row.
			blank = string(rec) == "\n" || string(rec) == "\r\n"
		}
		if rr.csv && header == nil && !blank {
			header = bytes.Clone(rec)
			headerLines = rr.line - line + 1
			piece = append(piece[:0], header...)
			continue
		}
		if rr.csv && header == nil {
			continue // blank lines before the header
		}
		if !blank && rows == lim.MaxRows || len(piece)+len(rec) > maxBytes && len(piece) > len(header) {
			if err := flush(false); err != nil {
				return err
			}
		}
		if firstLine == 0 {
			firstLine = line
		}
		if !blank {
			rows++
		}
		piece = append(piece, rec...)
	}
}

// importer is one Import's state.
type importer struct {
	ctx        context.Context
	pub        Publisher
	system     string
	importedAt time.Time
	lim        Limits
	progress   func(rows int)
	st         ImportStats
	batch      [][]byte
	rows       []batchRow // the row of each batch entry
	lastRow    int        // the row number of the last row in st.Applied's last range
}

// batchRow is a row waiting in the batch: its line, its number among the
// rows (from 1) and its order id.
type batchRow struct {
	line, n int
	order   string
}

// row counts a data row on line, or stops the import when it is one more
// than MaxRows.
func (im *importer) row(line int) (batchRow, *StopError) {
	if im.st.Rows >= im.lim.MaxRows {
		return batchRow{}, &StopError{Line: line, Code: CodeTooManyRows,
			Message: fmt.Sprintf("more than %d rows, the most one import takes: this row and the ones after it were not imported; send them in another request (driftwatch snapshot import splits large files)", im.lim.MaxRows)}
	}
	im.st.Rows++
	return batchRow{line: line, n: im.st.Rows}, nil
}

// add queues a row's event, publishing the batch when it is full.
func (im *importer) add(br batchRow, data []byte) *StopError {
	im.batch = append(im.batch, data)
	im.rows = append(im.rows, br)
	if len(im.batch) == cap(im.batch) {
		return im.flush()
	}
	return nil
}

// applied records that br is in the log.
func (im *importer) applied(br batchRow) {
	if n := len(im.st.Applied); n > 0 && im.lastRow == br.n-1 {
		im.st.Applied[n-1].To = br.line
	} else {
		im.st.Applied = append(im.st.Applied, LineRange{From: br.line, To: br.line})
	}
	im.lastRow = br.n
}

// refuse records that br is not in the log, and why.
func (im *importer) refuse(br batchRow, code, msg string) {
	im.st.Rejected++
	im.st.Refused = append(im.st.Refused, RefusedRow{Line: br.line, OrderID: cut(br.order, 128), Code: code, Error: msg})
}

// flush publishes the batch and records each row's outcome. A row whose
// outcome the log did not give (a failed publish) is refused as not
// confirmed; the import then stops.
func (im *importer) flush() *StopError {
	if len(im.batch) == 0 {
		return nil
	}
	results, err := im.pub.PublishBatch(im.ctx, im.batch)
	for i, br := range im.rows {
		var res events.Result
		if i < len(results) {
			res = results[i]
		}
		switch res.Outcome {
		case events.Accepted:
			im.st.Accepted++
			im.applied(br)
		case events.Duplicate:
			im.st.Duplicate++
			im.applied(br)
		case events.Rejected:
			im.refuse(br, res.Code, res.Error)
		default:
			why := res.Error
			if why == "" && err != nil {
				why = err.Error()
			}
			im.refuse(br, CodeNotConfirmed, "the log did not confirm this row ("+why+"); importing it again is safe")
		}
	}
	im.batch, im.rows = im.batch[:0], im.rows[:0]
	if im.progress != nil {
		im.progress(im.st.Rows)
	}
	if err != nil {
		// The line is not known here; the caller sets it.
		return &StopError{Code: CodeLogFailed, Message: "the log failed to take a batch: " + err.Error(), Err: err}
	}
	return nil
}

// readStop turns a recordReader error for the record starting on line
// into the import's stop.
func readStop(line int, err error, lim Limits) *StopError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &StopError{Line: line, Code: CodeTooLarge, Err: err,
			Message: fmt.Sprintf("the body is over %d MiB, the most one import takes: the rows from this line on were not read; send them in another request (driftwatch snapshot import splits large files)", mbe.Limit>>20)}
	case errors.Is(err, errRecordTooLong):
		return &StopError{Line: line, Code: CodeRecordTooLong, Err: err,
			Message: fmt.Sprintf("the record starting on this line is over %d bytes (%d KiB), the most one row may take (an unclosed quote can also run a record on to the end of the file)", lim.MaxRecordBytes, lim.MaxRecordBytes>>10)}
	}
	return &StopError{Line: line, Code: CodeReadFailed, Message: "read: " + err.Error(), Err: err}
}

// readCSV imports a CSV export: a header row naming the columns, then one
// row per order.
func (im *importer) readCSV(rr *recordReader) *StopError {
	src := &recordSource{}
	cr := csv.NewReader(src)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	// parse reads the record rec, starting on line, as CSV: nil for a
	// blank line.
	parse := func(rec []byte, line int) ([]string, *StopError) {
		src.b = rec
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			at := line + pe.Line - pe.StartLine
			return nil, &StopError{Line: line, Code: CodeBadCSV, Err: err,
				Message: fmt.Sprintf("not CSV: line %d, column %d: %v", at, pe.Column, pe.Err)}
		}
		if err != nil {
			return nil, &StopError{Line: line, Code: CodeBadCSV, Message: err.Error(), Err: err}
		}
		return fields, nil
	}
	var header []string // the first non-empty row
	for {
		rec, line, err := rr.next()
		if errors.Is(err, io.EOF) && header == nil {
			return &StopError{Line: line, Code: CodeBadCSV, Message: "no CSV header row: the first row names the columns (order_id, status, ...)"}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return readStop(line, err, im.lim)
		}
		fields, stop := parse(rec, line)
		if stop != nil {
			return stop
		}
		if fields == nil {
			continue
		}
		if header == nil {
			header = make([]string, len(fields))
			for i, h := range fields {
				if len(h) > im.lim.MaxFieldBytes {
					return &StopError{Line: line, Code: CodeFieldTooLong, Message: fmt.Sprintf("header column %d is over %d bytes", i+1, im.lim.MaxFieldBytes)}
				}
				header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
			}
			continue
		}
		br, stop := im.row(line)
		if stop != nil {
			return stop
		}
		row := make(map[string]string, len(header))
		var attrs map[string]json.RawMessage
		tooLong := -1
		for i, h := range header {
			if i >= len(fields) {
				break
			}
			if len(fields[i]) > im.lim.MaxFieldBytes && tooLong < 0 {
				tooLong = i
			}
			if strings.HasPrefix(h, "attributes.") && fields[i] != "" {
				if attrs == nil {
					attrs = map[string]json.RawMessage{}
				}
				attrs[strings.TrimPrefix(h, "attributes.")] = attrValue(fields[i])
				continue
			}
			row[h] = fields[i]
		}
		br.order = orderOf(row)
		if tooLong < 0 {
			for i := len(header); i < len(fields); i++ {
				if len(fields[i]) > im.lim.MaxFieldBytes {
					tooLong = i
					break
				}
			}
		}
		if tooLong >= 0 {
			name := fmt.Sprintf("column %d", tooLong+1)
			if tooLong < len(header) && header[tooLong] != "" {
				name = fmt.Sprintf("column %d (%s)", tooLong+1, cut(header[tooLong], 64))
			}
			im.refuse(br, CodeFieldTooLong, fmt.Sprintf("%s is %d bytes; a field may have at most %d (%d KiB)", name, len(fields[tooLong]), im.lim.MaxFieldBytes, im.lim.MaxFieldBytes>>10))
			continue
		}
		if stop := im.event(br, row, attrs); stop != nil {
			stop.Line = rr.line + 1
			return stop
		}
	}
}

// readNDJSON imports an NDJSON export: one JSON object per line. A line
// that is not JSON is passed on as it is, and the log rejects it (and
// dead-letters it) with the reason.
func (im *importer) readNDJSON(rr *recordReader) *StopError {
	for {
		rec, line, err := rr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return readStop(line, err, im.lim)
		}
		rec = bytes.TrimSpace(rec)
		if len(rec) == 0 {
			continue
		}
		br, stop := im.row(line)
		if stop != nil {
			return stop
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(rec, &obj); err != nil {
			if stop := im.add(br, bytes.Clone(rec)); stop != nil {
				stop.Line = rr.line + 1
				return stop
			}
			continue
		}
		row := map[string]string{}
		var attrs map[string]json.RawMessage
		for k, v := range obj {
			if k == "attributes" {
				_ = json.Unmarshal(v, &attrs)
				continue
			}
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = strings.Trim(string(v), `"`)
			}
			row[k] = s
		}
		br.order = orderOf(row)
		if stop := im.event(br, row, attrs); stop != nil {
			stop.Line = rr.line + 1
			return stop
		}
	}
}

// event queues the snapshot event of a row (or refuses the row when it
// cannot be one).
func (im *importer) event(br batchRow, row map[string]string, attrs map[string]json.RawMessage) *StopError {
	data, err := SnapshotEvent(im.system, row, attrs, im.importedAt)
	if err != nil {
		im.refuse(br, events.CodeInvalidField, err.Error())
		return nil
	}
	return im.add(br, data)
}

// orderOf is a row's order id, under any of its column names.
func orderOf(row map[string]string) string {
	for k, v := range row {
		if v != "" && snapshotColumns[strings.ToLower(strings.TrimSpace(k))] == "order_id" {
			return v
		}
	}
	return ""
}

// cut is s cut at n bytes (at a rune boundary), with "…" when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// errRecordTooLong is a recordReader's error for a record over its limit.
var errRecordTooLong = errors.New("record too long")

// recordReader reads an export one record at a time in bounded memory: a
// CSV record (which runs on over line breaks inside quotes: a line break
// ends the record when the quotes so far are even, as in valid CSV every
// quote opens, closes or doubles another) or an NDJSON line, of at most max
// bytes, counting lines.
type recordReader struct {
	br   *bufio.Reader
	csv  bool
	max  int
	line int // lines read so far
	buf  []byte
}

// next returns the next record with its line ending (valid until the next
// call) and the line it starts on, or io.EOF at the end of the input. A
// record over max bytes is errRecordTooLong; a read error is returned as
// is. Either leaves the reader unusable.
func (rr *recordReader) next() ([]byte, int, error) {
	rr.buf = rr.buf[:0]
	start := rr.line + 1
	quotes := 0
	for {
		frag, err := rr.br.ReadSlice('\n')
		if len(rr.buf)+len(frag) > rr.max {
			return nil, start, errRecordTooLong
		}
		rr.buf = append(rr.buf, frag...)
		if rr.csv {
			quotes += bytes.Count(frag, []byte{'"'})
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(rr.buf) == 0 {
				return nil, start, io.EOF
			}
			rr.line++
			return rr.buf, start, nil
		case err != nil:
			return nil, start, err
		}
		rr.line++
		if quotes%2 == 0 {
			return rr.buf, start, nil
		}
	}
}

// recordSource feeds one record at a time to a csv.Reader: it reads b, then
// io.EOF until b is set again. (A csv.Reader keeps no state across an
// io.EOF, so one reader parses every record.)
type recordSource struct{ b []byte }

func (s *recordSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func attrValue(cell string) json.RawMessage {
	var f float64
	if _, err := fmt.Sscan(cell, &f); err == nil && json.Valid([]byte(cell)) {
		return json.RawMessage(cell)
	}
	b, _ := json.Marshal(cell)
	return b
}
