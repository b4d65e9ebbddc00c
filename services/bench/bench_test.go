package bench

import (
	"context"
	"testing"
	"time"
)

// TestRunSmall runs the whole load tool on a small workload in both
// durability modes and checks that every step measured something: the
// plain-stream baselines, the end-to-end rate, the alerts of the
// workload's faults, the gate and the rebuild.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the load tool twice (about 15 s)")
	}
	for _, sync := range []string{"1s", "always"} {
		t.Run(sync, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := Run(ctx, Options{Orders: 300, SyncInterval: sync, GateRate: 400, GateFor: 500 * time.Millisecond,
				IngestRate: 400, Skip: map[string]bool{"replay": true}, Log: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			positive := map[string]float64{
				"raw rate": res.RawRate, "end-to-end rate": res.EndToEndRate, "rebuild rate": res.RebuildRate,
				"gate p50": res.GateLatency["p50"],
				"alerts":   float64(res.Alerts), "gate replies": float64(res.GateRequests),
			}
			if sync == "always" {
				positive["raw atomic rate"] = res.RawAtomicRate
			} else {
				positive["raw rate with message ids"] = res.RawMsgIDRate
			}
			for name, v := range positive {
				if v <= 0 {
					t.Errorf("%s = %v, want > 0", name, v)
				}
			}
			if res.Events < 300*10 {
				t.Errorf("%d events for 300 orders, want about 12 each", res.Events)
			}
		})
	}
}

// TestRunSecure runs the load tool with NATS authentication and TLS on:
// the events reach the log over TLS as a publisher user, and detection
// still raises the workload's alerts.
func TestRunSecure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the load tool (about 8 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Orders: 300, SyncInterval: "1s", Skip: map[string]bool{"replay": true}, Secure: true, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Secure || res.EndToEndRate <= 0 || res.Alerts == 0 || res.GateRequests != 0 {
		t.Fatalf("secure run: secure %v, end to end %v, %d alerts, %d gate requests", res.Secure, res.EndToEndRate, res.Alerts, res.GateRequests)
	}
}
