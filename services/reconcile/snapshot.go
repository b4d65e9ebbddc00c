package reconcile

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

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

// ImportStats counts an import's rows.
type ImportStats struct {
	Rows      int             `json:"rows"`
	Accepted  int             `json:"accepted"`
	Duplicate int             `json:"duplicate"`
	Rejected  int             `json:"rejected"`
	Errors    []events.Result `json:"errors,omitempty"` // the first rejections
}

// Publisher is what an import publishes through.
type Publisher interface {
	PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error)
}

// Import streams a CSV (header row) or NDJSON export of system's current
// states into the log as snapshot events, in chunks, in constant memory.
// progress, when set, is called with the rows done.
func Import(ctx context.Context, pub Publisher, system string, r io.Reader, format events.FileFormat, importedAt time.Time, progress func(rows int)) (ImportStats, error) {
	var st ImportStats
	batch := make([][]byte, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := pub.PublishBatch(ctx, batch)
		for _, res := range results {
			switch res.Outcome {
			case events.Accepted:
				st.Accepted++
			case events.Duplicate:
				st.Duplicate++
			case events.Rejected:
				st.Rejected++
				if len(st.Errors) < 100 {
					st.Errors = append(st.Errors, res)
				}
			}
		}
		batch = batch[:0]
		if progress != nil {
			progress(st.Rows)
		}
		return err
	}
	add := func(data []byte) error {
		st.Rows++
		batch = append(batch, data)
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	}
	switch format {
	case events.FormatCSV:
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		cr.ReuseRecord = true
		header, err := cr.Read()
		if err != nil {
			return st, fmt.Errorf("read CSV header: %w", err)
		}
		header = append([]string(nil), header...)
		for i := range header {
			header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
		}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return st, fmt.Errorf("row %d: %w", st.Rows+2, err)
			}
			row := make(map[string]string, len(header))
			var attrs map[string]json.RawMessage
			for i, h := range header {
				if i >= len(rec) {
					break
				}
				if strings.HasPrefix(h, "attributes.") && rec[i] != "" {
					if attrs == nil {
						attrs = map[string]json.RawMessage{}
					}
					attrs[strings.TrimPrefix(h, "attributes.")] = attrValue(rec[i])
					continue
				}
				row[h] = rec[i]
			}
			data, err := SnapshotEvent(system, row, attrs, importedAt)
			if err != nil {
				return st, err
			}
			if err := add(data); err != nil {
				return st, err
			}
		}
	default:
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				// Keep the bad line: it is rejected (and dead-lettered) as is.
				if err := add([]byte(line)); err != nil {
					return st, err
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
			data, err := SnapshotEvent(system, row, attrs, importedAt)
			if err != nil {
				return st, err
			}
			if err := add(data); err != nil {
				return st, err
			}
		}
		if err := sc.Err(); err != nil {
			return st, err
		}
	}
	return st, flush()
}

func attrValue(cell string) json.RawMessage {
	var f float64
	if _, err := fmt.Sscan(cell, &f); err == nil && json.Valid([]byte(cell)) {
		return json.RawMessage(cell)
	}
	b, _ := json.Marshal(cell)
	return b
}
