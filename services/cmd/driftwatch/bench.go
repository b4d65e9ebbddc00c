package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/bench"
)

func newBenchCmd() *cobra.Command {
	var o bench.Options
	var skip, output, cpuProfile, memProfile, writeWorkload, profilePhase, sweepDir, gateClient, traceOut string
	var sweepOrders, memoryLimitMB int
	var againstOpen bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load test an embedded driftwatch and print rates, latencies and memory",
		Long: `Run a realistic workload (six systems, ~12 events per order, duplicates,
out-of-order arrivals, 2% faults) against an embedded driftwatch in a
temporary folder, next to a plain JetStream stream with the same storage
settings, and print: raw and driftwatch publish rates, the end-to-end rate
(until every consumer applied everything) and its ratio to raw, detection
latency, gate latency at a fixed request rate while ingesting, the
reconciliation sweep time, replay and rebuild rates and peak memory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Skip = map[string]bool{}
			for _, s := range strings.Split(skip, ",") {
				if s != "" {
					o.Skip[s] = true
				}
			}
			if cpuProfile != "" && envProfiling {
				return usageError{fmt.Errorf("--cpuprofile cannot be used with %s set: that profiles the whole command already", ProfileEnv)}
			}
			var cpuFile, traceFile *os.File
			for _, out := range []struct {
				path string
				f    **os.File
			}{{cpuProfile, &cpuFile}, {traceOut, &traceFile}} {
				if out.path == "" {
					continue
				}
				f, err := os.Create(out.path)
				if err != nil {
					return err
				}
				defer f.Close()
				*out.f = f
			}
			startProfiles := func() {
				if cpuFile != nil {
					_ = pprof.StartCPUProfile(cpuFile)
				}
				if traceFile != nil {
					_ = trace.Start(traceFile)
				}
			}
			stopProfiles := func() {
				if cpuFile != nil {
					pprof.StopCPUProfile()
				}
				if traceFile != nil {
					trace.Stop()
				}
			}
			if profilePhase == "" {
				startProfiles()
				defer stopProfiles()
			} else {
				o.Phase = func(name string, start bool) {
					switch {
					case name != profilePhase:
					case start:
						startProfiles()
					default:
						stopProfiles()
					}
				}
			}
			if memProfile != "" {
				defer func() {
					if f, err := os.Create(memProfile); err == nil {
						_ = pprof.Lookup("allocs").WriteTo(f, 0)
						f.Close()
					}
				}()
			}
			o.Log = func(format string, args ...any) {
				printf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
			}
			if gateClient != "" {
				res, err := bench.GateClient(cmd.Context(), bench.GateClientOptions{URL: gateClient, Orders: o.Orders, Rate: o.GateRate, For: o.GateFor, IngestRate: o.IngestRate, PublishEach: o.PublishEach})
				if err != nil {
					return err
				}
				return printJSON(res)
			}
			if writeWorkload != "" {
				return writeWorkloadFile(writeWorkload, o.Orders)
			}
			if sweepOrders > 0 {
				res, err := bench.Sweep(cmd.Context(), bench.SweepOptions{Orders: sweepOrders, LimitMB: memoryLimitMB, Dir: sweepDir, Log: o.Log, Phase: o.Phase})
				if err != nil {
					return err
				}
				return printJSON(res)
			}
			var open *bench.Result
			if o.Secure && againstOpen {
				// The open setting first, in the same invocation, on the
				// same workload: the reference for the secure run.
				plain := o
				plain.Secure = false
				plain.Skip = map[string]bool{"gate": true, "replay": true}
				var err error
				if open, err = bench.Run(cmd.Context(), plain); err != nil {
					return err
				}
			}
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if output == outJSON {
				if open != nil {
					return printJSON(map[string]any{"open": open, "secure": res, "secure_over_open": res.EndToEndRate / open.EndToEndRate})
				}
				return printJSON(res)
			}
			if open != nil {
				printf(os.Stdout, "open setting         end to end %.0f events/s (publish %.0f events/s)\n", open.EndToEndRate, open.PublishRate)
			}
			printf(os.Stdout, "machine              %s\nsync_interval        %s\norders / events      %d / %d\n", res.Machine, res.SyncInterval, res.Orders, res.Events)
			printf(os.Stdout, "raw JetStream        %.0f msgs/s\n", res.RawRate)
			if res.RawAtomicRate > 0 {
				printf(os.Stdout, "raw atomic batches   %.0f msgs/s\n", res.RawAtomicRate)
			}
			if res.RawMsgIDRate > 0 {
				printf(os.Stdout, "raw with msg ids     %.0f msgs/s\n", res.RawMsgIDRate)
			}
			printf(os.Stdout, "publish              %.0f events/s\nend to end           %.0f events/s (%.2fx raw", res.PublishRate, res.EndToEndRate, res.Ratio)
			if res.RatioAtomic > 0 {
				printf(os.Stdout, ", %.2fx raw atomic batches", res.RatioAtomic)
			}
			if res.RatioMsgID > 0 {
				printf(os.Stdout, ", %.2fx raw with msg ids", res.RatioMsgID)
			}
			printf(os.Stdout, ")\n")
			if res.Secure {
				printf(os.Stdout, "secure setting       NATS TLS and NKey authentication on the publishing connection")
				if open != nil {
					printf(os.Stdout, ": %.2fx the open setting's end to end", res.EndToEndRate/open.EndToEndRate)
				}
				printf(os.Stdout, "\n")
			}
			printf(os.Stdout, "detection latency    p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms (%d alerts, up to %d open expectations)\n", res.DetectLatency["p50"], res.DetectLatency["p90"], res.DetectLatency["p99"], res.DetectLatency["max"], res.Alerts, res.MaxOpenExpectations)
			printf(os.Stdout, "gate latency         p50 %.3fms p99 %.3fms p99.9 %.3fms max %.3fms (%d requests at %.0f/s, %d flagged, ingesting %.0f events/s)\n", res.GateLatency["p50"], res.GateLatency["p99"], res.GateLatency["p99.9"], res.GateLatency["max"], res.GateRequests, res.GateRate, res.GateFlagged, res.IngestDuringGate)
			printf(os.Stdout, "reconcile sweep      %.3fs over %d orders\nreplay               %.0f events/s\nrebuild              %.0f events/s\npeak RSS             %.0f MiB\n", res.SweepSeconds, res.SweepOrders, res.ReplayRate, res.RebuildRate, res.PeakRSSMiB)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Orders, "orders", 20000, "orders in the workload (about 12 events each)")
	f.StringVar(&o.SyncInterval, "sync", "always", "JetStream sync_interval: always (default durability) or a duration (throughput setting, e.g. 1s)")
	f.IntVar(&o.GateRate, "gate-rate", 5000, "gate requests per second")
	f.DurationVar(&o.GateFor, "gate-for", 5*time.Second, "how long the gate is measured")
	f.IntVar(&o.IngestRate, "ingest-rate", 10000, "events per second published while the gate is measured")
	f.BoolVar(&o.GateProcess, "gate-process", false, "send the gate requests, and the ingest meanwhile, from a child process, as a middleware would, instead of the bench's own")
	f.StringVar(&gateClient, "gate-client", "", "instead: only send gate requests to the server at this NATS URL (--gate-rate, --gate-for, --orders), publishing --ingest-rate events/s meanwhile, and print the latencies as JSON")
	f.BoolVar(&o.Secure, "secure", false, "run with NATS authentication and TLS on: events are published over TLS by a publisher user (NKey); the gate is not measured")
	f.BoolVar(&againstOpen, "against-open", false, "with --secure: first run the same workload in the open setting, in the same invocation, and print the ratio")
	f.BoolVar(&o.PerSystem, "per-system", false, "read the log with a consumer per system and the detector's own, as earlier versions did, instead of the one pass")
	f.BoolVar(&o.PublishEach, "publish-each", false, "publish driftwatch's events one by one instead of in atomic batches (the default of driftwatch publish and POST /v1/events)")
	f.IntVar(&o.Rate, "rate", 0, "publish the workload at this steady rate (events/s) instead of as fast as possible")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the run to this file (go tool pprof -sample_index=alloc_space)")
	f.BoolVar(&o.LargeMemory, "large-memory", false, "run with no heap limit and larger caches (memory: limit_mb 0, block_cache_mb 64, memtable_mb 32, row_cache 131072) instead of the memory defaults")
	f.StringVar(&writeWorkload, "write-workload", "", "instead: write the workload of --orders orders to this NDJSON file (for driftwatch publish) and exit")
	f.IntVar(&memoryLimitMB, "memory-limit-mb", -1, "with --sweep-orders: run the server phase with this memory.limit_mb instead of the configuration's default")
	f.DurationVar(&o.SLA, "sla", 0, "replace every flow's SLA (3s in the workload); a longer one keeps more expectations open at once")
	f.StringVar(&skip, "skip", "", "comma-separated steps to skip: gate, replay")
	outputFlag(f, &output, outTable, outJSON).aliases = map[string]string{"text": outTable}
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	f.StringVar(&traceOut, "trace", "", "write a runtime execution trace of the run (or of --profile-phase) to this file (go tool trace)")
	f.StringVar(&profilePhase, "profile-phase", "", "with --cpuprofile or --trace: profile only this step (e2e: from the first publish until every consumer applied everything; gate: the gate under ingest; sweep: the timed sweep of --sweep-orders)")
	f.StringVar(&sweepDir, "sweep-dir", "", "with --sweep-orders: keep the loaded store in this folder; a later run with the same folder sweeps it again without loading or the server phase")
	f.IntVar(&sweepOrders, "sweep-orders", 0, "instead: load this many orders x 5 systems straight into a store and time one reconciliation sweep")
	return cmd
}

// writeWorkloadFile writes the bench's workload as NDJSON, one event per
// line, in publishing order.
func writeWorkloadFile(path string, orders int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	wl := bench.NewWorkload(1)
	n := 0
	for i := 0; i < orders; i++ {
		lines, _ := wl.Order(i)
		for _, l := range lines {
			w.Write(l)
			w.WriteByte('\n')
			n++
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	printf(os.Stderr, "wrote %d events of %d orders to %s\n", n, orders, path)
	return f.Close()
}
