package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events/mapping"
	"github.com/driftwatch/driftwatch/services/replay"
)

func newMappingCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "mapping", Short: "Work with the status mapping tables"}
	var candidate, last, configPath, output, httpAddr string
	var auth apiAuth
	var nf *natsFlags
	var sample uint64
	var allowChanges bool
	test := &cobra.Command{
		Use:   "test --candidate DIR [--last 7d | --sample N]",
		Short: "Backtest candidate mapping tables on real past events; exit 1 on regressions",
		Long: `Run candidate mapping tables (a folder of <platform>.yaml files, layered over
the built-in tables and mappings_dir) over real past events from the log
beside the current tables, and report per platform the statuses newly mapped
or unmapped, the canonical states that change, and the mismatches that would
appear or disappear, with examples. The exit status is 1 when a status
becomes unmapped or changes meaning (--allow-changes accepts changes), so an
integration team can run it in CI before a mapping change ships.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if candidate == "" {
				return usagef("--candidate DIR is required")
			}
			cfg, done, err := clientConfig(configPath, httpAddr, &auth)
			if err != nil {
				return err
			}
			defer done()
			cand, err := mapping.LoadDirs(cfg.MappingsPath, candidate)
			if err != nil {
				return err
			}
			since, err := parseWhen("last", last)
			if err != nil {
				return err
			}
			js, nc, err := connectJS(nf, "driftwatch-mapping-test")
			if err != nil {
				return err
			}
			defer nc.Close()
			res, err := replay.Backtest(cmd.Context(), replay.BacktestOptions{JS: js, Config: cfg, Candidate: cand, Since: since, Sample: sample})
			if err != nil {
				return err
			}
			regressions := 0
			for _, p := range res.Platforms {
				for _, c := range p.Changes {
					if c.Kind == replay.NewlyUnmapped || (c.Kind == replay.Changed && !allowChanges) {
						regressions++
					}
				}
			}
			if output == outJSON {
				if err := printJSON(res); err != nil {
					return err
				}
			} else {
				printBacktest(res)
			}
			if regressions > 0 {
				return fmt.Errorf("%d regressions in the candidate tables", regressions)
			}
			return nil
		},
	}
	f := test.Flags()
	f.StringVar(&candidate, "candidate", "", "folder of candidate tables (<platform>.yaml)")
	f.StringVar(&last, "last", "", "only events received in the last duration (7d)")
	f.Uint64Var(&sample, "sample", 0, "only the last N events")
	nf = addNATSFlags(f, nats.DefaultURL, "NATS holding the log")
	f.StringVar(&configPath, "config", "", "configuration file (default: driftwatch serve's, from --http, with the tables of its mappings_dir)")
	httpFlag(f, &httpAddr)
	auth.addFlags(f)
	outputFlag(f, &output, outTable, outJSON).aliases = map[string]string{"text": outTable}
	f.BoolVar(&allowChanges, "allow-changes", false, "changed canonical states are intended, not regressions")
	cmd.AddCommand(test)
	return cmd
}

func printBacktest(res *replay.BacktestResult) {
	printf(os.Stdout, "backtest over %d status events\n", res.Events)
	for _, p := range res.Platforms {
		printf(os.Stdout, "\n%s (v%d -> v%d): %d events", p.Platform, p.CurrentVersion, p.CandidateVersion, p.Events)
		if len(p.Changes) == 0 {
			printf(os.Stdout, ", no change\n")
			continue
		}
		printf(os.Stdout, "\n")
		for _, c := range p.Changes {
			mark := "REGRESSION"
			if c.Kind == replay.NewlyMapped {
				mark = "improvement"
			}
			printf(os.Stdout, "  %-11s %-14s %s=%q: %s -> %s (%d events, e.g. %s)\n", mark, c.Kind, c.Field, c.Raw, c.Current, c.Candidate, c.Events, c.Example)
		}
	}
	section := func(title string, ds []replay.MismatchDiff) {
		printf(os.Stdout, "\n%s: %d\n", title, len(ds))
		for i, d := range ds {
			if i == 10 {
				printf(os.Stdout, "  ... %d more\n", len(ds)-10)
				break
			}
			printf(os.Stdout, "  %s %s %s->%s\n", d.OrderID, d.Pattern, d.Source, strings.TrimSpace(d.Target))
		}
	}
	section("mismatches that would appear", res.Appear)
	section("mismatches that would disappear", res.Disappear)
}
