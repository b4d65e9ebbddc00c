package detector

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestJudge runs the judgement scripts in testdata/judge, one file per
// theme. Each command in a script is followed by what it did, so a reader
// follows a case event by event. A case is a block
//
//	subtest NAME
//	...
//	subtest end
//
// run on a fresh store by the timeline of engine_test.go: the same
// configuration, and times are durations from t0. The commands:
//
//	event at=T [recv=T] system=S status=X [field=F] [actor=A] [order=O] [id=I] [tz=+05:30] [kind=snapshot]
//	ack at=T [recv=T] system=S of=SYSTEM:EVENT_ID [order=O]
//	tick at=T
//	resolve pattern=P from=S to=S [order=O]
//	expectations
//
// An event occurred at T and was received at T (or at recv); order defaults
// to ORD-1 and id to SYSTEM-N. A value with spaces is written in
// parentheses: status=(Pending Fulfillment). Events are received in script
// order, and time never goes back. event and ack first judge what is due
// when the event is received, as the detector does, then apply the event.
// kind=snapshot makes the event a row of an imported export (missing_event).
// tick judges what is due at T; resolve closes a mismatch by hand at the
// latest time of the case; expectations lists the open expectations.
//
// The output of event, ack, tick and resolve, in this order:
//
//	judged X              expectation X was judged (in due order): it
//	                      held, or an alert below opened (or it repeated
//	                      an open one, which queues nothing)
//	t=T STATE SEVERITY    an alert the engine queued, its message on the
//	PATTERN order= ...    next line when it opens
//	+ X                   the event recorded expectation X
//	- X                   the event dropped X unjudged (a cancellation
//	                      supersedes the flow's forward expectations)
//
// An expectation X reads
//
//	ORDER FROM->TO DIMENSION=STATE deadline=T judge_at=T [manual] [presence]
//
// A case named healthy_* must raise no alert, whatever its expected output
// says. Rewrite the expected output with go test -run TestJudge -rewrite.
func TestJudge(t *testing.T) {
	datadriven.Walk(t, "testdata/judge", func(t *testing.T, path string) {
		s := &judgeScript{}
		datadriven.RunTest(t, path, s.run)
	})
}

// judgeScript is the state of one script: the case being run.
type judgeScript struct {
	tl   *timeline
	last time.Duration // the case's latest time: an event's receipt or a tick
}

func (s *judgeScript) run(t *testing.T, d *datadriven.TestData) string {
	if s.tl == nil || s.tl.t != t {
		s.tl, s.last = newTimeline(t), 0 // a new case
	}
	var out strings.Builder
	switch d.Cmd {
	case "event", "ack":
		allowed := []string{"at", "recv", "system", "order", "id"}
		if d.Cmd == "event" {
			allowed = append(allowed, "status", "field", "actor", "tz", "kind")
		} else {
			allowed = append(allowed, "of")
		}
		checkArgs(t, d, allowed...)
		at := durArg(t, d, "at")
		recv := at
		if d.HasArg("recv") {
			recv = durArg(t, d, "recv")
		}
		s.advance(t, d, recv)
		kv := map[string]string{}
		for _, k := range []string{"field", "actor", "order", "id", "tz", "kind"} {
			if v, ok := strArg(d, k); ok {
				kv[k] = v
			}
		}
		system := mustArg(t, d, "system")
		status, ackOf := "", ""
		if d.Cmd == "ack" {
			ackOf = mustArg(t, d, "of")
		} else {
			status = mustArg(t, d, "status")
		}
		s.judge(&out, recv)
		before := s.tl.expectations()
		mark := s.tl.out.Len()
		s.tl.event(at, recv, system, kv, status, ackOf)
		out.WriteString(s.tl.out.String()[mark:])
		after := s.tl.expectations()
		for _, x := range missing(after, before) {
			fmt.Fprintf(&out, "+ %s\n", fmtExpectation(&x))
		}
		for _, x := range missing(before, after) {
			fmt.Fprintf(&out, "- %s\n", fmtExpectation(&x))
		}
	case "tick":
		checkArgs(t, d, "at")
		at := durArg(t, d, "at")
		s.advance(t, d, at)
		s.judge(&out, at)
	case "resolve":
		checkArgs(t, d, "pattern", "from", "to", "order")
		order := "ORD-1"
		if v, ok := strArg(d, "order"); ok {
			order = v
		}
		mark := s.tl.out.Len()
		s.tl.resolve(order, mustArg(t, d, "pattern"), mustArg(t, d, "from"), mustArg(t, d, "to"), t0.Add(s.last))
		out.WriteString(s.tl.out.String()[mark:])
	case "expectations":
		checkArgs(t, d)
		for _, x := range s.tl.expectations() {
			fmt.Fprintf(&out, "%s\n", fmtExpectation(&x))
		}
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	if name := t.Name(); strings.HasPrefix(name[strings.LastIndex(name, "/")+1:], "healthy") && s.tl.out.Len() > 0 {
		d.Fatalf(t, "a healthy case raised alerts:\n%s", s.tl.out.String())
	}
	return out.String()
}

// judge judges what is due at script time at and writes the expectations
// judged and the alerts they queued.
func (s *judgeScript) judge(out *strings.Builder, at time.Duration) {
	before := s.tl.expectations()
	mark := s.tl.out.Len()
	s.tl.judge(t0.Add(at))
	judged := missing(before, s.tl.expectations())
	sort.SliceStable(judged, func(i, j int) bool { return judged[i].JudgeAt < judged[j].JudgeAt }) // as the due index orders them
	for _, x := range judged {
		fmt.Fprintf(out, "judged %s\n", fmtExpectation(&x))
	}
	out.WriteString(s.tl.out.String()[mark:])
}

// advance moves the case's clock to at; time never goes back.
func (s *judgeScript) advance(t *testing.T, d *datadriven.TestData, at time.Duration) {
	if at < s.last {
		d.Fatalf(t, "time %s is before the case's latest time %s", at, s.last)
	}
	s.last = at
}

// missing lists the expectations of a that b lacks.
func missing(a, b []Expectation) []Expectation {
	in := map[string]bool{}
	for i := range b {
		in[string(expKey(&b[i]))] = true
	}
	var out []Expectation
	for _, x := range a {
		if !in[string(expKey(&x))] {
			out = append(out, x)
		}
	}
	return out
}

func fmtExpectation(x *Expectation) string {
	want := x.State.String()
	if x.Dim == DimPayment {
		want = x.Payment.String()
	}
	s := fmt.Sprintf("%s %s->%s %s=%s deadline=%s judge_at=%s", x.OrderID, x.From, x.To, dimName(x.Dim), want,
		time.Duration(x.Deadline-t0.UnixNano()), time.Duration(x.JudgeAt-t0.UnixNano()))
	if x.Manual {
		s += " manual"
	}
	if x.Presence {
		s += " presence"
	}
	return s
}

// checkArgs fails on an argument the command does not take, so that a
// misspelt key is not silently ignored.
func checkArgs(t *testing.T, d *datadriven.TestData, allowed ...string) {
	t.Helper()
	for _, a := range d.CmdArgs {
		ok := false
		for _, k := range allowed {
			ok = ok || a.Key == k
		}
		if !ok {
			d.Fatalf(t, "%s takes no argument %q", d.Cmd, a.Key)
		}
	}
}

// strArg is an argument's value; a value in parentheses may hold spaces
// (the parser splits it at commas, joined back here).
func strArg(d *datadriven.TestData, key string) (string, bool) {
	a, ok := d.Arg(key)
	if !ok {
		return "", false
	}
	return strings.Join(a.Vals, ", "), true
}

func mustArg(t *testing.T, d *datadriven.TestData, key string) string {
	t.Helper()
	v, ok := strArg(d, key)
	if !ok || v == "" {
		d.Fatalf(t, "%s needs %s=", d.Cmd, key)
	}
	return v
}

func durArg(t *testing.T, d *datadriven.TestData, key string) time.Duration {
	t.Helper()
	v := mustArg(t, d, key)
	at, err := time.ParseDuration(v)
	if err != nil {
		d.Fatalf(t, "%s=%s: %v", key, v, err)
	}
	return at
}
