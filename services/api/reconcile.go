package api

import (
	"bytes"
	"errors"
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
}

// Register adds the route.
func (h *SnapshotHandlers) Register(s *Server) {
	s.HandleFunc("POST /v1/snapshots/{system}", h.importSnapshot)
}

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
	st, err := reconcile.Import(r.Context(), h.Publisher, sys, r.Body, format, time.Now(), nil)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_snapshot", err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, st)
}
