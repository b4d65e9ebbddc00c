package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/driftwatch/driftwatch/services/apptest"
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
