package events

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// FileFormat is the format of an event file.
type FileFormat string

// Event file formats.
const (
	FormatNDJSON FileFormat = "ndjson"
	FormatCSV    FileFormat = "csv"
)

// FormatOf guesses a file's format from its name: .csv is CSV, anything
// else NDJSON.
func FormatOf(name string) FileFormat {
	if strings.HasSuffix(strings.ToLower(name), ".csv") {
		return FormatCSV
	}
	return FormatNDJSON
}

// FileReader reads envelopes one at a time from an NDJSON file (one JSON
// object per line, blank lines skipped) or a CSV export (a header row naming
// envelope fields, one event per row). CSV cells become JSON strings;
// an "attributes" column holds a JSON object, and "attributes.<key>" columns
// become attribute keys (numbers stay numbers). Empty cells are left out.
// Memory stays constant whatever the file's size.
type FileReader struct {
	format FileFormat
	lines  *bufio.Scanner
	csv    *csv.Reader
	header []string
	line   int
}

// NewFileReader reads r in the given format.
func NewFileReader(r io.Reader, format FileFormat) (*FileReader, error) {
	fr := &FileReader{format: format}
	switch format {
	case FormatNDJSON:
		fr.lines = bufio.NewScanner(r)
		fr.lines.Buffer(make([]byte, 0, 64<<10), 1<<20-16<<10)
	case FormatCSV:
		fr.csv = csv.NewReader(r)
		fr.csv.FieldsPerRecord = -1
		fr.csv.ReuseRecord = true
		header, err := fr.csv.Read()
		if err != nil {
			return nil, fmt.Errorf("read CSV header: %w", err)
		}
		fr.header = make([]string, len(header))
		for i, h := range header {
			fr.header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		}
		fr.line = 1
	default:
		return nil, fmt.Errorf("unknown event file format %q: want ndjson or csv", format)
	}
	return fr, nil
}

// Line is the line (NDJSON) or row (CSV, counting the header as 1) of the
// last envelope returned.
func (fr *FileReader) Line() int { return fr.line }

// Next returns the next envelope as JSON bytes, or io.EOF. A CSV row that
// cannot be turned into JSON is returned as an error naming the row; the
// reader can continue after it.
func (fr *FileReader) Next() ([]byte, error) {
	if fr.format == FormatNDJSON {
		for fr.lines.Scan() {
			fr.line++
			b := bytes.TrimSpace(fr.lines.Bytes())
			if len(b) == 0 {
				continue
			}
			return append([]byte(nil), b...), nil
		}
		if err := fr.lines.Err(); err != nil {
			return nil, fmt.Errorf("line %d: %w", fr.line+1, err)
		}
		return nil, io.EOF
	}
	rec, err := fr.csv.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		fr.line++
		return nil, fmt.Errorf("row %d: %w", fr.line, err)
	}
	fr.line++
	return CSVRowToJSON(fr.header, rec)
}

// CSVRowToJSON turns one CSV row into an envelope.
func CSVRowToJSON(header, row []string) ([]byte, error) {
	obj := make(map[string]json.RawMessage, len(header))
	var attrs map[string]json.RawMessage
	for i, name := range header {
		if i >= len(row) || name == "" {
			continue
		}
		cell := row[i]
		if cell == "" {
			continue
		}
		switch {
		case name == "attributes":
			if !json.Valid([]byte(cell)) {
				return nil, fmt.Errorf("column attributes: %q is not a JSON object", cell)
			}
			obj[name] = json.RawMessage(cell)
		case strings.HasPrefix(name, "attributes."):
			if attrs == nil {
				attrs = map[string]json.RawMessage{}
			}
			if _, err := strconv.ParseFloat(cell, 64); err == nil && json.Valid([]byte(cell)) {
				attrs[strings.TrimPrefix(name, "attributes.")] = json.RawMessage(cell)
			} else {
				s, _ := json.Marshal(cell)
				attrs[strings.TrimPrefix(name, "attributes.")] = s
			}
		default:
			s, _ := json.Marshal(cell)
			obj[name] = s
		}
	}
	if attrs != nil {
		if _, both := obj["attributes"]; both {
			return nil, errors.New("columns attributes and attributes.<key> cannot both be set")
		}
		b, _ := json.Marshal(attrs)
		obj["attributes"] = b
	}
	return json.Marshal(obj)
}
