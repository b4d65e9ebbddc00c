// Package telemetry builds driftwatch's OpenTelemetry metrics, exported on
// /metrics in the Prometheus text format, and the instruments every service
// records into. Services get a *Metrics and call its methods; a nil *Metrics
// records nothing, so tests and tools can leave it out.
package telemetry

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics holds the meter provider, the Prometheus handler and the
// instruments.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
	meter    metric.Meter

	eventsIn         metric.Int64Counter
	detectAfterDL    metric.Float64Histogram
	detectAfterOnset metric.Float64Histogram
	detectSkewed     metric.Int64Counter
	alertsPublished  metric.Int64Counter
	gateLatency      metric.Float64Histogram
	gateDecisions    metric.Int64Counter
	reconcileDur     metric.Float64Histogram

	mu   sync.Mutex
	open map[[3]string]int64 // pattern, severity, system -> open mismatches
}

var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
var detectBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}

// New builds the metrics.
func New() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	m := &Metrics{registry: reg, open: map[[3]string]int64{}}
	m.provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp),
		sdkmetric.WithView(
			sdkmetric.NewView(sdkmetric.Instrument{Name: "driftwatch.detect.after_*"}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: detectBuckets}}),
			sdkmetric.NewView(sdkmetric.Instrument{Name: "driftwatch.gate.latency"}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: latencyBuckets}}),
		))
	m.meter = m.provider.Meter("driftwatch")
	if m.eventsIn, err = m.meter.Int64Counter("driftwatch.events.in", metric.WithDescription("Events received, per system and outcome (accepted, duplicate, rejected at ingest; applied, late, acked, duplicate, rejected by the projector)")); err != nil {
		return nil, err
	}
	if m.detectAfterDL, err = m.meter.Float64Histogram("driftwatch.detect.after_deadline", metric.WithUnit("s"), metric.WithDescription("Time from an expectation's deadline to the alert (detected_at - deadline)")); err != nil {
		return nil, err
	}
	if m.detectAfterOnset, err = m.meter.Float64Histogram("driftwatch.detect.after_onset", metric.WithUnit("s"), metric.WithDescription("Time to detect: detected_at - onset_at, the onset taken no later than the source event's received_at; skewed alerts are counted in driftwatch.detect.skewed instead")); err != nil {
		return nil, err
	}
	if m.detectSkewed, err = m.meter.Int64Counter("driftwatch.detect.skewed", metric.WithDescription("Opened alerts whose onset is after their detection even bounded by the source event's received_at: left out of the time to detect")); err != nil {
		return nil, err
	}
	if m.alertsPublished, err = m.meter.Int64Counter("driftwatch.alerts.published", metric.WithDescription("Alert records published, per pattern, severity and state")); err != nil {
		return nil, err
	}
	if m.gateLatency, err = m.meter.Float64Histogram("driftwatch.gate.latency", metric.WithUnit("s"), metric.WithDescription("Boundary gate decision latency")); err != nil {
		return nil, err
	}
	if m.gateDecisions, err = m.meter.Int64Counter("driftwatch.gate.decisions", metric.WithDescription("Boundary gate decisions, per target and decision")); err != nil {
		return nil, err
	}
	if m.reconcileDur, err = m.meter.Float64Histogram("driftwatch.reconcile.duration", metric.WithUnit("s"), metric.WithDescription("Duration of reconciliation sweeps")); err != nil {
		return nil, err
	}
	openGauge, err := m.meter.Int64ObservableGauge("driftwatch.mismatches.open", metric.WithDescription("Open mismatches per pattern, severity and source system"))
	if err != nil {
		return nil, err
	}
	if _, err := m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		m.mu.Lock()
		for k, v := range m.open {
			o.ObserveInt64(openGauge, v, metric.WithAttributes(attribute.String("pattern", k[0]), attribute.String("severity", k[1]), attribute.String("system", k[2])))
		}
		m.mu.Unlock()
		return nil
	}, openGauge); err != nil {
		return nil, err
	}
	return m, nil
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}

// Meter is the meter for extra instruments.
func (m *Metrics) Meter() metric.Meter { return m.meter }

// EventIn counts n events of system with an outcome at a stage (ingest or
// projector).
func (m *Metrics) EventIn(stage, system, outcome string, n int64) {
	if m == nil || n == 0 {
		return
	}
	m.eventsIn.Add(context.Background(), n, metric.WithAttributes(attribute.String("stage", stage), attribute.String("system", system), attribute.String("outcome", outcome)))
}

// Detection is how a newly opened alert counts in time to detect (the
// caller applies the detector's rule, detector.TimeToDetect).
type Detection uint8

// Detections.
const (
	NoOnset  Detection = iota // no onset: not counted
	Measured                  // the time to detect is recorded
	Skewed                    // counted in driftwatch.detect.skewed, not in the histogram
)

// Detected records a newly opened alert: its time after the deadline (when
// it has one) and its time to detect ttd as the detection says.
func (m *Metrics) Detected(pattern, system string, deadline, detected time.Time, ttd time.Duration, how Detection) {
	if m == nil {
		return
	}
	attrs := metric.WithAttributes(attribute.String("pattern", pattern), attribute.String("system", system))
	if !deadline.IsZero() {
		m.detectAfterDL.Record(context.Background(), detected.Sub(deadline).Seconds(), attrs)
	}
	switch how {
	case Measured:
		m.detectAfterOnset.Record(context.Background(), ttd.Seconds(), attrs)
	case Skewed:
		m.detectSkewed.Add(context.Background(), 1, attrs)
	}
}

// OpenDelta moves the open-mismatch gauge of (pattern, severity, system).
func (m *Metrics) OpenDelta(pattern, severity, system string, delta int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	k := [3]string{pattern, severity, system}
	m.open[k] += delta
	if m.open[k] <= 0 {
		delete(m.open, k)
	}
	m.mu.Unlock()
}

// AlertPublished counts a published alert record.
func (m *Metrics) AlertPublished(pattern, severity, state string) {
	if m == nil {
		return
	}
	m.alertsPublished.Add(context.Background(), 1, metric.WithAttributes(attribute.String("pattern", pattern), attribute.String("severity", severity), attribute.String("state", state)))
}

// GateDecision records one gate decision and its latency.
func (m *Metrics) GateDecision(target, decision string, d time.Duration) {
	if m == nil {
		return
	}
	m.gateLatency.Record(context.Background(), d.Seconds(), metric.WithAttributes(attribute.String("decision", decision)))
	m.gateDecisions.Add(context.Background(), 1, metric.WithAttributes(attribute.String("target", target), attribute.String("decision", decision)))
}

// ReconcileDuration records a sweep's duration.
func (m *Metrics) ReconcileDuration(d time.Duration) {
	if m == nil {
		return
	}
	m.reconcileDur.Record(context.Background(), d.Seconds())
}

// Gauge is one observed value with its labels.
type Gauge struct {
	Value  int64
	Labels map[string]string
}

// ObserveGauges registers an observable gauge whose values come from fn at
// each scrape.
func (m *Metrics) ObserveGauges(name, description string, fn func(ctx context.Context) []Gauge) error {
	return m.ObserveGaugeSet(map[string]string{name: description}, func(ctx context.Context) map[string][]Gauge {
		return map[string][]Gauge{name: fn(ctx)}
	})
}

// ObserveGaugeSet registers several observable gauges (name -> description)
// filled by one call of fn per scrape, for figures that come from one
// costly read (the stream and consumer status).
func (m *Metrics) ObserveGaugeSet(gauges map[string]string, fn func(ctx context.Context) map[string][]Gauge) error {
	if m == nil {
		return nil
	}
	instruments := make(map[string]metric.Int64ObservableGauge, len(gauges))
	list := make([]metric.Observable, 0, len(gauges))
	for name, desc := range gauges {
		g, err := m.meter.Int64ObservableGauge(name, metric.WithDescription(desc))
		if err != nil {
			return err
		}
		instruments[name] = g
		list = append(list, g)
	}
	_, err := m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
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
