package app

import (
	"context"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/telemetry"
)

// observeMismatches seeds the open-mismatch gauge from the store and keeps
// it, and the time-to-detect histograms, up to date from the engine.
func (a *App) observeMismatches(eng *detector.Engine) error {
	err := detector.ScanMismatches(a.Store, detector.Filter{State: detector.StateOpen}, func(m *detector.Mismatch) error {
		a.Metrics.OpenDelta(m.Pattern, m.Severity, sourceSystem(m), 1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("count open mismatches: %w", err)
	}
	eng.Observe = func(m *detector.Mismatch) {
		sys := sourceSystem(m)
		switch m.State {
		case detector.StateOpen:
			a.Metrics.OpenDelta(m.Pattern, m.Severity, sys, 1)
			var deadline time.Time
			if m.DeadlineNanos != 0 {
				deadline = time.Unix(0, m.DeadlineNanos)
			}
			ttd, how := detectionOf(m)
			a.Metrics.Detected(m.Pattern, sys, deadline, time.Unix(0, m.DetectedNanos), ttd, how)
		case detector.StateResolved:
			a.Metrics.OpenDelta(m.Pattern, m.Severity, sys, -1)
		}
	}
	return nil
}

// detectionOf applies the detector's time-to-detect rule for the metrics.
func detectionOf(m *detector.Mismatch) (time.Duration, telemetry.Detection) {
	ttd, outcome := detector.TimeToDetect(m)
	switch outcome {
	case detector.TTDMeasured:
		return ttd, telemetry.Measured
	case detector.TTDSkewed:
		return 0, telemetry.Skewed
	default:
		return 0, telemetry.NoOnset
	}
}

func sourceSystem(m *detector.Mismatch) string {
	if m.Source == nil {
		return ""
	}
	return m.Source.System
}

// observeStatus exports the log position, every consumer's applied sequence
// and lag (one status read per scrape for the three), and the open
// expectations, as gauges read at each scrape.
func (a *App) observeStatus() error {
	const (
		lag     = "driftwatch.consumer.lag"
		applied = "driftwatch.consumer.applied_seq"
		lastSeq = "driftwatch.stream.last_seq"
	)
	if err := a.Metrics.ObserveGaugeSet(map[string]string{
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
	}); err != nil {
		return err
	}
	return a.Metrics.ObserveGauges("driftwatch.expectations.open", "Flow expectations waiting for judgement", func(ctx context.Context) []telemetry.Gauge {
		if a.Detector == nil {
			return nil
		}
		n, err := a.Detector.OpenExpectations()
		if err != nil {
			return nil
		}
		return []telemetry.Gauge{{Value: int64(n), Labels: map[string]string{}}}
	})
}
