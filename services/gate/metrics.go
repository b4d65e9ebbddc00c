package gate

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// Metrics are the gate's instruments: decision latency and decisions per
// target. A nil *Metrics records nothing.
type Metrics struct {
	latency   metric.Float64Histogram
	decisions metric.Int64Counter
}

// NewMetrics makes the gate's instruments from meter (nil: none), with
// every target's decision series at 0 from the first scrape.
func NewMetrics(meter metric.Meter, targets []string) (*Metrics, error) {
	if meter == nil {
		return nil, nil
	}
	m := &Metrics{}
	var err error
	if m.latency, err = meter.Float64Histogram("driftwatch.gate.latency", metric.WithUnit("s"),
		metric.WithDescription("Boundary gate decision latency"), metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...)); err != nil {
		return nil, err
	}
	if m.decisions, err = meter.Int64Counter("driftwatch.gate.decisions", metric.WithDescription("Boundary gate decisions, per target and decision")); err != nil {
		return nil, err
	}
	for _, t := range targets {
		for _, d := range []string{events.DecisionAllow, events.DecisionFlag} {
			m.decisions.Add(context.Background(), 0, metric.WithAttributes(attribute.String("target", t), attribute.String("decision", d)))
		}
	}
	return m, nil
}

func (m *Metrics) decided(target, decision string, d time.Duration) {
	if m == nil {
		return
	}
	m.latency.Record(context.Background(), d.Seconds(), metric.WithAttributes(attribute.String("decision", decision)))
	m.decisions.Add(context.Background(), 1, metric.WithAttributes(attribute.String("target", target), attribute.String("decision", decision)))
}
