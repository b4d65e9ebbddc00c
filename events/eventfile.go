package events

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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
//
// Nothing read is repaired: an NDJSON line is returned as its bytes, and a
// CSV row keeps its bytes that are not UTF-8 and its repeated columns
// (CSVRowToJSON), so that Parse rejects such an event with the reason
// (invalid_utf8, duplicate_key) and it is dead-lettered like any other.
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

// CSVRowToJSON turns one CSV row into an envelope: an object with its keys
// sorted, strings encoded as encoding/json encodes them. It repairs and
// resolves nothing: bytes that are not UTF-8, in a cell or a column name,
// are kept as they are (encoding/json would write U+FFFD), and a column
// named twice gives its key twice, in column order (a map would keep one),
// so that Parse rejects the row, naming the field and the reason.
func CSVRowToJSON(header, row []string) ([]byte, error) {
	var obj, attrs []csvMember
	hasAttrs := false
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
			b, err := json.Marshal(json.RawMessage(cell)) // compacted; bytes that are not UTF-8 kept
			if err != nil {
				return nil, fmt.Errorf("column attributes: %w", err)
			}
			obj = append(obj, csvMember{name, b})
			hasAttrs = true
		case strings.HasPrefix(name, "attributes."):
			key := strings.TrimPrefix(name, "attributes.")
			if _, err := strconv.ParseFloat(cell, 64); err == nil && json.Valid([]byte(cell)) {
				attrs = append(attrs, csvMember{key, []byte(cell)})
			} else {
				attrs = append(attrs, csvMember{key, appendJSONString(nil, cell)})
			}
		default:
			obj = append(obj, csvMember{name, appendJSONString(nil, cell)})
		}
	}
	if attrs != nil {
		if hasAttrs {
			return nil, errors.New("columns attributes and attributes.<key> cannot both be set")
		}
		obj = append(obj, csvMember{"attributes", appendJSONObject(nil, attrs)})
	}
	return appendJSONObject(nil, obj), nil
}

// csvMember is a key and its encoded value.
type csvMember struct {
	key   string
	value []byte
}

// appendJSONObject appends an object of members, sorted by key (stably: a
// repeated key stays repeated, in order).
func appendJSONObject(dst []byte, members []csvMember) []byte {
	slices.SortStableFunc(members, func(a, b csvMember) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.value...)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string, encoded as encoding/json
// encodes it, except that bytes that are not part of a UTF-8 sequence are
// copied as they are instead of becoming U+FFFD: the text is not repaired,
// and Parse rejects it.
func appendJSONString(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		b, _ := json.Marshal(s)
		return append(dst, b...)
	}
	dst = append(dst, '"')
	for len(s) > 0 {
		n := 0
		for n < len(s) {
			r, size := utf8.DecodeRuneInString(s[n:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			n += size
		}
		if n == 0 { // a byte of 0x80 or more: never a JSON delimiter
			dst = append(dst, s[0])
			s = s[1:]
			continue
		}
		b, _ := json.Marshal(s[:n])
		dst = append(dst, b[1:len(b)-1]...)
		s = s[n:]
	}
	return append(dst, '"')
}
