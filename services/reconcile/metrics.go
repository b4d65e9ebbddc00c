package reconcile

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Metrics are reconciliation's instruments. A nil *Metrics records
// nothing.
type Metrics struct {
	duration metric.Float64Histogram
}

// sweepBuckets fit sweeps from a few milliseconds (a small store) to
// several minutes (millions of orders).
var sweepBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// NewMetrics makes reconciliation's instruments from meter (nil: none).
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	if meter == nil {
		return nil, nil
	}
	d, err := meter.Float64Histogram("driftwatch.reconcile.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of reconciliation sweeps"), metric.WithExplicitBucketBoundaries(sweepBuckets...))
	if err != nil {
		return nil, err
	}
	return &Metrics{duration: d}, nil
}

func (m *Metrics) swept(d time.Duration) {
	if m != nil {
		m.duration.Record(context.Background(), d.Seconds())
	}
}
