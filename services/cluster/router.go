package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/gate"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// ServiceName is the micro service every instance runs (`nats micro ls`
// lists one per instance, its description saying which partitions it
// owns). Its endpoints answer on driftwatch.instance.<name>.<endpoint>:
// "partitions" (what it owns), "http" (a request about one of its orders
// that another instance received) and "validate" (a gate request about
// one of its orders).
const ServiceName = "driftwatch-instance"

// InstancePrefix begins the subjects of the instances' endpoints.
const InstancePrefix = "driftwatch.instance."

// InstanceSubject is the subject of an instance's endpoint.
func InstanceSubject(instance, endpoint string) string {
	return InstancePrefix + instance + "." + endpoint
}

// forwardTimeout bounds a request forwarded to the owner.
const forwardTimeout = 10 * time.Second

// codeNotOwner is the error code of an instance asked about an order it
// does not own (any more): the asker looks the owner up again.
const codeNotOwner = "not_owner"

// forwardedRequest is an HTTP request sent to the owner of its order.
type forwardedRequest struct {
	Method      string      `json:"method"`
	URI         string      `json:"uri"`
	Accept      string      `json:"accept,omitempty"`
	ContentType string      `json:"content_type,omitempty"`
	Body        []byte      `json:"body,omitempty"`
	Caller      *api.Caller `json:"caller,omitempty"` // the token the request came with
}

// forwarding is r as the owner receives it.
func forwarding(r *http.Request, uri string, body []byte) []byte {
	f := forwardedRequest{Method: r.Method, URI: uri, Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type"), Body: body}
	if c, ok := api.CallerOf(r.Context()); ok {
		f.Caller = &c
	}
	data, _ := json.Marshal(f)
	return data
}

// forwardedReply is the owner's response.
type forwardedReply struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body"`
}

// servers are what the endpoints serve with, set once the app has them.
type servers struct {
	http atomic.Pointer[api.Server]
	gate atomic.Pointer[gate.Gate]
}

// Serve gives the member the HTTP API and the gate to answer forwarded
// requests with.
func (m *Member) Serve(h *api.Server, g *gate.Gate) {
	if h != nil {
		m.srv.http.Store(h)
	}
	if g != nil {
		m.srv.gate.Store(g)
	}
}

// announce (re)starts the micro service with a description of what this
// instance owns now: `nats micro ls` shows it.
func (m *Member) announce() {
	nc := m.opts.JS.Conn()
	owned := m.opts.Owned.Owned()
	desc := fmt.Sprintf("driftwatch instance %s: owns %d of %d partitions %s", m.opts.Instance, len(owned), m.opts.Partitions, ranges(owned))
	svc, err := micro.AddService(nc, micro.Config{
		Name: ServiceName, Version: "1.0.0", Description: desc,
		Metadata:           map[string]string{"instance": m.opts.Instance, "partitions": strconv.Itoa(m.opts.Partitions), "owned": ranges(owned)},
		QueueGroupDisabled: true,
	})
	if err != nil {
		m.log.Warn().Err(err).Msg("cluster: micro service not announced")
		return
	}
	g := svc.AddGroup(InstancePrefix + m.opts.Instance)
	for name, h := range map[string]micro.HandlerFunc{
		"partitions": m.servePartitions, "http": m.serveHTTP, "validate": m.serveValidate,
	} {
		if err := g.AddEndpoint(name, h); err != nil {
			m.log.Warn().Err(err).Str("endpoint", name).Msg("cluster: endpoint not added")
		}
	}
	m.mu.Lock()
	old := m.svc
	m.svc = svc
	m.mu.Unlock()
	if old != nil {
		_ = old.Stop()
	}
}

func (m *Member) servePartitions(req micro.Request) {
	_ = req.RespondJSON(map[string]any{"instance": m.opts.Instance, "partitions": m.opts.Partitions, "owned": m.opts.Owned.Owned()})
}

// serveHTTP answers a forwarded HTTP request through the API's routes.
func (m *Member) serveHTTP(req micro.Request) {
	var in forwardedRequest
	h := m.srv.http.Load()
	if err := json.Unmarshal(req.Data(), &in); err != nil || h == nil {
		_ = req.Error("503", "this instance serves no HTTP API", nil)
		return
	}
	r, err := http.NewRequestWithContext(context.Background(), in.Method, in.URI, bytes.NewReader(in.Body))
	if err != nil {
		_ = req.Error("400", err.Error(), nil)
		return
	}
	if in.Accept != "" {
		r.Header.Set("Accept", in.Accept)
	}
	if in.ContentType != "" {
		r.Header.Set("Content-Type", in.ContentType)
	}
	w := api.NewBufferedResponse()
	h.ServeForwarded(w, r, in.Caller)
	_ = req.RespondJSON(forwardedReply{Status: w.Status(), ContentType: w.Header().Get("Content-Type"), Body: w.Body()})
}

// serveValidate answers a gate request about one of this instance's
// orders.
func (m *Member) serveValidate(req micro.Request) {
	g := m.srv.gate.Load()
	if g == nil {
		_ = req.Error("503", "this instance runs no gate", nil)
		return
	}
	var probe struct {
		Event struct {
			OrderID string `json:"order_id"`
		} `json:"event"`
	}
	_ = json.Unmarshal(req.Data(), &probe)
	if !m.opts.Owned.Owns(probe.Event.OrderID) {
		body, _ := json.Marshal(httpjson.ErrorBody{Error: "not this instance's order", Code: codeNotOwner})
		_ = req.Error("503", "not this instance's order", body)
		return
	}
	reply, err := g.ValidateHere(req.Data())
	gate.Respond(req, reply, err)
}

// ForwardHTTP serves r on the instance that owns orderID and reports
// whether it did (false: the order is this instance's). An order whose
// partition has no owner at the moment (an instance failed and its lease
// has not expired yet) gets 503 with Retry-After.
func (m *Member) ForwardHTTP(w http.ResponseWriter, r *http.Request, orderID string) bool {
	if m.opts.Owned.Owns(orderID) {
		return false
	}
	p := events.Partition(orderID, m.opts.Partitions)
	if api.IsForwarded(r.Context()) {
		httpjson.WriteError(w, http.StatusServiceUnavailable, codeNotOwner, fmt.Sprintf("partition %d (order %s) is not instance %s's", p, orderID, m.opts.Instance))
		return true
	}
	moving := func() bool {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(m.opts.Lease/time.Second, 1))))
		httpjson.WriteError(w, http.StatusServiceUnavailable, "no_owner", fmt.Sprintf("partition %d (order %s) is moving between instances; retry in a few seconds", p, orderID))
		return true
	}
	data := forwarding(r, r.URL.RequestURI(), nil)
	for attempt := range 2 {
		owner, err := m.ownerOf(r.Context(), p, attempt > 0)
		if err != nil || owner == "" || owner == m.opts.Instance {
			return moving()
		}
		msg, err := m.opts.JS.Conn().Request(InstanceSubject(owner, "http"), data, forwardTimeout)
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) {
				continue // the owner just went away: look again
			}
			httpjson.WriteError(w, http.StatusBadGateway, "owner_unreachable", fmt.Sprintf("instance %s (owner of partition %d): %v", owner, p, err))
			return true
		}
		rep, err := decodeReply(msg)
		if err != nil {
			httpjson.WriteError(w, http.StatusBadGateway, "owner_error", fmt.Sprintf("instance %s (owner of partition %d): %v", owner, p, err))
			return true
		}
		if rep.Status == http.StatusServiceUnavailable && bytes.Contains(rep.Body, []byte(`"`+codeNotOwner+`"`)) {
			continue // it gave the partition up since: look again
		}
		rep.write(w, owner)
		return true
	}
	return moving()
}

// decodeReply reads an instance's answer to a forwarded request.
func decodeReply(msg *nats.Msg) (forwardedReply, error) {
	var rep forwardedReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Status == 0 {
		return rep, fmt.Errorf("no reply: %s", msg.Header.Get(micro.ErrorHeader))
	}
	return rep, nil
}

// write answers with the reply instance gave.
func (rep forwardedReply) write(w http.ResponseWriter, instance string) {
	if rep.ContentType != "" {
		w.Header().Set("Content-Type", rep.ContentType)
	}
	w.Header().Set("Driftwatch-Instance", instance)
	w.WriteHeader(rep.Status)
	_, _ = w.Write(rep.Body)
}

// Gather sends a GET of uri to every live instance, this one included,
// and returns the bodies of their 200 replies (api.Cluster). An instance
// that fails to answer fails the whole: a list without one instance's
// mismatches would look complete.
func (m *Member) Gather(r *http.Request, uri string) ([][]byte, error) {
	m.mu.Lock()
	live := slices.Clone(m.instances)
	m.mu.Unlock()
	data := forwarding(r, uri, nil)
	var out [][]byte
	for _, in := range live {
		ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
		msg, err := m.opts.JS.Conn().RequestWithContext(ctx, InstanceSubject(in.Name, "http"), data)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.Name, err)
		}
		rep, err := decodeReply(msg)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.Name, err)
		}
		if rep.Status != http.StatusOK {
			return nil, fmt.Errorf("instance %s answered %d: %s", in.Name, rep.Status, rep.Body)
		}
		out = append(out, rep.Body)
	}
	return out, nil
}

// ForwardAny sends r to the other live instances in turn and writes the
// first reply that is not a 404 (api.Cluster): the instance that owns
// the mismatch answers it.
func (m *Member) ForwardAny(w http.ResponseWriter, r *http.Request, body []byte) bool {
	m.mu.Lock()
	live := slices.Clone(m.instances)
	m.mu.Unlock()
	data := forwarding(r, r.URL.RequestURI(), body)
	for _, in := range live {
		if in.Name == m.opts.Instance {
			continue
		}
		ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
		msg, err := m.opts.JS.Conn().RequestWithContext(ctx, InstanceSubject(in.Name, "http"), data)
		cancel()
		if err != nil {
			continue // gone: its partitions are moving; the next may hold it
		}
		if rep, err := decodeReply(msg); err == nil && rep.Status != http.StatusNotFound {
			rep.write(w, in.Name)
			return true
		}
	}
	return false
}

// RouteValidate sends a gate request about another instance's order to
// it (gate.Router).
func (m *Member) RouteValidate(orderID string, body []byte) (*events.ValidateReply, bool, error) {
	if m.opts.Owned.Owns(orderID) {
		return nil, false, nil
	}
	p := events.Partition(orderID, m.opts.Partitions)
	for attempt := range 2 {
		owner, err := m.ownerOf(context.Background(), p, attempt > 0)
		if err != nil || owner == "" || owner == m.opts.Instance {
			return nil, true, fmt.Errorf("partition %d (order %s) is moving between instances; retry in a few seconds", p, orderID)
		}
		msg, err := m.opts.JS.Conn().Request(InstanceSubject(owner, "validate"), body, forwardTimeout)
		if errors.Is(err, nats.ErrNoResponders) {
			continue
		}
		if err != nil {
			return nil, true, fmt.Errorf("instance %s (owner of partition %d): %w", owner, p, err)
		}
		if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
			var eb httpjson.ErrorBody
			_ = json.Unmarshal(msg.Data, &eb)
			switch {
			case eb.Code == codeNotOwner:
				continue
			case code == "400":
				return nil, true, &gate.RequestError{Code: eb.Code, Message: eb.Error}
			default:
				return nil, true, fmt.Errorf("instance %s: %s", owner, msg.Header.Get(micro.ErrorHeader))
			}
		}
		var reply events.ValidateReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil {
			return nil, true, fmt.Errorf("instance %s: %w", owner, err)
		}
		return &reply, true, nil
	}
	return nil, true, fmt.Errorf("partition %d (order %s) is moving between instances; retry in a few seconds", p, orderID)
}

// ownerOf names partition p's owner: from the last round's view, or
// fresh from the bucket.
func (m *Member) ownerOf(ctx context.Context, p int, fresh bool) (string, error) {
	if !fresh {
		m.mu.Lock()
		owner := m.owners[p]
		m.mu.Unlock()
		if owner != "" {
			return owner, nil
		}
	}
	e, err := m.kv.Get(ctx, partitionKey(p))
	if err != nil {
		return "", err
	}
	owner := string(e.Value())
	m.mu.Lock()
	m.owners[p] = owner
	m.mu.Unlock()
	return owner, nil
}

// ranges writes partitions as "0-3,6".
func ranges(ps []int) string {
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ps[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(ps[j]))
		}
		i = j + 1
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
