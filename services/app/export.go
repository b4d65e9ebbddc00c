package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/csvout"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// serveExportMismatches streams the mismatch history (GET
// /v1/export/mismatches?since=&format=csv|ndjson&state=&pattern=&system=).
// CSV cells that a spreadsheet would run as a formula get a leading quote
// (package csvout).
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
		cw := csvout.NewWriter(w)
		_ = cw.Write(detector.MismatchCSVHeader)
		err = detector.ScanMismatches(a.Store, f, func(m *detector.Mismatch) error { return cw.Write(detector.MismatchCSVRow(m)) })
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
