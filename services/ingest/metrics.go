package ingest

import (
	"go.opentelemetry.io/otel/metric"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// Metrics are ingest's instruments: events received per system and
// outcome (driftwatch.events.in, stage "ingest"). A nil *Metrics records
// nothing.
type Metrics struct {
	eventsIn metric.Int64Counter
}

// NewMetrics makes ingest's instruments from meter (nil: none).
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	if meter == nil {
		return nil, nil
	}
	c, err := telemetry.EventsIn(meter)
	if err != nil {
		return nil, err
	}
	return &Metrics{eventsIn: c}, nil
}

func (m *Metrics) received(res events.Result) {
	if m != nil {
		telemetry.CountEvents(m.eventsIn, "ingest", res.System, string(res.Outcome), 1)
	}
}
