package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/policy"
	"github.com/driftwatch/driftwatch/services/reconcile"
)

// ReconcileHandlers serves reconciliation and the ops alerts.
type ReconcileHandlers struct {
	Store      *projections.Store
	Reconciler *reconcile.Reconciler
}

// Register adds the routes.
func (h *ReconcileHandlers) Register(s *Server) {
	s.HandleFunc("GET /v1/reconcile/latest", h.latest)
	s.HandleFunc("POST /v1/reconcile", h.run)
	s.HandleFunc("GET /v1/ops-alerts", h.ops)
}

func writeReport(w http.ResponseWriter, r *http.Request, rep *reconcile.Report) {
	switch r.URL.Query().Get("format") {
	case "csv":
		w.Header().Set("Content-Type", "text/csv")
		_ = rep.WriteCSV(w)
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = rep.WriteText(w)
	default:
		httpjson.Write(w, http.StatusOK, rep)
	}
}

func (h *ReconcileHandlers) latest(w http.ResponseWriter, r *http.Request) {
	rep, err := reconcile.Latest(h.Store)
	if errors.Is(err, reconcile.ErrNoReport) {
		httpjson.WriteError(w, http.StatusNotFound, "no_report", "no reconciliation has run yet: POST /v1/reconcile runs one")
		return
	}
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	writeReport(w, r, rep)
}

func (h *ReconcileHandlers) run(w http.ResponseWriter, r *http.Request) {
	if h.Reconciler == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "reconcile_not_running", "the reconcile service is not running in this process")
		return
	}
	rep, err := h.Reconciler.Run(r.Context())
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "reconcile_failed", err.Error())
		return
	}
	writeReport(w, r, rep)
}

func (h *ReconcileHandlers) ops(w http.ResponseWriter, r *http.Request) {
	list, err := policy.List(h.Store)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	if list == nil {
		list = []policy.OpsAlert{}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ops_alerts": list})
}

// SnapshotHandlers serves POST /v1/snapshots/{system}.
type SnapshotHandlers struct {
	Config    *config.Config
	Publisher reconcile.Publisher
	// Limits bound one request: its body, rows, records and fields (a
	// zero field: reconcile.DefaultLimits, a 64 MiB body and 100,000 rows).
	Limits reconcile.Limits
}

// Register adds the route.
func (h *SnapshotHandlers) Register(s *Server) {
	s.HandleFunc("POST /v1/snapshots/{system}", h.importSnapshot)
}

// importSnapshot streams the body into reconcile.Import, reading at most
// Limits.MaxBytes of it. When every row was read it answers 200 with the
// import's result (each row applied or refused, by line). When the import
// stopped early it answers the same result with "error" and "code" added:
// 413 for a body, a record or a row count over its limit, 400 for a body
// that is not CSV, 503 when the log failed; the rows before the line named
// in "stopped" were imported (they are listed), the rest were not read. A
// body declared larger than the limit is refused before any row is read.
func (h *SnapshotHandlers) importSnapshot(w http.ResponseWriter, r *http.Request) {
	sys := r.PathValue("system")
	if !h.Config.Known(sys) {
		httpjson.WriteError(w, http.StatusNotFound, events.CodeUnknownSystem, sys+" is not a configured system")
		return
	}
	format := events.FormatNDJSON
	ct := r.Header.Get("Content-Type")
	if bytes.HasPrefix([]byte(ct), []byte("text/csv")) || r.URL.Query().Get("format") == "csv" {
		format = events.FormatCSV
	}
	lim := h.Limits.WithDefaults()
	if r.ContentLength > lim.MaxBytes {
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, reconcile.CodeTooLarge,
			fmt.Sprintf("the body is %d bytes; one snapshot import takes at most %d MiB: send the file in several requests (driftwatch snapshot import does)", r.ContentLength, lim.MaxBytes>>20))
		return
	}
	body := http.MaxBytesReader(w, r.Body, lim.MaxBytes)
	st, err := reconcile.Import(r.Context(), h.Publisher, sys, body, format, time.Now(), lim, nil)
	if err == nil {
		httpjson.Write(w, http.StatusOK, st)
		return
	}
	var stop *reconcile.StopError
	if !errors.As(err, &stop) {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_snapshot", err.Error())
		return
	}
	status := http.StatusBadRequest
	switch stop.Code {
	case reconcile.CodeTooLarge, reconcile.CodeTooManyRows, reconcile.CodeRecordTooLong:
		status = http.StatusRequestEntityTooLarge
	case reconcile.CodeLogFailed:
		status = http.StatusServiceUnavailable
	}
	httpjson.Write(w, status, struct {
		httpjson.ErrorBody
		reconcile.ImportStats
	}{httpjson.ErrorBody{Error: stop.Error(), Code: stop.Code}, st})
}
