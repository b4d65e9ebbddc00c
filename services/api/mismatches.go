package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
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

// AssignRequest is the body of POST /v1/mismatches/{alert_id}/assign:
// owner is required ("" unassigns); by and note go to the audit trail.
type AssignRequest struct {
	Owner *string `json:"owner"`
	By    string  `json:"by"`
	Note  string  `json:"note"`
}

// NoteRequest is the body of POST /v1/mismatches/{alert_id}/notes: note is
// required.
type NoteRequest struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

// Limits of what a person adds to a mismatch's audit trail.
const (
	MaxNoteLength = 4096 // characters of a note
	MaxByLength   = 128  // characters of "by"
)

// MismatchHandlers serves the mismatch store.
type MismatchHandlers struct {
	Store    *projections.Store
	Detector *detector.Detector
	// Config names the systems a filter may ask for and overrides the
	// runbooks (nil: any system, the built-in runbooks).
	Config *config.Config
	// Cluster, when set, reaches the other instances of a cluster: the
	// list gathers every instance's, and a mismatch this instance does
	// not own is read and changed on the one that does. Owns then says
	// which orders are this instance's.
	Cluster Cluster
	Owns    func(orderID string) bool
}

// Cluster reaches the instances of a cluster (services/cluster).
type Cluster interface {
	// Gather sends a GET of uri to every live instance, this one too,
	// and returns the bodies of their 200 replies.
	Gather(r *http.Request, uri string) ([][]byte, error)
	// ForwardAny sends r (with body) to the other live instances in turn
	// and writes the first reply that is not a 404; false when none
	// answered other than 404.
	ForwardAny(w http.ResponseWriter, r *http.Request, body []byte) bool
}

// maxGathered is the most mismatches one instance returns to a gathering
// list (the page's offset plus its limit).
const maxGathered = 100000

// elsewhere serves r, about mismatch alertID, on the instance that owns
// it, when this one does not, and reports whether it did. On the owner's
// side of a forwarded request, another's mismatch is a 404, so the sender
// tries the next instance. r's body is read here and left readable.
func (h *MismatchHandlers) elsewhere(w http.ResponseWriter, r *http.Request, alertID string) bool {
	if h.Cluster == nil {
		return false
	}
	m, err := detector.GetMismatch(h.Store, alertID)
	mine := err == nil && h.Owns(m.OrderID)
	if mine {
		return false
	}
	if !IsForwarded(r.Context()) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
		r.Body = io.NopCloser(bytes.NewReader(body))
		if h.Cluster.ForwardAny(w, r, body) {
			return true
		}
	}
	httpjson.WriteError(w, http.StatusNotFound, "mismatch_not_found", "no mismatch with alert id "+alertID)
	return true
}

// gather answers the list from every instance: each returns the first
// offset+limit of its own, and the pages merge in the list's order.
func (h *MismatchHandlers) gather(w http.ResponseWriter, r *http.Request, offset, limit int) {
	if offset+limit > maxGathered {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_offset", fmt.Sprintf("offset: instances of a cluster list at most %d mismatches past the offset's start; narrow the filter", maxGathered))
		return
	}
	q := r.URL.Query()
	q.Set("offset", "0")
	q.Set("limit", strconv.Itoa(offset+limit))
	bodies, err := h.Cluster.Gather(r, "/v1/mismatches?"+q.Encode())
	if err != nil {
		httpjson.WriteError(w, http.StatusBadGateway, "instances_unreachable", err.Error())
		return
	}
	var all []*detector.Mismatch
	total := 0
	for _, b := range bodies {
		var p MismatchPage
		if err := json.Unmarshal(b, &p); err != nil {
			httpjson.WriteError(w, http.StatusBadGateway, "instance_error", "a list from another instance: "+err.Error())
			return
		}
		total += p.Total
		all = append(all, p.Mismatches...)
	}
	detector.SortMismatches(all)
	page := all[min(offset, len(all)):min(offset+limit, len(all))]
	if page == nil {
		page = []*detector.Mismatch{}
	}
	httpjson.Write(w, http.StatusOK, MismatchPage{Total: total, Offset: offset, Limit: limit, Mismatches: page})
}

// Register adds the routes.
func (h *MismatchHandlers) Register(s *Server) {
	s.HandleFunc("GET /v1/mismatches", h.list)
	s.HandleFunc("GET /v1/mismatches/{alert_id}", h.get)
	s.HandleFunc("POST /v1/mismatches/{alert_id}/resolve", h.resolve)
	s.HandleFunc("POST /v1/mismatches/{alert_id}/assign", h.assign)
	s.HandleFunc("POST /v1/mismatches/{alert_id}/notes", h.note)
}

// FilterStates are the values of the state filter: open (open and
// escalated), escalated, resolved, and all ("" too).
var FilterStates = []string{detector.StateOpen, detector.StateEscalated, detector.StateResolved, "all"}

// FilterError is a filter value that is not one of the valid ones. The
// API answers it with 400, code bad_filter, the parameter and the valid
// values: {"error", "code", "param", "valid"}.
type FilterError struct {
	Param string
	Value string
	Valid []string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("%s: %q is not one of %s", e.Param, e.Value, strings.Join(e.Valid, ", "))
}

// FilterErrorBody is the reply to a FilterError.
type FilterErrorBody struct {
	Error string   `json:"error"`
	Code  string   `json:"code"`
	Param string   `json:"param"`
	Valid []string `json:"valid"`
}

// CodeBadFilter is the error code of a filter value that is not valid.
const CodeBadFilter = "bad_filter"

// FilterFromQuery reads state, pattern, system, severity, order, owner,
// since and min_age (ParseFilter without a list of systems: any system
// passes).
func FilterFromQuery(r *http.Request) (detector.Filter, error) {
	return ParseFilter(r.URL.Query(), nil)
}

// ParseFilter reads a mismatch filter from query parameters: state (open,
// escalated, resolved or all), pattern, severity, system (one of systems,
// when given), order, owner (a name, or none for the unassigned), since
// (RFC 3339) and min_age (seconds). A state, pattern, severity or system
// that is not one of the valid values is a *FilterError.
func ParseFilter(q url.Values, systems []string) (detector.Filter, error) {
	f := detector.Filter{State: q.Get("state"), Pattern: q.Get("pattern"), System: q.Get("system"), Severity: q.Get("severity"),
		OrderID: q.Get("order"), Owner: q.Get("owner")}
	for _, c := range []struct {
		param, value string
		valid        []string
	}{
		{"state", f.State, FilterStates},
		{"pattern", f.Pattern, detector.Patterns},
		{"severity", f.Severity, detector.Severities},
		{"system", f.System, systems},
	} {
		if c.value != "" && c.valid != nil && !slices.Contains(c.valid, c.value) {
			return f, &FilterError{Param: c.param, Value: c.value, Valid: c.valid}
		}
	}
	if f.State == "all" {
		f.State = ""
	}
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
	return f, nil
}

// systems are the configured system ids (nil without a configuration).
func (h *MismatchHandlers) systems() []string {
	if h.Config == nil {
		return nil
	}
	ids := make([]string, 0, len(h.Config.Systems))
	for _, s := range h.Config.Systems {
		ids = append(ids, s.ID)
	}
	return ids
}

// withRunbook fills in m's runbook (it is made when served, never stored).
func (h *MismatchHandlers) withRunbook(m *detector.Mismatch) *detector.Mismatch {
	if m != nil {
		m.Runbook = detector.RunbookOf(h.Config, m)
	}
	return m
}

// writeFilterError answers a bad filter: a FilterError with the valid
// values, anything else as bad_query.
func writeFilterError(w http.ResponseWriter, err error) {
	var fe *FilterError
	if errors.As(err, &fe) {
		httpjson.Write(w, http.StatusBadRequest, FilterErrorBody{Error: fe.Error(), Code: CodeBadFilter, Param: fe.Param, Valid: fe.Valid})
		return
	}
	httpjson.WriteError(w, http.StatusBadRequest, "bad_query", err.Error())
}

func (h *MismatchHandlers) list(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query(), h.systems())
	if err != nil {
		writeFilterError(w, err)
		return
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	offset = max(offset, 0)
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	forwarded := IsForwarded(r.Context())
	if err != nil || limit <= 0 || limit > 1000 && !(forwarded && limit <= maxGathered) {
		limit = 100
	}
	if h.Cluster != nil {
		if !forwarded {
			h.gather(w, r, offset, limit)
			return
		}
		f.Owns = h.Owns
	}
	page, total, err := detector.ListMismatches(h.Store, f, offset, limit)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	if page == nil {
		page = []*detector.Mismatch{}
	}
	for _, m := range page {
		h.withRunbook(m)
	}
	httpjson.Write(w, http.StatusOK, MismatchPage{Total: total, Offset: offset, Limit: limit, Mismatches: page})
}

func (h *MismatchHandlers) get(w http.ResponseWriter, r *http.Request) {
	if h.elsewhere(w, r, r.PathValue("alert_id")) {
		return
	}
	m, err := detector.GetMismatch(h.Store, r.PathValue("alert_id"))
	if errors.Is(err, detector.ErrMismatchNotFound) {
		httpjson.WriteError(w, http.StatusNotFound, "mismatch_not_found", "no mismatch with alert id "+r.PathValue("alert_id"))
		return
	}
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, h.withRunbook(m))
}

func (h *MismatchHandlers) resolve(w http.ResponseWriter, r *http.Request) {
	if h.elsewhere(w, r, r.PathValue("alert_id")) {
		return
	}
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
	req.By = auditBy(r, req.By)
	if !h.detectorRuns(w) {
		return
	}
	m, err := h.Detector.Resolve(r.PathValue("alert_id"), req.By, req.Note)
	h.reply(w, r, m, err)
}

// auditBy is who the audit trail names for a request: what the caller
// says ("by"); the token it came with is known, and the trail names it
// too ("kim (token ops)", or the token's name when by is empty); "api"
// without tokens and by.
func auditBy(r *http.Request, by string) string {
	c, authed := CallerOf(r.Context())
	switch {
	case by == "" && authed:
		return c.Name
	case by == "":
		return "api"
	case authed && by != c.Name:
		return by + " (token " + c.Name + ")"
	}
	return by
}

// reply answers a change of a mismatch: the record with its runbook, or
// the error's status and code.
func (h *MismatchHandlers) reply(w http.ResponseWriter, r *http.Request, m *detector.Mismatch, err error) {
	id := r.PathValue("alert_id")
	switch {
	case errors.Is(err, detector.ErrMismatchNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "mismatch_not_found", "no mismatch with alert id "+id)
	case errors.Is(err, detector.ErrAlreadyResolved):
		httpjson.WriteError(w, http.StatusConflict, "already_resolved", "mismatch "+id+" is already resolved")
	case errors.Is(err, detector.ErrAuditFull):
		httpjson.WriteError(w, http.StatusConflict, "audit_full", fmt.Sprintf("mismatch %s's audit trail holds %d entries, the most it takes", id, detector.MaxAudit))
	case err != nil:
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
	default:
		httpjson.Write(w, http.StatusOK, h.withRunbook(m))
	}
}

// readStrict decodes a JSON object body of at most 64 KiB into v,
// refusing unknown keys (a misspelt "ownr" is an error, not an
// unassignment); an empty body leaves v as it is.
func readStrict(w http.ResponseWriter, r *http.Request, v any, shape string) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "reading the body: "+err.Error())
		return false
	}
	if len(body) > 64<<10 {
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than 64 KiB")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "want "+shape+": "+err.Error())
		return false
	}
	if dec.More() {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_body", "want one JSON object: "+shape)
		return false
	}
	return true
}

// checkAudit checks the by and note a person adds to the trail.
func checkAudit(w http.ResponseWriter, by, note string) bool {
	switch {
	case utf8.RuneCountInString(note) > MaxNoteLength:
		httpjson.WriteError(w, http.StatusBadRequest, "note_too_long", fmt.Sprintf("note: at most %d characters", MaxNoteLength))
	case utf8.RuneCountInString(by) > MaxByLength:
		httpjson.WriteError(w, http.StatusBadRequest, "bad_by", fmt.Sprintf("by: at most %d characters", MaxByLength))
	case strings.IndexFunc(by, unicode.IsControl) >= 0:
		httpjson.WriteError(w, http.StatusBadRequest, "bad_by", "by: no control characters")
	default:
		return true
	}
	return false
}

// assign serves POST /v1/mismatches/{alert_id}/assign: the mismatch gets
// owner ("" unassigns), with an assigned entry in its audit trail, and its
// alert record is published again (Detector.Assign). The owner it already
// has changes nothing. A resolved mismatch takes no owner (409).
func (h *MismatchHandlers) assign(w http.ResponseWriter, r *http.Request) {
	if h.elsewhere(w, r, r.PathValue("alert_id")) {
		return
	}
	var req AssignRequest
	const shape = `{"owner": "...", "by": "...", "note": "..."} (owner "" unassigns)`
	if !readStrict(w, r, &req, shape) {
		return
	}
	if req.Owner == nil {
		httpjson.WriteError(w, http.StatusBadRequest, "owner_required", "owner: say who owns the mismatch now (\"\" unassigns): "+shape)
		return
	}
	if *req.Owner != "" {
		if why := config.CheckOwner(*req.Owner); why != "" {
			httpjson.WriteError(w, http.StatusBadRequest, "bad_owner", "owner: the name "+why)
			return
		}
	}
	if !checkAudit(w, req.By, req.Note) {
		return
	}
	if !h.detectorRuns(w) {
		return
	}
	m, err := h.Detector.Assign(r.PathValue("alert_id"), *req.Owner, auditBy(r, req.By), req.Note)
	h.reply(w, r, m, err)
}

// detectorRuns answers 503 when this process runs no detector (the
// mismatch changes go through it).
func (h *MismatchHandlers) detectorRuns(w http.ResponseWriter) bool {
	if h.Detector == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "detector_not_running", "the detector service is not running in this process")
	}
	return h.Detector != nil
}

// note serves POST /v1/mismatches/{alert_id}/notes: a note in the audit
// trail (action note), in any state; nothing else changes and nothing is
// published.
func (h *MismatchHandlers) note(w http.ResponseWriter, r *http.Request) {
	if h.elsewhere(w, r, r.PathValue("alert_id")) {
		return
	}
	var req NoteRequest
	if !readStrict(w, r, &req, `{"note": "...", "by": "..."}`) {
		return
	}
	if strings.TrimSpace(req.Note) == "" {
		httpjson.WriteError(w, http.StatusBadRequest, "note_required", "note: write the note (it is kept in the audit trail)")
		return
	}
	if !checkAudit(w, req.By, req.Note) {
		return
	}
	if !h.detectorRuns(w) {
		return
	}
	m, err := h.Detector.Note(r.PathValue("alert_id"), auditBy(r, req.By), req.Note)
	h.reply(w, r, m, err)
}
