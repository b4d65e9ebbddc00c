package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// Recorder stores flagged mismatches (the detector).
type Recorder interface {
	Record(ms []*detector.Mismatch) error
}

// Options configures the gate.
type Options struct {
	Conn     *nats.Conn
	Config   *config.Config
	Store    *projections.Store
	Recorder Recorder // nil: flags are answered but not recorded
	Metrics  *Metrics
	Logger   zerolog.Logger
	Now      func() time.Time
	// Router, when set, sends a request about an order another instance
	// owns to that instance (services/cluster); nil: every order is
	// judged here.
	Router Router
	// Instance names this instance in the micro service's metadata.
	Instance string
}

// Router sends a gate request to the instance that owns its order.
type Router interface {
	// RouteValidate returns the owner's answer to body, or handled false
	// when this instance owns orderID and judges it itself.
	RouteValidate(orderID string, body []byte) (reply *events.ValidateReply, handled bool, err error)
}

// Gate serves the boundary gate.
type Gate struct {
	opts    Options
	decider *Decider
	svcs    []micro.Service
	flags   chan *detector.Mismatch
	systems []string // configured, for the unknown-target error
}

// ServiceName and EndpointName are what `nats micro ls` shows.
const (
	ServiceName  = "driftwatch"
	EndpointName = "validate"
	// Version of the gate's request/reply contract.
	Version = "1.0.0"
)

// New returns a gate; Start serves it.
func New(opts Options) (*Gate, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Gate{opts: opts, decider: NewDecider(opts.Config), flags: make(chan *detector.Mismatch, 10000)}
	for _, s := range opts.Config.Systems {
		g.systems = append(g.systems, s.ID)
	}
	return g, nil
}

// Validate reports every missing option, each with its field (Recorder
// may be nil: flags are then answered but not recorded).
func (o *Options) Validate() error {
	var errs []error
	if o.Conn == nil {
		errs = append(errs, errors.New("gate: Options.Conn is required"))
	}
	if o.Config == nil {
		errs = append(errs, errors.New("gate: Options.Config is required"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("gate: Options.Store is required"))
	}
	return errors.Join(errs...)
}

// Instances of the micro service run side by side in one process (one
// subscription each, in the service's queue group): requests are answered
// in parallel, and a slow one (a cold read) does not hold up the others.
// Each instance keeps its own stats, as `nats micro info` shows them.
const Instances = 2

// Start adds the micro service instances on driftwatch.validate; Run
// records their flags and stops them.
func (g *Gate) Start() error {
	for i := 0; i < Instances; i++ {
		if err := g.addInstance(); err != nil {
			for _, s := range g.svcs {
				_ = s.Stop()
			}
			return err
		}
	}
	return nil
}

func (g *Gate) addInstance() error {
	var meta map[string]string
	if g.opts.Instance != "" {
		meta = map[string]string{"instance": g.opts.Instance}
	}
	svc, err := micro.AddService(g.opts.Conn, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "driftwatch boundary gate: validates a status against the target's current state before it is written",
		Metadata:    meta,
	})
	if err != nil {
		return fmt.Errorf("gate: add micro service: %w", err)
	}
	if err := svc.AddEndpoint(EndpointName, micro.HandlerFunc(g.handle), micro.WithEndpointSubject(events.ValidateSubject),
		micro.WithEndpointMetadata(map[string]string{"format": "application/json", "request": "{\"event\": <envelope>, \"target\": \"<system>\"}"}),
		micro.WithEndpointPendingLimits(100000, 256<<20)); err != nil {
		_ = svc.Stop()
		return fmt.Errorf("gate: add endpoint: %w", err)
	}
	g.svcs = append(g.svcs, svc)
	return nil
}

// Run records the flags the gate raises, in batches, until ctx ends; then
// it stops the micro service instances (no request is answered after) and
// records the flags still queued before it returns.
func (g *Gate) Run(ctx context.Context) error {
	batch := make([]*detector.Mismatch, 0, 256)
	for {
		batch = batch[:0]
		select {
		case m := <-g.flags:
			batch = append(batch, m)
		case <-ctx.Done():
			for _, s := range g.svcs {
				_ = s.Stop()
			}
			for {
				select {
				case m := <-g.flags:
					batch = append(batch, m)
				default:
					g.record(batch)
					return nil
				}
			}
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case m := <-g.flags:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		g.record(batch)
	}
}

// Services exposes the micro service instances (stats in tests).
func (g *Gate) Services() []micro.Service { return g.svcs }

// RequestError is a malformed request: a 400, never a flag.
type RequestError struct {
	Code, Message string
}

func (e *RequestError) Error() string { return e.Message }

// Validate decides one request body: here, or, for an order another
// instance owns, there (Options.Router).
func (g *Gate) Validate(body []byte) (*events.ValidateReply, error) {
	return g.validate(body, g.opts.Router)
}

// ValidateHere decides one request body on this instance, whoever owns
// the order: the owner's side of a routed request.
func (g *Gate) ValidateHere(body []byte) (*events.ValidateReply, error) {
	return g.validate(body, nil)
}

func (g *Gate) validate(body []byte, router Router) (*events.ValidateReply, error) {
	start := time.Now()
	var req events.ValidateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &RequestError{"bad_request", "the request must be {\"event\": <envelope>, \"target\": \"<system>\"}: " + err.Error()}
	}
	if len(req.Event) == 0 || string(req.Event) == "null" {
		return nil, &RequestError{"missing_event", "event: is required"}
	}
	ev, err := events.CheckZoned(req.Event, nil, g.opts.Config.Zones())
	if err != nil {
		var ve *events.ValidationError
		if errors.As(err, &ve) {
			return nil, &RequestError{ve.Code(), err.Error()}
		}
		return nil, &RequestError{"bad_event", err.Error()}
	}
	target := req.Target
	if target == "" {
		target = g.opts.Config.RecordSystem().ID
	}
	if !g.opts.Config.Known(target) {
		// Never judged against, nor counted under, a name nobody configured.
		return nil, &RequestError{"unknown_target", fmt.Sprintf("target: %q is not a configured system (known: %s)", target, strings.Join(g.systems, ", "))}
	}
	if router != nil {
		if reply, handled, err := router.RouteValidate(ev.OrderID, body); handled {
			return reply, err
		}
	}
	var row *projections.Row
	if r, err := g.opts.Store.Row(ev.OrderID, target); err == nil {
		row = &r
	} else if !errors.Is(err, projections.ErrNotFound) {
		return nil, fmt.Errorf("read %s's projection of %s: %w", target, ev.OrderID, err)
	}
	v := g.decider.Decide(&ev, target, row, g.opts.Now())
	if v.Mismatch != nil {
		g.flags <- v.Mismatch // when the queue is full, wait rather than lose a flag
	}
	g.opts.Metrics.decided(target, v.Reply.Decision, time.Since(start))
	return &v.Reply, nil
}

func (g *Gate) handle(req micro.Request) {
	reply, err := g.Validate(req.Data())
	Respond(req, reply, err)
}

// Respond answers a gate request with reply, or with err: a micro error
// 400 for a malformed request (a *RequestError), else 500, its body the
// API's error shape.
func Respond(req micro.Request, reply *events.ValidateReply, err error) {
	if err != nil {
		code := "500"
		var re *RequestError
		if errors.As(err, &re) {
			code = "400"
		}
		body, _ := json.Marshal(httpjson.ErrorBody{Error: err.Error(), Code: errCode(err)})
		_ = req.Error(code, err.Error(), body)
		return
	}
	_ = req.RespondJSON(reply)
}

func errCode(err error) string {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Code
	}
	return "internal"
}

// ServeHTTP serves POST /v1/validate.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2*events.MaxEventSize))
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	reply, err := g.Validate(body)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			httpjson.WriteError(w, http.StatusBadRequest, re.Code, re.Message)
			return
		}
		httpjson.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, reply)
}

func (g *Gate) record(batch []*detector.Mismatch) {
	if len(batch) == 0 {
		return
	}
	if g.opts.Recorder == nil {
		g.opts.Logger.Warn().Int("flags", len(batch)).Msg("gate flags not recorded: the detector is not running in this process")
		return
	}
	for attempt := 0; ; attempt++ {
		err := g.opts.Recorder.Record(batch)
		if err == nil {
			return
		}
		g.opts.Logger.Error().Err(err).Int("flags", len(batch)).Msg("recording gate flags failed; retrying")
		if attempt >= 5 {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}
