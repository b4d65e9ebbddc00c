package projector

import (
	"go.opentelemetry.io/otel/metric"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// Metrics are the projector's instruments: events applied per system and
// outcome (driftwatch.events.in, stage "projector"), counted once their
// batch is committed. A nil *Metrics records nothing.
type Metrics struct {
	eventsIn metric.Int64Counter
}

// NewMetrics makes the projector's instruments from meter (nil: none).
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

// committed counts a committed batch's outcomes.
func (m *Metrics) committed(system string, outcomes []projections.Outcome) {
	if m == nil {
		return
	}
	var counts [projections.Rejected + 1]int64
	for i := range outcomes {
		counts[outcomes[i].Result]++
	}
	for r := projections.Applied; r <= projections.Rejected; r++ {
		telemetry.CountEvents(m.eventsIn, "projector", system, r.String(), counts[r])
	}
}
