package api

import (
	"net/http"
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
	"github.com/driftwatch/driftwatch/services/replay"
)

// SystemView is one system's current state of an order.
type SystemView struct {
	System    string `json:"system"`
	Platform  string `json:"platform"`
	Role      string `json:"role"`
	Record    bool   `json:"record,omitempty"`
	HasRecord bool   `json:"has_record"`
	// The latest status the system sent (by occurred_at), in its own words.
	Status         string `json:"status,omitempty"`
	StatusField    string `json:"status_field,omitempty"`
	Unmapped       bool   `json:"unmapped,omitempty"`
	Canonical      string `json:"canonical,omitempty"` // fulfilment state
	Payment        string `json:"payment,omitempty"`   // payment state
	OccurredAt     string `json:"occurred_at,omitempty"`
	ReceivedAt     string `json:"received_at,omitempty"`
	Seq            uint64 `json:"seq,omitempty"`
	EventID        string `json:"event_id,omitempty"`
	Actor          string `json:"actor,omitempty"`
	ClockSkew      bool   `json:"clock_skew,omitempty"`
	MappingVersion int    `json:"mapping_version,omitempty"`
	ExternalRef    string `json:"external_ref,omitempty"`
	Amount         string `json:"amount,omitempty"`
	Currency       string `json:"currency,omitempty"`
	// Fulfilment and PaymentFacet say which event set each dimension.
	Fulfilment   *FacetView `json:"fulfilment,omitempty"`
	PaymentFacet *FacetView `json:"payment_facet,omitempty"`
	Events       uint64     `json:"events"`
	// Acknowledged lists the other systems' events this system acknowledged.
	Acknowledged []replay.AckView `json:"acknowledged,omitempty"`
}

// FacetView is the event behind one dimension of a system's state.
type FacetView struct {
	Status      string `json:"status"`
	StatusField string `json:"status_field"`
	State       string `json:"state"`
	OccurredAt  string `json:"occurred_at"`
	ReceivedAt  string `json:"received_at"`
	Seq         uint64 `json:"seq"`
	EventID     string `json:"event_id"`
	Actor       string `json:"actor"`
}

// OrderView is GET /v1/orders/{order_id}.
type OrderView struct {
	OrderID        string       `json:"order_id"`
	AsOf           string       `json:"as_of,omitempty"`
	Systems        []SystemView `json:"systems"`
	OpenMismatches []any        `json:"open_mismatches"`
}

// FormatTime renders Unix nanoseconds as RFC 3339 UTC with milliseconds.
func FormatTime(nanos int64) string { return projections.FormatTime(nanos) }

func stateName(s canonical.State) string { return s.String() }

func facetView(f *projections.Facet, payment bool) *FacetView {
	if !f.Set() {
		return nil
	}
	v := &FacetView{Status: f.Raw, StatusField: f.Field, State: f.State.String(), OccurredAt: f.OccurredAt,
		ReceivedAt: FormatTime(f.Received), Seq: f.Seq, EventID: f.EventID, Actor: f.Actor}
	if payment {
		v.State = f.Payment.String()
	}
	return v
}

// BuildOrderView lays out every configured system's row side by side, in
// configuration order; systems without a row show has_record false.
func BuildOrderView(cfg *config.Config, orderID string, rows []projections.Row, acks []projections.AckLink) OrderView {
	byID := make(map[string]*projections.Row, len(rows))
	for i := range rows {
		byID[rows[i].System] = &rows[i]
	}
	v := OrderView{OrderID: orderID, Systems: make([]SystemView, 0, len(cfg.Systems)), OpenMismatches: []any{}}
	for _, s := range cfg.Systems {
		sv := SystemView{System: s.ID, Platform: s.Platform, Role: s.Role, Record: s.Record}
		if r, ok := byID[s.ID]; ok && r.HasRecord() {
			sv.HasRecord = true
			sv.Status, sv.StatusField, sv.Unmapped = r.Last.Raw, r.Last.Field, r.Last.Unmapped
			if st := r.State(); st != canonical.None {
				sv.Canonical = stateName(st)
			}
			if p := r.PaymentState(); p != canonical.NoPayment {
				sv.Payment = p.String()
			}
			sv.OccurredAt, sv.ReceivedAt = r.Last.OccurredAt, FormatTime(r.Last.Received)
			sv.Seq, sv.EventID, sv.Actor, sv.ClockSkew = r.Last.Seq, r.Last.EventID, r.Last.Actor, r.Last.ClockSkew
			sv.MappingVersion, sv.ExternalRef = r.Last.MappingVer, r.Last.ExternalRef
			sv.Amount, sv.Currency = r.Amount, r.Currency
			sv.Fulfilment = facetView(&r.Fulfilment, false)
			sv.PaymentFacet = facetView(&r.Payment, true)
			sv.Events = r.Events
		} else if ok {
			sv.Events = r.Events
		}
		for _, a := range acks {
			if a.AckSystem == s.ID {
				sv.Acknowledged = append(sv.Acknowledged, replay.AckViewOf(a))
			}
		}
		v.Systems = append(v.Systems, sv)
	}
	return v
}

// OrderHandlers serves the order view, the timeline and the annotated
// timeline (replay) from the store.
type OrderHandlers struct {
	Config *config.Config
	Store  *projections.Store
	// Forward, when set, serves a request about an order another
	// instance owns on that instance (services/cluster) and reports
	// whether it did; nil: every order is served here.
	Forward Forwarder
}

// Forwarder serves r, about orderID, on the instance that owns the order,
// and reports whether it did (false: this instance owns it).
type Forwarder func(w http.ResponseWriter, r *http.Request, orderID string) bool

// forwarded reports whether h.Forward served r.
func (h *OrderHandlers) forwarded(w http.ResponseWriter, r *http.Request, orderID string) bool {
	return h.Forward != nil && h.Forward(w, r, orderID)
}

// Register adds the routes.
func (h *OrderHandlers) Register(s *Server) {
	s.HandleFunc("GET /v1/orders/{order_id}", h.order)
	s.HandleFunc("GET /v1/orders/{order_id}/timeline", h.timeline)
	s.HandleFunc("GET /v1/orders/{order_id}/replay", h.replay)
}

func (h *OrderHandlers) order(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("order_id")
	if h.forwarded(w, r, id) {
		return
	}
	var rows []projections.Row
	var err error
	asOf := r.URL.Query().Get("as_of")
	if asOf != "" {
		t, perr := time.Parse(time.RFC3339Nano, asOf)
		if perr != nil {
			httpjson.WriteError(w, http.StatusBadRequest, "bad_as_of", "as_of: want an RFC 3339 timestamp with an offset, e.g. 2026-11-27T10:04:05Z")
			return
		}
		rows, err = h.Store.RowsAsOf(id, t.UnixNano())
		if err == nil && len(rows) == 0 {
			if all, _ := h.Store.Rows(id); len(all) > 0 {
				httpjson.WriteError(w, http.StatusNotFound, "order_not_found", "no system had sent an event for order "+id+" by "+asOf)
				return
			}
		}
	} else {
		rows, err = h.Store.Rows(id)
	}
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	if len(rows) == 0 {
		httpjson.WriteError(w, http.StatusNotFound, "order_not_found", "no system has sent an event for order "+id)
		return
	}
	acks, err := h.Store.Acks(id)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	view := BuildOrderView(h.Config, id, rows, acks)
	view.AsOf = asOf
	open, err := detector.OpenForOrder(h.Store, id)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	for _, m := range open {
		view.OpenMismatches = append(view.OpenMismatches, m)
	}
	httpjson.Write(w, http.StatusOK, view)
}

func (h *OrderHandlers) timeline(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("order_id")
	if h.forwarded(w, r, id) {
		return
	}
	if entries, acks, ok := LoadTimeline(w, h.Store, id); ok {
		httpjson.Write(w, http.StatusOK, replay.BuildTimeline(id, entries, acks))
	}
}

// replay is GET /v1/orders/{order_id}/replay: the annotated timeline.
func (h *OrderHandlers) replay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("order_id")
	if h.forwarded(w, r, id) {
		return
	}
	if entries, acks, ok := LoadTimeline(w, h.Store, id); ok {
		httpjson.Write(w, http.StatusOK, replay.Annotate(h.Config, id, entries, acks, time.Now()))
	}
}

// LoadTimeline reads an order's index entries and acknowledgements; on a
// store error or an unknown order it writes the error reply and returns
// false.
func LoadTimeline(w http.ResponseWriter, store *projections.Store, id string) ([]projections.Entry, []projections.AckLink, bool) {
	entries, err := store.Timeline(id)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return nil, nil, false
	}
	if len(entries) == 0 {
		httpjson.WriteError(w, http.StatusNotFound, "order_not_found", "no event in the log for order "+id)
		return nil, nil, false
	}
	acks, err := store.Acks(id)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return nil, nil, false
	}
	return entries, acks, true
}
