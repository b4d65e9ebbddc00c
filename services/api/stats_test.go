package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestStatsTimeToDetect: the dashboard's buckets follow the detector's
// time-to-detect rule. Three mismatches detected together: a healthy one
// (onset 60 s before), one whose source clock ran an hour ahead but whose
// event the log received 4 s before the detection (4 s), and one an hour
// ahead with no received time (skewed, left out). The bucket's mean is
// (60 + 4) / 2 = 32 s, never negative.
func TestStatsTimeToDetect(t *testing.T) {
	cfg, err := config.Parse("stats.yaml", []byte(config.SixSystems))
	if err != nil {
		t.Fatal(err)
	}
	store, err := projections.Open(t.TempDir(), projections.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	eng, err := detector.NewEngine(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	detected := time.Now().Add(-time.Second)
	mk := func(order string, onset time.Duration, received string) *detector.Mismatch {
		m := &detector.Mismatch{}
		m.AlertID = detector.AlertID(order, detector.IllegalTransition, "shop", "erp")
		m.OrderID, m.Pattern, m.Severity, m.DetectedBy = order, detector.IllegalTransition, detector.High, detector.ByValidate
		m.Source = &detector.Side{System: "shop", ReceivedAt: received}
		m.OnsetNanos = detected.Add(onset).UnixNano()
		return m
	}
	b := store.NewBatch()
	for _, m := range []*detector.Mismatch{
		mk("HEALTHY", -time.Minute, ""),
		mk("AHEAD-RECEIVED", time.Hour, detected.Add(-4*time.Second).UTC().Format(time.RFC3339Nano)),
		mk("AHEAD", time.Hour, ""),
	} {
		if err := eng.Raise(b, m, detected); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	(&StatsHandler{Config: cfg, Store: store}).ServeHTTP(w, httptest.NewRequest("GET", "/v1/stats?window=2h&bucket=1h", nil))
	var st Stats
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != 200 {
		t.Fatalf("%d %s %v", w.Code, w.Body.String(), err)
	}
	found := false
	for _, bk := range st.Buckets {
		if bk.TTDMeanSeconds < 0 {
			t.Fatalf("bucket %s: negative mean time to detect %v", bk.Start, bk.TTDMeanSeconds)
		}
		if bk.Detected == 0 {
			continue
		}
		found = true
		if bk.Detected != 3 || bk.TTDCount != 2 || bk.TTDSkewed != 1 || bk.TTDMeanSeconds < 31.999 || bk.TTDMeanSeconds > 32.001 {
			t.Fatalf("bucket %+v, want 3 detected, mean 32 s over 2, 1 skewed", bk)
		}
	}
	if !found {
		t.Fatalf("no bucket holds the detections: %+v", st.Buckets)
	}
}
