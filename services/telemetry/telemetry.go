// Package telemetry builds driftwatch's OpenTelemetry meter provider,
// exported on /metrics in the Prometheus text format, and its tracing.
// Each component makes its own instruments from the meter (detector,
// gate and reconcile each have a NewMetrics); a
// component given no meter records nothing, so tests and tools can leave
// it out. The events counter is shared by ingest and the projector
// (EventCounter).
package telemetry

import (
	"context"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics holds the meter provider and the Prometheus registry it exports
// to. Each component makes its own instruments from Meter (its NewMetrics).
type Metrics struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
	meter    metric.Meter
}

// LatencyBuckets fit request latencies of a fraction of a millisecond up to
// a second (the gate); DetectBuckets fit times to detect from tens of
// milliseconds up to a day.
var (
	LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	DetectBuckets  = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}
)

// New builds the meter provider and its Prometheus exporter.
func New() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	res, err := Resource(context.Background())
	if err != nil {
		return nil, err
	}
	m := &Metrics{registry: reg}
	m.provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	m.meter = m.provider.Meter("driftwatch")
	return m, nil
}

// Handler serves /metrics: the Prometheus text format, or OpenMetrics
// when the scraper asks for it (Accept: application/openmetrics-text).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}

// Meter is the meter components make their instruments from; nil for a
// nil Metrics (a component given no meter records nothing).
func (m *Metrics) Meter() metric.Meter {
	if m == nil {
		return nil
	}
	return m.meter
}

// EventCounter counts events received at one stage (ingest, projector)
// per system and outcome, in driftwatch.events.in: ingest and the
// projector each make theirs, and both record into the one counter (the
// same name and description give the same instrument). A nil
// *EventCounter records nothing.
type EventCounter struct {
	counter metric.Int64Counter
	stage   attribute.KeyValue
	systems map[string]bool
}

// UnknownSystem is the system label of events whose system is not
// configured: labels come only from the configuration, so junk system
// names cannot make new series.
const UnknownSystem = "_unknown"

// NewEventCounter makes the counter of a stage from meter (nil: none),
// labelled with the configured systems (any other is UnknownSystem). Each
// system's series of each of the stage's outcomes starts at 0, so every
// series is there from the first scrape.
func NewEventCounter(meter metric.Meter, stage string, systems, outcomes []string) (*EventCounter, error) {
	if meter == nil {
		return nil, nil
	}
	c, err := meter.Int64Counter("driftwatch.events.in", metric.WithDescription("Events received, per system and outcome (accepted, duplicate, rejected at ingest; applied, late, acked, duplicate, rejected by the projector)"))
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(systems))
	for _, s := range systems {
		known[s] = true
	}
	ec := &EventCounter{counter: c, stage: attribute.String("stage", stage), systems: known}
	for _, s := range append(slices.Clone(systems), UnknownSystem) {
		for _, o := range outcomes {
			c.Add(context.Background(), 0, metric.WithAttributes(ec.stage, attribute.String("system", s), attribute.String("outcome", o)))
		}
	}
	return ec, nil
}

// Add counts n events of system with an outcome.
func (c *EventCounter) Add(system, outcome string, n int64) {
	if c == nil || n == 0 {
		return
	}
	if !c.systems[system] {
		system = UnknownSystem
	}
	c.counter.Add(context.Background(), n, metric.WithAttributes(c.stage, attribute.String("system", system), attribute.String("outcome", outcome)))
}

// Gauge is one observed value with its labels.
type Gauge struct {
	Value  int64
	Labels map[string]string
}

// ObserveGaugeSet registers several observable gauges (name -> description)
// filled by one call of fn per scrape, for figures that come from one
// costly read (the stream and consumer status).
func (m *Metrics) ObserveGaugeSet(gauges map[string]string, fn func(ctx context.Context) map[string][]Gauge) error {
	if m == nil {
		return nil
	}
	return ObserveGaugeSet(m.meter, gauges, fn)
}

// ObserveGaugeSet registers on meter several observable gauges (name ->
// description) filled by one call of fn per collection.
func ObserveGaugeSet(meter metric.Meter, gauges map[string]string, fn func(ctx context.Context) map[string][]Gauge) error {
	instruments := make(map[string]metric.Int64ObservableGauge, len(gauges))
	list := make([]metric.Observable, 0, len(gauges))
	for name, desc := range gauges {
		g, err := meter.Int64ObservableGauge(name, metric.WithDescription(desc))
		if err != nil {
			return err
		}
		instruments[name] = g
		list = append(list, g)
	}
	_, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		for name, values := range fn(ctx) {
			g, ok := instruments[name]
			if !ok {
				continue
			}
			for _, v := range values {
				attrs := make([]attribute.KeyValue, 0, len(v.Labels))
				for k, val := range v.Labels {
					attrs = append(attrs, attribute.String(k, val))
				}
				o.ObserveInt64(g, v.Value, metric.WithAttributes(attrs...))
			}
		}
		return nil
	}, list...)
	return err
}
