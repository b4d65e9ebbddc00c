package app_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/bench"
	"github.com/driftwatch/driftwatch/services/detector"
)

// TestOnePassAgreesWithPerSystemReaders: one log, with six systems,
// duplicates, out-of-order arrivals, faults, bad input and a subject of
// no configured system, is read three ways into fresh stores of the same
// data folder:
//
//   - half of it by the projectors alone (a consumer per system, no
//     detector), the rest by the one pass, which judges the first half
//     from what was projected and goes on from there (a store of the
//     per-system shape carried on);
//   - all of it by a consumer per system and the detector's own;
//   - all of it by the one pass.
//
// The three give the same projections (byte for byte) and the same
// mismatches, and each bad event is dead-lettered once.
func TestOnePassAgreesWithPerSystemReaders(t *testing.T) {
	cfg := apptest.Config(t, fmt.Sprintf(bench.Config, "1s"))
	dir := t.TempDir()
	w := bench.NewWorkload(7)
	w.FaultShare = 0.1
	var first, second [][]byte
	faults := 0
	for i := range 240 {
		lines, fault := w.Order(i)
		if fault {
			faults++
		}
		if i < 120 {
			first = append(first, lines...)
		} else {
			second = append(second, lines...)
		}
	}
	bad := func(k int) []byte { // its status has no type: rejected
		return fmt.Appendf(nil, `{"event_id":"bad-%d","order_id":"B-%08d","system":"erp","status":7,"occurred_at":"%s"}`, k, k, time.Now().UTC().Format(time.RFC3339))
	}
	publish := func(env *apptest.Env, lines [][]byte, k int) {
		t.Helper()
		for _, l := range lines {
			ev, err := events.Parse(l)
			if err != nil {
				t.Fatal(err)
			}
			msg := nats.NewMsg(events.InSubject(ev.System))
			msg.Data = l
			msg.Header.Set(events.HeaderMsgID, ev.System+":"+ev.EventID)
			if _, err := env.JS.PublishMsg(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range []*nats.Msg{{Subject: "driftwatch.in.erp", Data: bad(k)}, {Subject: "driftwatch.in.legacy", Data: bad(k + 1)}} {
			if _, err := env.JS.PublishMsg(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	type read struct {
		projections []byte
		mismatches  []string
	}
	readStore := func(env *apptest.Env) read {
		t.Helper()
		env.WaitSettled(t, 30*time.Second)
		var dump bytes.Buffer
		if err := env.App.Store.Dump(&dump); err != nil {
			t.Fatal(err)
		}
		ms, _, err := detector.ListMismatches(env.App.Store, detector.Filter{}, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, strings.Join([]string{m.AlertID, m.OrderID, m.Pattern, m.State, m.FlowFrom, m.FlowTo}, " "))
		}
		slices.Sort(out)
		return read{dump.Bytes(), out}
	}
	fresh := func() {
		t.Helper()
		if err := os.RemoveAll(filepath.Join(dir, app.StoreDir)); err != nil {
			t.Fatal(err)
		}
	}

	// Carried on: the projectors alone, then the one pass.
	env := apptest.Start(t, cfg, dir, func(o *app.Options) {
		o.Services = []string{app.ServiceIngest, app.ServiceProjector}
	})
	publish(env, first, 0)
	env.WaitApplied(t)
	env.Stop()
	env = apptest.Start(t, cfg, dir)
	publish(env, second, 2)
	carried := readStore(env)
	env.Stop()

	fresh()
	env = apptest.Start(t, cfg, dir, func(o *app.Options) { o.PerSystemReaders = true })
	perSystem := readStore(env)
	env.Stop()

	fresh()
	env = apptest.Start(t, cfg, dir)
	onePass := readStore(env)
	if n := len(onePass.mismatches); n < faults {
		t.Fatalf("%d mismatches for %d faulty orders:\n%s", n, faults, strings.Join(onePass.mismatches, "\n"))
	}
	for _, other := range []struct {
		name string
		read read
	}{{"a consumer per system", perSystem}, {"per system, then the one pass", carried}} {
		if !bytes.Equal(onePass.projections, other.read.projections) {
			t.Errorf("the projections of the one pass and of %s differ", other.name)
		}
		if !slices.Equal(onePass.mismatches, other.read.mismatches) {
			t.Errorf("mismatches:\none pass:\n%s\n%s:\n%s", strings.Join(onePass.mismatches, "\n"), other.name, strings.Join(other.read.mismatches, "\n"))
		}
	}
	// Each bad event once, however many stores read it: the dead-letter
	// stream keeps one copy per log sequence.
	// (The sentry dead-letters the unknown subject's on its own round.)
	apptest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		dlq, err := apptest.ReadStream(env.JS, events.DLQStream, "driftwatch.dlq.>")
		if err == nil && len(dlq) != 4 {
			err = fmt.Errorf("%d dead letters, want the 4 bad events once each", len(dlq))
		}
		return err
	})
}

// TestOnePassRetiresTheOtherShape: on a NATS server that outlives
// driftwatch (--nats-url), a start in one shape removes the consumers the
// other shape left there, which nobody would read again; their
// checkpoints are in the store the new shape starts from.
func TestOnePassRetiresTheOtherShape(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster")
	}
	_, url := apptest.StartCluster(t, 3)
	cfg := apptest.Config(t, "")
	dir := t.TempDir()
	start := func(perSystem bool) *apptest.Env {
		return apptest.Start(t, cfg, dir, func(o *app.Options) { o.NATSURL, o.PerSystemReaders = url, perSystem })
	}
	perSystem := []string{"dw-detector", "dw-proj-amazon", "dw-proj-carrier", "dw-proj-erp", "dw-proj-shop", "dw-proj-stripe", "dw-proj-wms"}
	env := start(true)
	consumersAre(t, env, perSystem...)
	env.Stop()
	env = start(false)
	consumersAre(t, env, "dw-pass")
	env.Stop()
	env = start(true)
	consumersAre(t, env, perSystem...)
}

// consumersAre waits until the durable consumers of the events stream are
// want.
func consumersAre(t *testing.T, env *apptest.Env, want ...string) {
	t.Helper()
	stream, err := env.JS.Stream(context.Background(), events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	apptest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var names []string
		list := stream.ConsumerNames(context.Background())
		for name := range list.Name() {
			names = append(names, name)
		}
		if err := list.Err(); err != nil {
			return err
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			return fmt.Errorf("consumers %v, want %v", names, want)
		}
		return nil
	})
}
