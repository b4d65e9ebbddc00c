package detector

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// Metrics are the detector's instruments: time to detect, open mismatches
// and expectations, and published alerts. They see only what was
// committed: the shell hands them the alerts of a batch after its commit
// (finish), so a redelivered or failed batch counts nothing twice. A nil
// *Metrics records nothing.
type Metrics struct {
	afterDeadline metric.Float64Histogram
	afterOnset    metric.Float64Histogram
	skewed        metric.Int64Counter
	published     metric.Int64Counter
	openGauge     metric.Int64ObservableGauge
	meter         metric.Meter

	mu   sync.Mutex
	open map[[3]string]int64 // pattern, severity, source system -> open mismatches
}

// NewMetrics makes the detector's instruments from meter (nil: none).
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	if meter == nil {
		return nil, nil
	}
	m := &Metrics{meter: meter, open: map[[3]string]int64{}}
	var err error
	if m.afterDeadline, err = meter.Float64Histogram("driftwatch.detect.after_deadline", metric.WithUnit("s"),
		metric.WithDescription("Time from an expectation's deadline to the alert (detected_at - deadline)"),
		metric.WithExplicitBucketBoundaries(telemetry.DetectBuckets...)); err != nil {
		return nil, err
	}
	if m.afterOnset, err = meter.Float64Histogram("driftwatch.detect.after_onset", metric.WithUnit("s"),
		metric.WithDescription("Time to detect: detected_at - onset_at, the onset taken no later than the source event's received_at; skewed alerts are counted in driftwatch.detect.skewed instead"),
		metric.WithExplicitBucketBoundaries(telemetry.DetectBuckets...)); err != nil {
		return nil, err
	}
	if m.skewed, err = meter.Int64Counter("driftwatch.detect.skewed", metric.WithDescription("Opened alerts whose onset is after their detection even bounded by the source event's received_at: left out of the time to detect")); err != nil {
		return nil, err
	}
	if m.published, err = meter.Int64Counter("driftwatch.alerts.published", metric.WithDescription("Alert records published, per pattern, severity and state")); err != nil {
		return nil, err
	}
	if m.openGauge, err = meter.Int64ObservableGauge("driftwatch.mismatches.open", metric.WithDescription("Open mismatches per pattern, severity and source system")); err != nil {
		return nil, err
	}
	if _, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for k, v := range m.open {
			o.ObserveInt64(m.openGauge, v, metric.WithAttributes(attribute.String("pattern", k[0]), attribute.String("severity", k[1]), attribute.String("system", k[2])))
		}
		return nil
	}, m.openGauge); err != nil {
		return nil, err
	}
	return m, nil
}

// seed counts the open mismatches in the store (once, at New). Every
// pattern's series (at its default severity, per configured system) is
// there from the first scrape, at 0 when none is open; so are the
// published alerts' counters.
func (m *Metrics) seed(store *projections.Store, systems []string) error {
	if m == nil {
		return nil
	}
	counts := map[[3]string]int64{}
	for _, p := range Patterns {
		for _, s := range systems {
			counts[[3]string{p, DefaultSeverity(p), s}] = 0
		}
		for _, state := range []string{StateOpen, StateEscalated, StateResolved} {
			m.published.Add(context.Background(), 0, metric.WithAttributes(attribute.String("pattern", p), attribute.String("severity", DefaultSeverity(p)), attribute.String("state", state)))
		}
	}
	err := ScanMismatches(store, Filter{State: StateOpen}, func(x *Mismatch) error {
		counts[[3]string{x.Pattern, x.Severity, sourceSystem(x)}]++
		return nil
	})
	if err != nil {
		return fmt.Errorf("detector: count open mismatches: %w", err)
	}
	m.mu.Lock()
	m.open = counts
	m.mu.Unlock()
	return nil
}

// observeExpectations exports driftwatch.expectations.open, read from d at
// each collection.
func (m *Metrics) observeExpectations(d *Detector) error {
	if m == nil {
		return nil
	}
	return telemetry.ObserveGaugeSet(m.meter, map[string]string{"driftwatch.expectations.open": "Flow expectations waiting for judgement"},
		func(context.Context) map[string][]telemetry.Gauge {
			n, err := d.OpenExpectations()
			if err != nil {
				return nil
			}
			return map[string][]telemetry.Gauge{"driftwatch.expectations.open": {{Value: int64(n), Labels: map[string]string{}}}}
		})
}

// committed records the alerts of a committed batch: an opened alert
// counts in the open gauge and in time to detect (detector.TimeToDetect's
// rule), a resolved one leaves the gauge.
func (m *Metrics) committed(alerts []*Mismatch) {
	if m == nil {
		return
	}
	for _, x := range alerts {
		sys := sourceSystem(x)
		k := [3]string{x.Pattern, x.Severity, sys}
		switch x.State {
		case StateOpen:
			m.mu.Lock()
			m.open[k]++
			m.mu.Unlock()
			attrs := metric.WithAttributes(attribute.String("pattern", x.Pattern), attribute.String("system", sys))
			if x.DeadlineNanos != 0 {
				m.afterDeadline.Record(context.Background(), time.Duration(x.DetectedNanos-x.DeadlineNanos).Seconds(), attrs)
			}
			switch ttd, how := TimeToDetect(x); how {
			case TTDMeasured:
				m.afterOnset.Record(context.Background(), ttd.Seconds(), attrs)
			case TTDSkewed:
				m.skewed.Add(context.Background(), 1, attrs)
			}
		case StateResolved:
			m.mu.Lock()
			m.open[k] = max(m.open[k]-1, 0) // the series stays, at 0
			m.mu.Unlock()
		}
	}
}

// alertPublished counts an alert record the alert stream acknowledged.
func (m *Metrics) alertPublished(e OutboxEntry) {
	if m == nil {
		return
	}
	if pat, sev, state, ok := AlertLabels(e); ok {
		m.published.Add(context.Background(), 1, metric.WithAttributes(attribute.String("pattern", pat), attribute.String("severity", sev), attribute.String("state", state)))
	}
}

func sourceSystem(m *Mismatch) string {
	if m.Source == nil {
		return ""
	}
	return m.Source.System
}
