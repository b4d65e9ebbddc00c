package bench

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/gate"
)

// The baselines here exist only to judge driftwatch, so they live in the
// tests, not in the load tool: the hand-rolled pipeline a team would write
// (handrolled_test.go), the JetStream ceiling for driftwatch's topology
// (ceiling_test.go) and the gate's floor, a responder that does no work.
// Each runs in the same run as driftwatch, on the same workload and the
// same server, as an extra step of Run; the benchmarks report driftwatch's
// ratio to each.
//
//	go test ./services/bench -run XXX -bench Baselines -benchtime 1x
//
// DRIFTWATCH_BENCH_ORDERS sets the workload (default 20000 orders for the
// throughput baselines, 8000 for the gate).

// handRolledStep times the hand-rolled pipeline on the run's payloads, as
// the performance issue wrote it (no message ids), with each event's
// message id, as driftwatch's log stores them, and as the store floor:
// with ids, writing what driftwatch's store receives per event.
func handRolledStep(ctx context.Context, env *Env, res *Result) error {
	rate, err := timeHandRolled(ctx, env.JS, env.Dir, env.Payloads, env.Subject, false, false)
	if err != nil {
		return err
	}
	res.Baselines["hand_rolled_per_sec"] = rate
	res.Baselines["end_to_end_over_hand_rolled"] = res.EndToEndRate / rate
	if rate, err = timeHandRolled(ctx, env.JS, env.Dir, env.Payloads, env.Subject, true, false); err != nil {
		return err
	}
	res.Baselines["hand_rolled_with_ids_per_sec"] = rate
	res.Baselines["end_to_end_over_hand_rolled_with_ids"] = res.EndToEndRate / rate
	floor, err := timeHandRolled(ctx, env.JS, env.Dir, env.Payloads, env.Subject, true, true)
	if err != nil {
		return err
	}
	res.Baselines["store_floor_per_sec"] = floor
	res.Baselines["store_floor_over_hand_rolled"] = floor / res.Baselines["hand_rolled_per_sec"]
	res.Baselines["end_to_end_over_store_floor"] = res.EndToEndRate / floor
	return nil
}

// ceilingStep times the JetStream ceiling of the run's shape (the one
// pass, or a consumer per system) on its payloads.
func ceilingStep(ctx context.Context, env *Env, res *Result) error {
	rate, consumers, err := timeCeiling(ctx, env.JS, env.Payloads, env.Subject, env.Options.PerSystem)
	if err != nil {
		return err
	}
	res.Baselines["ceiling_per_sec"] = rate
	res.Baselines["ceiling_consumers"] = float64(consumers)
	res.Baselines["end_to_end_over_ceiling"] = res.EndToEndRate / rate
	return nil
}

// floorSubject is where floorStep serves its reply-only responder.
const floorSubject = "driftwatch.bench.floor"

// floorStep sends the gate's load (total rate, ingest of fresh orders,
// client) alternately to the gate and to a responder served exactly like
// it (micro, an in-process connection, gate.Instances instances) that
// answers each request with a gate reply made in advance. Both see the
// same moments of the same load, so the difference between their
// latencies is the gate's own work; what the floor shows is the transport
// and the machine under that ingest.
func floorStep(ctx context.Context, env *Env, res *Result) error {
	// A typical allow, the size of the gate's (asking the gate itself
	// could record a flag).
	body, err := json.Marshal(events.ValidateReply{Decision: events.DecisionAllow,
		Reason:   "pending fulfillment -> fulfilled (confirmed -> shipped) is a documented transition",
		Current:  events.CurrentState{System: "erp", Status: "Pending Fulfillment", Canonical: "confirmed", Payment: "captured", OccurredAt: time.Now().UTC().Format(time.RFC3339), HasRecord: true},
		Incoming: events.IncomingState{Canonical: "shipped"}})
	if err != nil {
		return err
	}
	nc, err := env.App.Broker.Connect("driftwatch-bench-floor") // as the gate's
	if err != nil {
		return err
	}
	defer nc.Close()
	for range gate.Instances {
		svc, err := micro.AddService(nc, micro.Config{Name: "driftwatch-bench-floor", Version: "1.0.0"})
		if err != nil {
			return err
		}
		defer func() { _ = svc.Stop() }()
		if err := svc.AddEndpoint("floor", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(body) }),
			micro.WithEndpointSubject(floorSubject), micro.WithEndpointPendingLimits(100000, 256<<20)); err != nil {
			return err
		}
	}
	o := env.Options
	gr, err := GateClient(ctx, GateClientOptions{URL: env.App.Broker.ClientURL, Orders: o.Orders, Rate: o.GateRate, For: o.GateFor,
		IngestRate: o.IngestRate, PublishEach: o.PublishEach, PairSubject: floorSubject, IngestOffset: 1000000})
	if err != nil {
		return err
	}
	for _, q := range []string{"p50", "p99", "p99.9"} {
		res.Baselines["paired_gate_"+q+"_ms"] = gr.Latency[q]
		res.Baselines["floor_"+q+"_ms"] = gr.PairLatency[q]
	}
	return nil
}

// withBaselines makes res.Baselines before the steps write to it.
func withBaselines(steps ...Step) []Step {
	return append([]Step{func(_ context.Context, _ *Env, res *Result) error {
		res.Baselines = map[string]float64{}
		return nil
	}}, steps...)
}

func benchOrders(def int) int {
	if n, err := strconv.Atoi(os.Getenv("DRIFTWATCH_BENCH_ORDERS")); err == nil && n > 0 {
		return n
	}
	return def
}

// report reports a run's figures: the benchmark's own metrics, so
// benchstat can compare them across commits.
func report(b *testing.B, res *Result, keys ...string) {
	b.ReportMetric(res.EndToEndRate, "events/s")
	b.ReportMetric(res.Ratio, "x_raw")
	for _, k := range keys {
		b.ReportMetric(res.Baselines[k], k)
	}
	for k, v := range res.Baselines {
		b.Logf("%s = %.3f", k, v)
	}
}

// BenchmarkBaselinesThroughput: driftwatch end to end at the throughput
// setting against the hand-rolled pipeline and the JetStream ceiling of
// its shape, first read by a consumer per system and the detector's own
// (as earlier versions read it), then by the one pass.
func BenchmarkBaselinesThroughput(b *testing.B) {
	for b.Loop() {
		o := Options{Orders: benchOrders(20000), SyncInterval: "1s", Skip: map[string]bool{"gate": true, "replay": true},
			Extra: withBaselines(handRolledStep, ceilingStep), Log: b.Logf}
		perSystem := o
		perSystem.PerSystem = true
		split, err := Run(b.Context(), perSystem)
		if err != nil {
			b.Fatal(err)
		}
		res, err := Run(b.Context(), o)
		if err != nil {
			b.Fatal(err)
		}
		res.Baselines["per_system_per_sec"] = split.EndToEndRate
		res.Baselines["per_system_over_hand_rolled"] = split.Baselines["end_to_end_over_hand_rolled"]
		res.Baselines["per_system_over_its_ceiling"] = split.Baselines["end_to_end_over_ceiling"]
		res.Baselines["one_pass_over_per_system"] = res.EndToEndRate / split.EndToEndRate
		report(b, res, "end_to_end_over_hand_rolled", "end_to_end_over_store_floor", "end_to_end_over_ceiling", "one_pass_over_per_system")
	}
}

// BenchmarkBaselinesGate: the gate against its floor, interleaved, while
// ingesting durably.
func BenchmarkBaselinesGate(b *testing.B) {
	for b.Loop() {
		res, err := Run(b.Context(), Options{Orders: benchOrders(8000), SyncInterval: "always", GateRate: 5000, GateFor: 10 * time.Second,
			IngestRate: 10000, Skip: map[string]bool{"replay": true}, Extra: withBaselines(floorStep), Log: b.Logf})
		if err != nil {
			b.Fatal(err)
		}
		report(b, res, "paired_gate_p99_ms", "floor_p99_ms")
	}
}

// TestBaselinesSmall runs every baseline step on a small workload and
// checks that each measured something.
func TestBaselinesSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the load tool with its baselines (about 10 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Orders: 300, SyncInterval: "1s", GateRate: 400, GateFor: 500 * time.Millisecond, IngestRate: 400,
		Skip: map[string]bool{"replay": true}, Extra: withBaselines(handRolledStep, ceilingStep, floorStep), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"hand_rolled_per_sec", "hand_rolled_with_ids_per_sec", "store_floor_per_sec", "ceiling_per_sec", "end_to_end_over_ceiling", "paired_gate_p50_ms", "floor_p50_ms"} {
		if res.Baselines[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, res.Baselines[k])
		}
	}
}
