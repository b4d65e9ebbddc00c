// Package csvout writes every CSV file driftwatch produces (exports,
// reports, replays) so that a spreadsheet opening it never runs a cell as a
// formula.
//
// It follows OWASP's CSV injection guidance
// (https://owasp.org/www-community/attacks/CSV_Injection): a field that
// begins with '=', '+', '-', '@', a tab (0x09) or a carriage return (0x0D)
// is written with a single quote ' in front of it, and quoted as RFC 4180
// requires. The rule is applied to every field, whatever its column: order
// ids, statuses and attributes come from outside systems, and a negative
// amount such as "-12.50" is written as "'-12.50" too.
//
// The quote is part of the written value: a program reading one of these
// files back gets "'-12.50", and must remove the quote itself where the
// field begins with "'" followed by one of the six characters. No reader
// in driftwatch reads these files back (an event export cannot be
// published again as it is: its seq and received_at columns are not
// envelope fields).
package csvout

import (
	"encoding/csv"
	"io"
)

// Neutralise returns field as it is written to a CSV file: with a leading
// single quote when its first byte is '=', '+', '-', '@', tab or carriage
// return, unchanged otherwise.
func Neutralise(field string) string {
	if field == "" {
		return field
	}
	switch field[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + field
	}
	return field
}

// Writer is an encoding/csv Writer whose Write and WriteAll neutralise each
// field first. Flush, Error and the Comma and UseCRLF settings are those of
// the embedded csv.Writer.
type Writer struct {
	*csv.Writer
	buf []string
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{Writer: csv.NewWriter(w)}
}

// Write writes one record, each field neutralised. The caller's slice is
// not modified.
func (w *Writer) Write(record []string) error {
	w.buf = w.buf[:0]
	for _, f := range record {
		w.buf = append(w.buf, Neutralise(f))
	}
	return w.Writer.Write(w.buf)
}

// WriteAll writes records, each field neutralised, and flushes.
func (w *Writer) WriteAll(records [][]string) error {
	for _, rec := range records {
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}
