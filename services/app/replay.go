package app

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/replay"
)

// serveReplay is GET /v1/orders/{order_id}/replay: the annotated timeline.
func (a *App) serveReplay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("order_id")
	if entries, acks, ok := api.LoadTimeline(w, a.Store, id); ok {
		httpjson.Write(w, http.StatusOK, replay.Annotate(a.cfg, id, entries, acks, time.Now()))
	}
}

// MismatchCSVHeader is the column order of a mismatch export.
var MismatchCSVHeader = []string{"alert_id", "state", "order_id", "pattern", "severity", "detected_by",
	"source_system", "source_status", "source_canonical", "source_occurred_at", "source_received_at", "source_seq",
	"target_system", "target_status", "target_canonical", "target_occurred_at", "target_received_at", "target_seq",
	"onset_at", "deadline", "detected_at", "resolved_at", "amount", "currency", "message"}

// MismatchCSVRow renders one mismatch as a CSV row (both timestamps of both
// systems always).
func MismatchCSVRow(m *detector.Mismatch) []string {
	side := func(s *detector.Side) []string {
		if s == nil {
			return []string{"", "", "", "", "", ""}
		}
		return []string{s.System, s.Status, s.Canonical, s.OccurredAt, s.ReceivedAt, fmt.Sprint(s.Seq)}
	}
	resolved := ""
	if m.ResolvedAt != nil {
		resolved = *m.ResolvedAt
	}
	row := []string{m.AlertID, m.State, m.OrderID, m.Pattern, m.Severity, m.DetectedBy}
	row = append(row, side(m.Source)...)
	tgt := side(m.Target)
	if m.Target == nil && m.FlowTo != "" {
		tgt[0] = m.FlowTo
		tgt[1] = "(no record)"
	}
	row = append(row, tgt...)
	return append(row, m.OnsetAt, m.Deadline, m.DetectedAt, resolved, m.Amount, m.Currency, m.Message)
}

// serveExportMismatches streams the mismatch history (GET
// /v1/export/mismatches?since=&format=csv|ndjson&state=&pattern=&system=).
func (a *App) serveExportMismatches(w http.ResponseWriter, r *http.Request) {
	f, err := api.FilterFromQuery(r)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_query", err.Error())
		return
	}
	format := r.URL.Query().Get("format")
	switch format {
	case "", "csv":
		w.Header().Set("Content-Type", "text/csv")
		cw := csv.NewWriter(w)
		_ = cw.Write(MismatchCSVHeader)
		err = detector.ScanMismatches(a.Store, f, func(m *detector.Mismatch) error { return cw.Write(MismatchCSVRow(m)) })
		cw.Flush()
	case "ndjson":
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		err = detector.ScanMismatches(a.Store, f, func(m *detector.Mismatch) error { return enc.Encode(m) })
	default:
		httpjson.WriteError(w, http.StatusBadRequest, "bad_format", "format: want csv or ndjson")
		return
	}
	if err != nil {
		a.log.Error().Err(err).Msg("mismatch export failed midway")
		_, _ = fmt.Fprintf(w, "\n%s\n", strings.ReplaceAll("export failed: "+err.Error(), "\n", " "))
	}
}
