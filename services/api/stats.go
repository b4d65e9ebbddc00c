package api

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// Bucket is one interval of the drift chart. TTDMeanSeconds is the mean
// time to detect of the mismatches detected in it (detector.TimeToDetect),
// over TTDCount of them; TTDSkewed counts those left out because their
// onset is after their detection.
type Bucket struct {
	Start          string  `json:"start"`
	Detected       int     `json:"detected"`
	Resolved       int     `json:"resolved"`
	TTDMeanSeconds float64 `json:"ttd_mean_seconds"`
	TTDCount       int     `json:"ttd_count"`
	TTDSkewed      int     `json:"ttd_skewed"`
}

// Stats is GET /v1/stats: drift over time and the open mismatches by
// system, pattern and severity, for the dashboard.
type Stats struct {
	Window         string         `json:"window"`
	Bucket         string         `json:"bucket"`
	Buckets        []Bucket       `json:"buckets"`
	OpenTotal      int            `json:"open_total"`
	OpenBySystem   map[string]int `json:"open_by_system"`
	OpenByPattern  map[string]int `json:"open_by_pattern"`
	OpenBySeverity map[string]int `json:"open_by_severity"`
	Patterns       []string       `json:"patterns"`
	Systems        []string       `json:"systems"`
}

// StatsHandler serves GET /v1/stats?window=24h&bucket=1h.
type StatsHandler struct {
	Config *config.Config
	Store  *projections.Store
	// Cluster and Owns, when set, make the statistics every instance's
	// (MismatchHandlers.Cluster): each counts its own orders', and the
	// instance asked adds them up.
	Cluster Cluster
	Owns    func(orderID string) bool
}

// gather adds up every instance's statistics for the same query.
func (h *StatsHandler) gather(w http.ResponseWriter, r *http.Request) {
	bodies, err := h.Cluster.Gather(r, "/v1/stats?"+r.URL.RawQuery)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadGateway, "instances_unreachable", err.Error())
		return
	}
	var sum Stats
	byStart := map[string]int{}
	ttdSum := map[string]float64{}
	for i, b := range bodies {
		var st Stats
		if err := json.Unmarshal(b, &st); err != nil {
			httpjson.WriteError(w, http.StatusBadGateway, "instance_error", "statistics from another instance: "+err.Error())
			return
		}
		if i == 0 { // its buckets are the answer's
			sum = Stats{Window: st.Window, Bucket: st.Bucket, Patterns: st.Patterns, Systems: st.Systems, Buckets: make([]Bucket, len(st.Buckets)),
				OpenBySystem: map[string]int{}, OpenByPattern: map[string]int{}, OpenBySeverity: map[string]int{}}
			for j, bk := range st.Buckets {
				sum.Buckets[j].Start = bk.Start
				byStart[bk.Start] = j
			}
		}
		for _, bk := range st.Buckets {
			j, ok := byStart[bk.Start]
			if !ok {
				continue // a bucket that began or ended between the two reads
			}
			sum.Buckets[j].Detected += bk.Detected
			sum.Buckets[j].Resolved += bk.Resolved
			sum.Buckets[j].TTDCount += bk.TTDCount
			sum.Buckets[j].TTDSkewed += bk.TTDSkewed
			ttdSum[bk.Start] += bk.TTDMeanSeconds * float64(bk.TTDCount)
		}
		sum.OpenTotal += st.OpenTotal
		for k, v := range st.OpenBySystem {
			sum.OpenBySystem[k] += v
		}
		for k, v := range st.OpenByPattern {
			sum.OpenByPattern[k] += v
		}
		for k, v := range st.OpenBySeverity {
			sum.OpenBySeverity[k] += v
		}
	}
	for j := range sum.Buckets {
		if c := sum.Buckets[j].TTDCount; c > 0 {
			sum.Buckets[j].TTDMeanSeconds = ttdSum[sum.Buckets[j].Start] / float64(c)
		}
	}
	httpjson.Write(w, http.StatusOK, sum)
}

func (h *StatsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	window, err := config.ParseDuration(orDefault(r.URL.Query().Get("window"), "24h"))
	if err != nil || window <= 0 || window > 90*24*time.Hour {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_window", "window: want a duration up to 90d")
		return
	}
	bucket, err := config.ParseDuration(orDefault(r.URL.Query().Get("bucket"), "1h"))
	if err != nil || bucket <= 0 || window/bucket > 500 {
		httpjson.WriteError(w, http.StatusBadRequest, "bad_bucket", "bucket: want a duration, at most 500 buckets per window")
		return
	}
	var filter detector.Filter
	if h.Cluster != nil {
		if !IsForwarded(r.Context()) {
			h.gather(w, r)
			return
		}
		filter.Owns = h.Owns
	}
	now := time.Now()
	start := now.Add(-window).Truncate(bucket)
	n := int(now.Sub(start)/bucket) + 1
	st := Stats{Window: window.String(), Bucket: bucket.String(), Buckets: make([]Bucket, n),
		OpenBySystem: map[string]int{}, OpenByPattern: map[string]int{}, OpenBySeverity: map[string]int{}, Patterns: detector.Patterns}
	ttdSum := make([]float64, n)
	for i := range st.Buckets {
		st.Buckets[i].Start = start.Add(time.Duration(i) * bucket).UTC().Format(time.RFC3339)
	}
	idx := func(nanos int64) int {
		if nanos < start.UnixNano() {
			return -1
		}
		i := int(time.Duration(nanos-start.UnixNano()) / bucket)
		if i >= n {
			return -1
		}
		return i
	}
	err = detector.ScanMismatches(h.Store, filter, func(m *detector.Mismatch) error {
		if i := idx(m.DetectedNanos); i >= 0 {
			st.Buckets[i].Detected++
			switch d, outcome := detector.TimeToDetect(m); outcome {
			case detector.TTDMeasured:
				ttdSum[i] += d.Seconds()
				st.Buckets[i].TTDCount++
			case detector.TTDSkewed:
				st.Buckets[i].TTDSkewed++
			}
		}
		if m.State == detector.StateResolved {
			if i := idx(m.ResolvedNanos); i >= 0 {
				st.Buckets[i].Resolved++
			}
			return nil
		}
		st.OpenTotal++
		if m.Source != nil {
			st.OpenBySystem[m.Source.System]++
		}
		st.OpenByPattern[m.Pattern]++
		st.OpenBySeverity[m.Severity]++
		return nil
	})
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	for i := range st.Buckets {
		if c := st.Buckets[i].TTDCount; c > 0 {
			st.Buckets[i].TTDMeanSeconds = ttdSum[i] / float64(c)
		}
	}
	for _, s := range h.Config.Systems {
		st.Systems = append(st.Systems, s.ID)
	}
	sort.Strings(st.Systems)
	httpjson.Write(w, http.StatusOK, st)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
