package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/detector"
)

func TestMetricsParseAsPrometheusText(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	if status, body := env.Do(t, "POST", "/v1/events", "application/json", ev("m-1", "shop", "unfulfilled")); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	want := []string{
		"driftwatch_events_in_total", "driftwatch_consumer_lag", "driftwatch_consumer_applied_seq",
		"driftwatch_stream_last_seq", "driftwatch_expectations_open", "driftwatch_mismatches_open",
		"driftwatch_detect_after_deadline_seconds", "driftwatch_detect_after_onset_seconds", "driftwatch_alerts_published_total",
	}
	apptest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get(env.BaseURL + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(string(data)))
		if err != nil {
			t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
		}
		for _, name := range want {
			if _, ok := families[name]; !ok {
				return fmt.Errorf("no %s in /metrics (order_not_acknowledged needs its 2s SLA)", name)
			}
		}
		if testing.Verbose() {
			t.Logf("%s", data)
		}
		return nil
	})
}

// TestMetricsTimeToDetectNeverNegative: mismatches whose onset is an hour
// after their detection (a source clock running ahead, as stored findings
// and gate flags may still carry) never make the time-to-detect histogram
// negative: bounded by the source's received_at, the onset gives a true
// time (clock_skew here); with no received time to bound it, the alert is
// counted in driftwatch_detect_skewed_total instead (illegal_transition).
// The healthy twin (missing_event, onset 30 s before) is measured as usual.
func TestMetricsTimeToDetectNeverNegative(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	now := time.Now()
	mk := func(order, pattern string, onset time.Time, received string) *detector.Mismatch {
		m := &detector.Mismatch{}
		m.AlertID = detector.AlertID(order, pattern, "shop", "erp")
		m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, pattern, detector.DefaultSeverity(pattern), detector.ByValidate
		m.Source = &detector.Side{System: "shop", ReceivedAt: received}
		m.OnsetNanos = onset.UnixNano()
		return m
	}
	err := env.App.Detector.Record([]*detector.Mismatch{
		mk("AHEAD-1", detector.ClockSkew, now.Add(time.Hour), now.Add(-time.Second).UTC().Format(time.RFC3339Nano)),
		mk("AHEAD-2", detector.IllegalTransition, now.Add(time.Hour), ""),
		mk("TWIN-1", detector.MissingEvent, now.Add(-30*time.Second), now.Add(-30*time.Second).UTC().Format(time.RFC3339Nano)),
	})
	if err != nil {
		t.Fatal(err)
	}
	apptest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		families, err := scrape(env)
		if err != nil {
			return err
		}
		byPattern := func(family string) map[string]*dto.Metric {
			out := map[string]*dto.Metric{}
			for _, m := range families[family].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "pattern" {
						out[l.GetValue()] = m
					}
				}
			}
			return out
		}
		ttd, skewed := byPattern("driftwatch_detect_after_onset_seconds"), byPattern("driftwatch_detect_skewed_total")
		for pattern, m := range ttd {
			if h := m.GetHistogram(); h.GetSampleSum() < 0 {
				t.Fatalf("%s: time to detect sums to %v s over %d alerts", pattern, h.GetSampleSum(), h.GetSampleCount())
			}
		}
		if ttd[detector.ClockSkew].GetHistogram().GetSampleCount() != 1 || ttd[detector.MissingEvent].GetHistogram().GetSampleCount() != 1 {
			return fmt.Errorf("time to detect of clock_skew and missing_event not recorded yet: %v", ttd)
		}
		if sum := ttd[detector.MissingEvent].GetHistogram().GetSampleSum(); sum < 30 {
			t.Fatalf("missing_event detected after %v s, want at least 30", sum)
		}
		if _, ok := ttd[detector.IllegalTransition]; ok {
			t.Fatalf("a skewed alert in the time-to-detect histogram: %v", ttd[detector.IllegalTransition])
		}
		if n := skewed[detector.IllegalTransition].GetCounter().GetValue(); n != 1 {
			return fmt.Errorf("skewed illegal_transition counted %v times", n)
		}
		return nil
	})
}

// TestMetricLabelsOnlyFromTheConfiguration: events of 50 unknown systems,
// posted over HTTP and published raw on their subjects, add no series:
// their system label is _unknown.
func TestMetricLabelsOnlyFromTheConfiguration(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	var body strings.Builder
	for i := range 50 {
		fmt.Fprintf(&body, "%s\n", ev(fmt.Sprintf("junk-%d", i), fmt.Sprintf("junk%02d", i), "paid"))
	}
	if status, out := env.Do(t, "POST", "/v1/events", "application/x-ndjson", body.String()); status/100 != 2 && status != 400 && status != 207 {
		t.Fatalf("%d %s", status, out)
	}
	var series []string
	apptest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		families, err := scrape(env)
		if err != nil {
			return err
		}
		series = series[:0]
		unknown := false
		for _, m := range families["driftwatch_events_in_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "system" {
					series = append(series, l.GetValue())
					unknown = unknown || l.GetValue() == "_unknown"
				}
			}
		}
		if !unknown {
			return fmt.Errorf("no _unknown series yet: %v", series)
		}
		return nil
	})
	for _, s := range series {
		if strings.HasPrefix(s, "junk") {
			t.Fatalf("a junk system made a series: %v", series)
		}
	}
}

// TestMetricsNameTheServiceAndSpeakOpenMetrics: target_info names the
// service and its version (not unknown_service), and a scraper asking for
// OpenMetrics gets it.
func TestMetricsNameTheServiceAndSpeakOpenMetrics(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	req, err := http.NewRequest("GET", env.BaseURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(data)), "# EOF") {
		t.Fatalf("not OpenMetrics (no # EOF)")
	}
	text := string(data)
	if !strings.Contains(text, `service_name="driftwatch"`) || !strings.Contains(text, "service_version=") || strings.Contains(text, "unknown_service") {
		t.Fatalf("target_info: %s", grepLines(text, "target_info"))
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// scrape reads /metrics as Prometheus text.
func scrape(env *apptest.Env) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(env.BaseURL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics does not parse: %w", err)
	}
	return families, nil
}

// TestSeriesFromTheFirstScrape: before any event, the counters and gauges
// have every series a dashboard or an alert rule refers to, at 0: events
// per configured system, stage and outcome; open mismatches per pattern
// and system; alerts published per pattern and state; gate decisions per
// target (a rate() over a series that appears late misses its first
// increase).
func TestSeriesFromTheFirstScrape(t *testing.T) {
	env := apptest.Start(t, apptest.Config(t, ""), "")
	families, err := scrape(env)
	if err != nil {
		t.Fatal(err)
	}
	has := func(family string, labels map[string]string) bool {
		for _, m := range families[family].GetMetric() {
			match := true
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				match = match && found
			}
			if match {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		family string
		labels map[string]string
	}{
		{"driftwatch_events_in_total", map[string]string{"stage": "ingest", "system": "shop", "outcome": "rejected"}},
		{"driftwatch_events_in_total", map[string]string{"stage": "projector", "system": "erp", "outcome": "applied"}},
		{"driftwatch_events_in_total", map[string]string{"stage": "ingest", "system": "_unknown", "outcome": "rejected"}},
		{"driftwatch_mismatches_open", map[string]string{"pattern": detector.CancelNotPropagated, "system": "shop"}},
		{"driftwatch_alerts_published_total", map[string]string{"pattern": detector.OrderNotAcknowledged, "state": "resolved"}},
		{"driftwatch_gate_decisions_total", map[string]string{"target": "erp", "decision": "flag"}},
	} {
		if !has(c.family, c.labels) {
			t.Errorf("no %s%v at the first scrape", c.family, c.labels)
		}
	}
}
