package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/projections"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
	"github.com/driftwatch/driftwatch/services/rebuild"
)

// carryDetectorState copies the detector's and the policy's state
// (mismatches, expectations, outbox, ops alerts, reports, the detector's
// checkpoint) from the live store into the rebuilt one, then resolves the
// unmapped_status findings the current tables map.
func carryDetectorState(live *projections.Store, fresh string, cfg *config.Config) (int, error) {
	dst, err := projections.Open(fresh, projections.Options{CacheSize: 1 << 20})
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	if live != nil {
		prefixes := append(append([]string{}, projections.ServicePrefixes...), projections.ConsumerKeys(detector.ConsumerName)...)
		if _, err := live.CopyPrefixes(dst, prefixes...); err != nil {
			return 0, fmt.Errorf("carry the detector's state over: %w", err)
		}
	}
	eng, err := detector.NewEngine(cfg, dst)
	if err != nil {
		return 0, err
	}
	b := dst.NewBatch()
	n, err := eng.ResolveNowMapped(b, time.Now())
	if err != nil {
		b.Close()
		return 0, err
	}
	return n, dst.Commit(b)
}

func newRebuildCmd() *cobra.Command {
	var configPath, dataDir, output string
	var nf *natsFlags
	var quiet, dropState bool
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild every projection from the log into a fresh store and swap it in",
		Long: `Rebuild every projection from the log (DRIFTWATCH_EVENTS) into a fresh
Pebble store and swap it in: needed after a mapping table changes. Stop
driftwatch serve on this data folder first; the rebuild holds the store's lock
while it runs. It runs without serve, so it reads the configuration file
itself: give serve's with --config FILE (or DRIFTWATCH_CONFIG), and serve's
data folder with --data DIR (or DRIFTWATCH_DATA).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger()
			if err != nil {
				return err
			}
			cfg, err := config.LoadFile(configPath)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rebuild runs without driftwatch serve, so it reads serve's configuration file itself: %w: give it with --config FILE or DRIFTWATCH_CONFIG", err)
			}
			if err != nil {
				return err
			}
			if nf.URL() == "" {
				// The embedded server's log is in the data folder.
				if _, err := os.Stat(filepath.Join(dataDir, "jetstream")); errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("no log in the data folder %s (%s/jetstream is missing): give serve's data folder with --data DIR or DRIFTWATCH_DATA", dataDir, dataDir)
				}
			}
			if err := broker.CheckWritable(dataDir); err != nil {
				return err
			}
			live := filepath.Join(dataDir, app.StoreDir)
			// Hold the live store's lock from the first read to the swap,
			// and the rebuilt store's from its last write to the swap: a
			// serve started meanwhile fails on either instead of opening a
			// store about to be replaced.
			liveLock, err := projections.LockDir(live)
			if errors.Is(err, projections.ErrInUse) {
				return fmt.Errorf("the store %s is in use (is driftwatch serve running on %s?): stop it first", live, dataDir)
			}
			if err != nil {
				return err
			}
			defer liveLock.Release()
			held, err := projections.Open(live, projections.Options{CacheSize: 1 << 20, Lock: liveLock})
			if errors.Is(err, projections.ErrFormatVersion) {
				if !dropState {
					return fmt.Errorf("%w\nits mismatches, audit trails, ops alerts and reports cannot be read by this driftwatch, so a rebuild would drop them; run rebuild --drop-state to rebuild the projections without them", err)
				}
				log.Warn().Err(err).Msg("rebuilding without the old store's mismatches, audit trails, ops alerts and reports (--drop-state)")
				held = nil
			} else if err != nil {
				return err
			}
			closeHeld := func() {
				if held != nil {
					held.Close()
					held = nil
				}
			}
			defer closeHeld()
			b, err := broker.Start(broker.Options{URL: nf.URL(), DataDir: dataDir, Listen: "127.0.0.1:-1",
				SyncAlways: cfg.SyncAlways(), SyncInterval: cfg.SyncInterval(), Logger: log, ClientName: "driftwatch-rebuild",
				Auth: app.NATSAuth(cfg), Client: nf.client()})
			if err != nil {
				return err
			}
			defer b.Close()
			fresh := fmt.Sprintf("%s.rebuild-%d", live, time.Now().UnixNano())
			var bar *progressbar.ProgressBar
			opts := rebuild.Options{JS: b.JS, Applier: projector.NewApplier(cfg), Dir: fresh}
			if !quiet && isTerminal(os.Stderr) {
				opts.Progress = func(done, total uint64) {
					if bar == nil {
						bar = progressbar.Default(int64(total), "rebuilding")
					}
					_ = bar.Set64(int64(done))
				}
			}
			st, err := rebuild.Build(context.WithoutCancel(cmd.Context()), opts)
			if bar != nil {
				_ = bar.Finish()
			}
			resolved := 0
			if err == nil {
				resolved, err = carryDetectorState(held, fresh, cfg)
			}
			closeHeld()
			var freshLock *projections.DirLock
			if err == nil {
				freshLock, err = projections.LockDir(fresh)
			}
			if err != nil {
				_ = os.RemoveAll(fresh)
				return err
			}
			err = rebuild.Swap(live, fresh)
			_ = freshLock.Release()
			if err != nil {
				return err
			}
			if output == outJSON {
				return printJSON(struct {
					rebuild.Stats
					ResolvedUnmapped int `json:"resolved_unmapped"`
				}{st, resolved})
			}
			printf(os.Stdout, "rebuilt %d events up to sequence %d in %s (%.0f events/s): %d applied, %d late, %d acks, %d duplicates, %d rejected\n",
				st.Events, st.LastSeq, st.Elapsed.Round(time.Millisecond), st.EventsPerSec, st.Applied, st.Late, st.Acks, st.Duplicates, st.Rejected)
			if resolved > 0 {
				printf(os.Stdout, "%d unmapped_status findings are mapped now and resolved (published when serve starts)\n", resolved)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "driftwatch.yaml", "serve's configuration file (DRIFTWATCH_CONFIG)")
	f.StringVar(&dataDir, "data", "data", "serve's data folder (DRIFTWATCH_DATA)")
	outputFlag(f, &output, outTable, outJSON)
	nf = addNATSFlags(f, "", "read the log from an existing NATS instead of the embedded store")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.BoolVar(&dropState, "drop-state", false, "rebuild a store of another format version, dropping its mismatches, audit trails, ops alerts and reports")
	return cmd
}
