package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// MismatchPage is GET /v1/mismatches.
type MismatchPage struct {
	Total      int                  `json:"total"`
	Offset     int                  `json:"offset"`
	Limit      int                  `json:"limit"`
	Mismatches []*detector.Mismatch `json:"mismatches"`
}

// ResolveRequest is the body of POST /v1/mismatches/{alert_id}/resolve.
type ResolveRequest struct {
	Note string `json:"note"`
	By   string `json:"by"`
}

// MismatchHandlers serves the mismatch store.
type MismatchHandlers struct {
	Store    *projections.Store
	Detector *detector.Detector
}

// Register adds the routes.
func (h *MismatchHandlers) Register(s *Server) {
	s.HandleFunc("GET /v1/mismatches", h.list)
	s.HandleFunc("GET /v1/mismatches/{alert_id}", h.get)
	s.HandleFunc("POST /v1/mismatches/{alert_id}/resolve", h.resolve)
}

// FilterFromQuery reads state, pattern, system, severity, order and since.
func FilterFromQuery(r *http.Request) (detector.Filter, error) {
	q := r.URL.Query()
	f := detector.Filter{State: q.Get("state"), Pattern: q.Get("pattern"), System: q.Get("system"), Severity: q.Get("severity"), OrderID: q.Get("order")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return f, errors.New("since: want an RFC 3339 timestamp")
		}
		f.SinceNanos = t.UnixNano()
	}
	if s := q.Get("min_age"); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil || secs < 0 {
			return f, errors.New("min_age: want a number of seconds")
		}
		f.DetectedBeforeNanos = time.Now().Add(-time.Duration(secs) * time.Second).UnixNano()
	}
	switch f.State {
	case "", detector.StateOpen, detector.StateEscalated, detector.StateResolved:
	default:
		return f, errors.New("state: want open, escalated or resolved")
	}
	return f, nil
}

func (h *MismatchHandlers) list(w http.ResponseWriter, r *http.Request) {
	f, err := FilterFromQuery(r)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_query", err.Error())
		return
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 || limit > 1000 {
		limit = 100
	}
	page, total, err := detector.ListMismatches(h.Store, f, max(offset, 0), limit)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	if page == nil {
		page = []*detector.Mismatch{}
	}
	httpjson.Write(w, http.StatusOK, MismatchPage{Total: total, Offset: offset, Limit: limit, Mismatches: page})
}

func (h *MismatchHandlers) get(w http.ResponseWriter, r *http.Request) {
	m, err := detector.GetMismatch(h.Store, r.PathValue("alert_id"))
	if errors.Is(err, detector.ErrMismatchNotFound) {
		httpjson.WriteError(w, http.StatusNotFound, "mismatch_not_found", "no mismatch with alert id "+r.PathValue("alert_id"))
		return
	}
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, m)
}

func (h *MismatchHandlers) resolve(w http.ResponseWriter, r *http.Request) {
	var req ResolveRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "want {\"note\": \"...\", \"by\": \"...\"}: "+err.Error())
			return
		}
	}
	if req.Note == "" {
		httpjson.WriteError(w, http.StatusBadRequest, "note_required", "note: say why the mismatch is resolved (it is kept in the audit trail)")
		return
	}
	// "by" is what the caller says; the token it came with is known, and
	// the audit trail names it too.
	c, authed := CallerOf(r.Context())
	switch {
	case req.By == "" && authed:
		req.By = c.Name
	case req.By == "":
		req.By = "api"
	case authed && req.By != c.Name:
		req.By += " (token " + c.Name + ")"
	}
	if h.Detector == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "detector_not_running", "the detector service is not running in this process")
		return
	}
	m, err := h.Detector.Resolve(r.PathValue("alert_id"), req.By, req.Note)
	switch {
	case errors.Is(err, detector.ErrMismatchNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "mismatch_not_found", "no mismatch with alert id "+r.PathValue("alert_id"))
	case errors.Is(err, detector.ErrAlreadyResolved):
		httpjson.WriteError(w, http.StatusConflict, "already_resolved", "mismatch "+r.PathValue("alert_id")+" is already resolved")
	case err != nil:
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
	default:
		httpjson.Write(w, http.StatusOK, m)
	}
}
