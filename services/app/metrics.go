package app

import (
	"context"

	"github.com/driftwatch/driftwatch/services/telemetry"
)

// observeStatus exports the log position and every consumer's applied
// sequence and lag, as gauges read at each scrape (one status read for
// the three). The components' own instruments are theirs (NewMetrics).
func (a *App) observeStatus() error {
	const (
		lag     = "driftwatch.consumer.lag"
		applied = "driftwatch.consumer.applied_seq"
		lastSeq = "driftwatch.stream.last_seq"
	)
	return a.Metrics.ObserveGaugeSet(map[string]string{
		lag:     "Messages a consumer has not applied yet (pending + unacknowledged)",
		applied: "Last stream sequence a consumer applied",
		lastSeq: "Last sequence of the events stream",
	}, func(ctx context.Context) map[string][]telemetry.Gauge {
		st, err := a.Status(ctx)
		if err != nil {
			return nil
		}
		out := map[string][]telemetry.Gauge{
			lastSeq: {{Value: int64(st.Stream.LastSeq), Labels: map[string]string{"stream": st.Stream.Name}}},
		}
		for _, c := range st.Consumers {
			labels := map[string]string{"consumer": c.Name}
			out[lag] = append(out[lag], telemetry.Gauge{Value: int64(c.Pending), Labels: labels})
			out[applied] = append(out[applied], telemetry.Gauge{Value: int64(c.AppliedSeq), Labels: labels})
		}
		return out
	})
}
