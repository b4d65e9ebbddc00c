// Command driftwatch finds drift between the order states of a retailer's
// systems. `driftwatch serve` runs everything in one process; the other
// subcommands are the tools integration engineers and ops use.
//
// main only maps flags and environment to options and errors to exit codes:
// 0 success, 1 failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/driftwatch/driftwatch/services/telemetry"
)

// usageError marks bad usage (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	// driftwatch spends much of its time in fsyncs and network I/O, and Go
	// preempts a busy goroutine only every 10ms: with one P per CPU a gate
	// request or a consumer's batch waits behind a projector batch. Twice
	// Go's own default (one per CPU, or the container's CPU limit: it is
	// cgroup-aware), at least 4, measured 36k against 23-25k events/s end
	// to end on the 2-core VM (BENCHMARKS.md). Scaling Go's default keeps a
	// container's limit in proportion; a limit changed while running takes
	// effect at the next start. GOMAXPROCS, when set, wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(2*runtime.GOMAXPROCS(0), 4))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfile := startEnvProfile()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	stopProfile()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "driftwatch: "+firstLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		os.Exit(2)
	}
	os.Exit(1)
}

// ProfileEnv names a file that receives a CPU profile of the whole command
// (serve until it stops, a rebuild, a replay...), for `go tool pprof`. Its
// name matches no flag: DRIFTWATCH_<FLAG> is every flag's own variable
// (DRIFTWATCH_CPUPROFILE is bench's --cpuprofile).
const ProfileEnv = "DRIFTWATCH_PROFILE_CPU"

// envProfiling is set while ProfileEnv's profile runs: the CPU profiler is
// taken, for the whole command.
var envProfiling bool

func startEnvProfile() (stop func()) {
	path := os.Getenv(ProfileEnv)
	if path == "" {
		return func() {}
	}
	// A child process (bench --gate-process) must not write the same file.
	_ = os.Unsetenv(ProfileEnv)
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "driftwatch: %s: %v\n", ProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "driftwatch: %s: %v\n", ProfileEnv, err)
		f.Close()
		_ = os.Remove(path)
		return func() {}
	}
	envProfiling = true
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "driftwatch",
		Short:         "Find and explain drift between the order states of a retailer's systems",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return applyEnv(cmd)
		},
	}
	addLogFlags(root.PersistentFlags())
	root.AddCommand(newServeCmd(), newPublishCmd(), newOrderCmd(), newRebuildCmd(), newMismatchesCmd(), newReconcileCmd(), newSnapshotCmd(), newReplayCmd(), newExportCmd(), newMappingCmd(), newDemoCmd(), newBenchCmd(), newNATSCmd(), newTokenCmd(), newVersionCmd(), newWebhookCmd())
	// --version prints what `driftwatch version` prints.
	root.Version = telemetry.ReadBuild().String()
	root.SetVersionTemplate("driftwatch {{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	return root
}

// applyEnv gives every flag its DRIFTWATCH_<FLAG> environment equivalent; a
// flag set on the command line wins.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "DRIFTWATCH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := cmd.Flags().Set(f.Name, v); serr != nil {
				err = usagef("%s=%q: %v", name, v, serr)
			}
		}
	})
	return err
}
