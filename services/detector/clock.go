package detector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/config"
)

// A clock that is off by whole hours passes every per-event check: a
// warehouse that sends its local time labelled Z is hours behind, never in
// the future, so max_future_skew never sees it, yet its states look stale
// to every flow. The lag of an event (received_at - occurred_at) is seconds
// or minutes for a healthy source; a source whose recent lags mostly sit
// near the same whole, non-zero number of hours has a clock or zone error.
//
// Each system keeps the lags of its last lagWindow events in the store
// (x/k/<system>, written with the batch that processed the event, so the
// statistic survives a restart and follows the checkpoint).
const (
	// lagWindow is how many recent lags are kept per system.
	lagWindow = 32
	// lagMinSamples is how many lags a verdict needs.
	lagMinSamples = 20
	// lagShare is the share of the kept lags that must sit near the same
	// whole number of hours for the system to be called skewed; below
	// lagClearShare the verdict clears.
	lagShare      = 0.75
	lagClearShare = 0.5
	// lagTolerance is how far from a whole hour a lag may be and still
	// count as near it (delivery latency and small clock drift).
	lagTolerance = 10 * time.Minute
)

var prefixLag = []byte(projections.PrefixDetector + "k/")

// lagRing is one system's recent lags, in seconds, oldest first.
type lagRing struct {
	lags []int32
	// skewHours is the offset last reported as clock_skew (0: none open).
	skewHours int8
}

const lagRingVersion = 1

func (r *lagRing) encode() []byte {
	b := make([]byte, 0, 3+5*len(r.lags))
	b = append(b, lagRingVersion, byte(r.skewHours))
	b = binary.AppendUvarint(b, uint64(len(r.lags)))
	for _, l := range r.lags {
		b = binary.AppendVarint(b, int64(l))
	}
	return b
}

func decodeLagRing(b []byte) (*lagRing, error) {
	if len(b) < 3 || b[0] != lagRingVersion {
		return nil, errors.New("detector: corrupt lag statistic")
	}
	r := &lagRing{skewHours: int8(b[1])}
	n, k := binary.Uvarint(b[2:])
	if k <= 0 || n > lagWindow {
		return nil, errors.New("detector: corrupt lag statistic")
	}
	b = b[2+k:]
	for range n {
		v, k := binary.Varint(b)
		if k <= 0 {
			return nil, errors.New("detector: corrupt lag statistic")
		}
		r.lags = append(r.lags, int32(v))
		b = b[k:]
	}
	return r, nil
}

// add records a lag, dropping the oldest beyond the window.
func (r *lagRing) add(lag time.Duration) {
	s := lag / time.Second
	s = min(max(s, -1<<31+1), 1<<31-1)
	if len(r.lags) == lagWindow {
		copy(r.lags, r.lags[1:])
		r.lags = r.lags[:lagWindow-1]
	}
	r.lags = append(r.lags, int32(s))
}

// LagVerdict is what a system's recent lags say about its clock.
type LagVerdict struct {
	// Hours is the whole number of hours most recent lags sit near
	// (positive: the source's times are behind the log's clock); 0 when
	// no such offset stands out.
	Hours int
	// Near counts the lags near Hours, of Samples kept.
	Near, Samples int
	// Median is the median lag (set where a message needs it).
	Median time.Duration
}

// maxOffsetHours bounds the whole-hour offsets looked for (UTC-12 to
// UTC+14, and a day's error either way).
const maxOffsetHours = 26

// verdict reads the ring: the non-zero whole hour most lags sit near, if
// it holds share of them. It runs once per status event: no allocation,
// no sort (the median is computed only for a message, by median).
func (r *lagRing) verdict(share float64) LagVerdict {
	v := LagVerdict{Samples: len(r.lags)}
	if len(r.lags) < lagMinSamples {
		return v
	}
	var near [2*maxOffsetHours + 1]int
	for _, l := range r.lags {
		lag := time.Duration(l) * time.Second
		h := int((lag + lagSign(lag)*time.Hour/2) / time.Hour) // nearest whole hour
		if h != 0 && abs(h) <= maxOffsetHours && (lag-time.Duration(h)*time.Hour).Abs() <= lagTolerance {
			near[h+maxOffsetHours]++
		}
	}
	for i, n := range near {
		h := i - maxOffsetHours
		if n > v.Near || (n > 0 && n == v.Near && abs(h) < abs(v.Hours)) {
			v.Hours, v.Near = h, n
		}
	}
	if float64(v.Near) < share*float64(len(r.lags)) {
		v.Hours = 0
	}
	return v
}

// median is the ring's median lag.
func (r *lagRing) median() time.Duration {
	if len(r.lags) == 0 {
		return 0
	}
	sorted := slices.Clone(r.lags)
	slices.Sort(sorted)
	return time.Duration(sorted[len(sorted)/2]) * time.Second
}

func lagSign(d time.Duration) time.Duration {
	if d < 0 {
		return -1
	}
	return 1
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// lagRing reads a system's ring (cached; the cache is dropped by
// ReloadOpen, after a failed batch).
func (e *Engine) lagRing(b *pebble.Batch, sys string) (*lagRing, error) {
	e.mu.Lock()
	r := e.lags[sys]
	e.mu.Unlock()
	if r != nil {
		return r, nil
	}
	v, closer, err := b.Get(join(prefixLag, sys))
	switch {
	case errors.Is(err, errNotFoundDB):
		r = &lagRing{}
	case err != nil:
		return nil, err
	default:
		r, err = decodeLagRing(v)
		closer.Close()
		if err != nil {
			// The statistic is derived and rebuilt by the next 32
			// events; a record that cannot be read must not stop
			// detection.
			r = &lagRing{}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cached := e.lags[sys]; cached != nil {
		return cached, nil // filled meanwhile: keep what it holds
	}
	e.lags[sys] = r
	return r, nil
}

// SystemLag is a system's recent-lag verdict (for the API and tests).
func (e *Engine) SystemLag(sys string) (LagVerdict, error) {
	b := e.store.NewBatch()
	defer b.Close()
	r, err := e.lagRing(b, sys)
	if err != nil {
		return LagVerdict{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v := r.verdict(lagShare)
	v.Median = r.median()
	return v, nil
}

// clockAlertID is the id of a system's whole-hour clock_skew: one per
// system, whatever order showed it.
func clockAlertID(sys string) string { return AlertID("", ClockSkew, sys, "hours") }

// observeLag adds a status event's lag to its system's statistic and
// raises clock_skew (naming the likely offset) when most recent lags sit
// near the same whole number of hours, or resolves it when they no longer
// do. The lag is measured against the time the event claims.
func (e *Engine) observeLag(b *pebble.Batch, orderID string, x *projections.Entry, now time.Time) error {
	r, err := e.lagRing(b, x.System)
	if err != nil {
		return err
	}
	e.mu.Lock()
	r.add(time.Duration(x.Received - x.Claimed()))
	had := int(r.skewHours)
	var v LagVerdict
	if had == 0 {
		v = r.verdict(lagShare)
	} else {
		v = r.verdict(lagClearShare)
	}
	r.skewHours = int8(v.Hours) // |Hours| <= maxOffsetHours
	if v.Hours != had {
		v.Median = r.median()
	}
	enc := r.encode()
	e.mu.Unlock()
	if err := b.Set(join(prefixLag, x.System), enc, nil); err != nil {
		return err
	}
	switch {
	case v.Hours != 0 && v.Hours != had:
		if had != 0 {
			if err := e.resolveClock(b, x.System, now, fmt.Sprintf("the offset moved from %s to %s", hours(had), hours(v.Hours))); err != nil {
				return err
			}
		}
		m := e.eventFinding(orderID, ClockSkew, x, now)
		m.AlertID = clockAlertID(x.System)
		// A finding about the system, not the order it arrived with: it
		// starts when the log saw it and carries no order value.
		m.Scope = ScopeSystem
		m.OnsetNanos, m.DeadlineNanos = x.Received, x.Received
		m.Amount, m.Currency = "", ""
		m.Expected = "offset " + hours(v.Hours)
		m.Message = lagMessage(x.System, v, e.systems[x.System])
		return e.raise(b, m, now)
	case v.Hours == 0 && had != 0:
		return e.resolveClock(b, x.System, now, fmt.Sprintf("%s's event times agree with the log's clock again (median lag %s)", x.System, dur(v.Median)))
	}
	return nil
}

func (e *Engine) resolveClock(b *pebble.Batch, sys string, now time.Time, note string) error {
	_, err := e.Resolve(b, clockAlertID(sys), now, "driftwatch", note)
	if errors.Is(err, ErrMismatchNotFound) || errors.Is(err, ErrAlreadyResolved) {
		return nil
	}
	return err
}

// hours writes a whole-hour offset with its sign ("+5h", "-2h").
func hours(h int) string {
	if h > 0 {
		return fmt.Sprintf("+%dh", h)
	}
	return fmt.Sprintf("%dh", h)
}

func lagMessage(sys string, v LagVerdict, s *config.System) string {
	dir, zone := "behind", fmt.Sprintf("UTC%+03d:00", -v.Hours)
	if v.Hours < 0 {
		dir = "ahead of"
	}
	hint := fmt.Sprintf("a local time (%s) sent with Z or the wrong offset? ", zone)
	if s != nil && s.Zone() != nil {
		hint = fmt.Sprintf("its events without an offset are read in %s: is that its zone? ", s.Zone())
	}
	return fmt.Sprintf("%s's event times run %s %s the log's clock: %d of its last %d events were received about %s from the time they claim (median lag %s). Its clock or time zone is likely off by %s: %sFix the offset it sends, or set systems[].timezone if it sends local times without one; until then its states look older or newer than they are to every flow.",
		sys, hours(abs(v.Hours))[1:], dir, v.Near, v.Samples, hours(abs(v.Hours))[1:], dur(v.Median), hours(v.Hours), hint)
}
