package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/events"
)

// fakeLog is a Publisher that keeps event ids: a known id is a duplicate,
// an order "BAD" is rejected, and the call numbered failOn (from 1) fails
// after its first event.
type fakeLog struct {
	ids    map[string]bool
	calls  int
	failOn int
}

func (f *fakeLog) PublishBatch(ctx context.Context, batch [][]byte) ([]events.Result, error) {
	f.calls++
	if f.ids == nil {
		f.ids = map[string]bool{}
	}
	res := make([]events.Result, len(batch))
	for i, data := range batch {
		if f.calls == f.failOn && i > 0 {
			res[i] = events.Result{Error: "nats: timeout"}
			continue
		}
		var ev struct {
			EventID string `json:"event_id"`
			OrderID string `json:"order_id"`
		}
		if json.Unmarshal(data, &ev) != nil || ev.OrderID == "BAD" {
			res[i] = events.Result{Outcome: events.Rejected, Code: "invalid_field", Error: "invalid event"}
			continue
		}
		if f.ids[ev.EventID] {
			res[i] = events.Result{Outcome: events.Duplicate, EventID: ev.EventID}
			continue
		}
		f.ids[ev.EventID] = true
		res[i] = events.Result{Outcome: events.Accepted, EventID: ev.EventID}
	}
	if f.calls == f.failOn {
		return res, errors.New("nats: timeout")
	}
	return res, nil
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func importString(t *testing.T, pub Publisher, input string, format events.FileFormat, lim Limits) (ImportStats, *StopError) {
	t.Helper()
	st, err := Import(context.Background(), pub, "erp", strings.NewReader(input), format, t0, lim, nil)
	var stop *StopError
	if err != nil && !errors.As(err, &stop) {
		t.Fatalf("import: %v", err)
	}
	if stop != st.Stopped {
		t.Fatalf("the error %v is not the result's Stopped %v", stop, st.Stopped)
	}
	if st.Rows != st.Accepted+st.Duplicate+st.Rejected || st.Rejected != len(st.Refused) {
		t.Fatalf("counts do not add up: %+v", st)
	}
	return st, stop
}

func refusedLines(st ImportStats) string {
	var b strings.Builder
	for _, r := range st.Refused {
		fmt.Fprintf(&b, "%d:%s:%s ", r.Line, r.Code, r.OrderID)
	}
	return strings.TrimSpace(b.String())
}

// TestImportReportsEveryRow: each row is applied or refused, by line; a
// quoted record over two lines is named by its first, blank lines are not
// rows, and a second import of the same file is all duplicates.
func TestImportReportsEveryRow(t *testing.T) {
	big := strings.Repeat("n", 8<<10+1)
	input := "\ufefforder_id,status,attributes.note\n" + // 1
		"A,Billed,\n" + // 2
		"B,Billed,\"two\n" + // 3
		"lines\"\n" + // 4
		"\n" + // 5
		"BAD,Billed,\n" + // 6
		"C,Billed," + big + "\n" + // 7
		"D,Billed,\n" + // 8
		"E,Billed," // 9, no line ending
	log := &fakeLog{}
	st, stop := importString(t, log, input, events.FormatCSV, Limits{})
	if stop != nil {
		t.Fatal(stop)
	}
	if st.Rows != 6 || st.Accepted != 4 || st.Rejected != 2 {
		t.Errorf("counts: %+v", st)
	}
	if want := []LineRange{{2, 3}, {8, 9}}; !reflect.DeepEqual(st.Applied, want) {
		t.Errorf("applied %v, want %v", st.Applied, want)
	}
	if got, want := refusedLines(st), "6:invalid_field:BAD 7:field_too_long:C"; got != want {
		t.Errorf("refused %q, want %q", got, want)
	}
	if !strings.Contains(st.Refused[1].Error, "column 3 (attributes.note) is 8193 bytes") {
		t.Errorf("field_too_long message: %s", st.Refused[1].Error)
	}
	st, _ = importString(t, log, input, events.FormatCSV, Limits{})
	if st.Duplicate != 4 || st.Accepted != 0 {
		t.Errorf("second import: %+v", st)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestImportStopsAtALongRecord: an unclosed quote would make the rest of
// the file one record; the import stops at 64 KiB of it, naming its line,
// having read little more, and the rows before it are applied.
func TestImportStopsAtALongRecord(t *testing.T) {
	head := "order_id,status\nA,Billed\nB,Billed\n"
	for _, tail := range []string{"C,\"Billed\n" + strings.Repeat("x,y\n", 4<<20), "C," + strings.Repeat("x", 16<<20)} {
		cr := &countingReader{r: strings.NewReader(head + tail)}
		st, err := Import(context.Background(), &fakeLog{}, "erp", cr, events.FormatCSV, t0, Limits{}, nil)
		var stop *StopError
		if !errors.As(err, &stop) || stop.Code != CodeRecordTooLong || stop.Line != 4 {
			t.Fatalf("stop: %v", err)
		}
		if !strings.Contains(stop.Error(), "line 4: ") || !strings.Contains(stop.Message, "64 KiB") {
			t.Errorf("message: %s", stop.Error())
		}
		if cr.n > 256<<10 {
			t.Errorf("read %d bytes of the input to find a record over 64 KiB", cr.n)
		}
		if st.Rows != 2 || st.Accepted != 2 || !reflect.DeepEqual(st.Applied, []LineRange{{2, 3}}) {
			t.Errorf("result: %+v", st)
		}
	}
}

// TestImportStopsAfterMaxRows: the row after MaxRows stops the import,
// named by its line; the rows before it are applied.
func TestImportStopsAfterMaxRows(t *testing.T) {
	input := "order_id,status\nA,x\n\nB,x\nC,x\nD,x\nE,x\n"
	st, stop := importString(t, &fakeLog{}, input, events.FormatCSV, Limits{MaxRows: 3})
	if stop == nil || stop.Code != CodeTooManyRows || stop.Line != 6 || !strings.Contains(stop.Message, "more than 3 rows") {
		t.Fatalf("stop: %v", stop)
	}
	if st.Rows != 3 || !reflect.DeepEqual(st.Applied, []LineRange{{2, 5}}) {
		t.Errorf("result: %+v", st)
	}
}

// TestImportStopsAtBadCSV: a stray quote stops the import with the line
// and column, after the rows before it.
func TestImportStopsAtBadCSV(t *testing.T) {
	st, stop := importString(t, &fakeLog{}, "order_id,status\nA,x\nB,x\"y\nC,x\n", events.FormatCSV, Limits{})
	if stop == nil || stop.Code != CodeBadCSV || stop.Line != 3 || !strings.Contains(stop.Message, "line 3, column 4") {
		t.Fatalf("stop: %v", stop)
	}
	if st.Rows != 1 || st.Accepted != 1 {
		t.Errorf("result: %+v", st)
	}
	if _, stop = importString(t, &fakeLog{}, "\n\n", events.FormatCSV, Limits{}); stop == nil || stop.Code != CodeBadCSV || !strings.Contains(stop.Message, "no CSV header") {
		t.Errorf("an empty file: %v", stop)
	}
}

// TestImportNDJSON: NDJSON rows are named by line too; a line that is not
// JSON goes to the log, which refuses it; a line over 64 KiB stops.
func TestImportNDJSON(t *testing.T) {
	input := `{"order_id":"A","status":"x"}` + "\n\n" + "not json\n" + `{"order":"BAD","status":"x"}` + "\n" + `{"id":"B","state":"x"}` + "\n" +
		`{"order_id":"C","status":"` + strings.Repeat("x", 64<<10) + `"}` + "\n" + `{"order_id":"D","status":"x"}` + "\n"
	st, stop := importString(t, &fakeLog{}, input, events.FormatNDJSON, Limits{})
	if stop == nil || stop.Code != CodeRecordTooLong || stop.Line != 6 {
		t.Fatalf("stop: %v", stop)
	}
	if got, want := refusedLines(st), "3:invalid_field: 4:invalid_field:BAD"; got != want {
		t.Errorf("refused %q, want %q", got, want)
	}
	if !reflect.DeepEqual(st.Applied, []LineRange{{1, 1}, {5, 5}}) || st.Rows != 4 {
		t.Errorf("result: %+v", st)
	}
}

// TestImportLogFailure: when the log fails to take a batch, the rows it did
// not confirm are refused as not confirmed and the import stops after the
// batch.
func TestImportLogFailure(t *testing.T) {
	var b strings.Builder
	b.WriteString("order_id,status\n")
	for i := 0; i < 1500; i++ {
		fmt.Fprintf(&b, "O-%d,x\n", i)
	}
	st, stop := importString(t, &fakeLog{failOn: 1}, b.String(), events.FormatCSV, Limits{})
	if stop == nil || stop.Code != CodeLogFailed || stop.Line != 1002 {
		t.Fatalf("stop: %v", stop)
	}
	if st.Rows != 1000 || st.Accepted != 1 || st.Rejected != 999 || st.Refused[0].Code != CodeNotConfirmed || st.Refused[0].Line != 3 {
		t.Errorf("result: rows %d accepted %d rejected %d first refused %+v", st.Rows, st.Accepted, st.Rejected, st.Refused[0])
	}
}

// TestSplitMatchesOneImport: importing the pieces of Split one by one and
// shifting their lines gives the result of one import of the whole file.
func TestSplitMatchesOneImport(t *testing.T) {
	var b strings.Builder
	b.WriteString("\norder_id,status,attributes.note\n")
	for i := 0; i < 40; i++ {
		switch i % 7 {
		case 0:
			fmt.Fprintf(&b, "O-%d,x,\"a\nb\"\n", i)
		case 1:
			b.WriteString("\n")
		case 2:
			fmt.Fprintf(&b, "BAD,x,%d\n", i)
		case 3:
			fmt.Fprintf(&b, "O-%d,x,%s\n", i, strings.Repeat("n", 9<<10))
		default:
			fmt.Fprintf(&b, "O-%d,x,\n", i)
		}
	}
	input := b.String()
	want, stop := importString(t, &fakeLog{}, input, events.FormatCSV, Limits{})
	if stop != nil {
		t.Fatal(stop)
	}
	for _, maxBytes := range []int{0, 100 << 10} {
		var got ImportStats
		pieces := 0
		err := Split(strings.NewReader(input), events.FormatCSV, Limits{MaxRows: 4}, maxBytes, func(piece []byte, delta int) error {
			pieces++
			if !bytes.HasPrefix(piece, []byte("order_id,status,attributes.note\n")) {
				t.Errorf("piece %d lacks the header:\n%s", pieces, piece)
			}
			st, stop := importString(t, &fakeLog{}, string(piece), events.FormatCSV, Limits{MaxRows: 4})
			if stop != nil {
				t.Fatalf("piece %d: %v", pieces, stop)
			}
			st.Shift(delta)
			got.Add(st)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if pieces < 8 {
			t.Errorf("%d pieces of at most 4 rows for %d rows", pieces, want.Rows)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("max %d bytes: pieces give\n%+v\none import gives\n%+v", maxBytes, got, want)
		}
	}
}

// TestSplitStopsAtALongRecord: Split sends the pieces before a record over
// the limit, then stops naming the record's line in the file.
func TestSplitStopsAtALongRecord(t *testing.T) {
	input := "order_id,status\nA,x\nB,x\nC,x\nD,\"" + strings.Repeat("x\n", 40<<10)
	var sent []string
	err := Split(strings.NewReader(input), events.FormatCSV, Limits{MaxRows: 2}, 0, func(piece []byte, delta int) error {
		sent = append(sent, fmt.Sprintf("%d:%q", delta, piece))
		return nil
	})
	var stop *StopError
	if !errors.As(err, &stop) || stop.Line != 5 || stop.Code != CodeRecordTooLong {
		t.Fatalf("stop: %v", err)
	}
	want := []string{`0:"order_id,status\nA,x\nB,x\n"`, `2:"order_id,status\nC,x\n"`}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
}

// TestImportBodyLimit: a body over http.MaxBytesReader's limit stops the
// import with code too_large at the record being read.
func TestImportBodyLimit(t *testing.T) {
	input := "order_id,status\n" + strings.Repeat("ORDER-000001,Billed\n", 100)
	body := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(input)), 16+20*10+5)
	st, err := Import(context.Background(), &fakeLog{}, "erp", body, events.FormatCSV, t0, Limits{}, nil)
	var stop *StopError
	if !errors.As(err, &stop) || stop.Code != CodeTooLarge || stop.Line != 12 {
		t.Fatalf("stop: %v", err)
	}
	if st.Rows != 10 || !reflect.DeepEqual(st.Applied, []LineRange{{2, 11}}) {
		t.Errorf("result: %+v", st)
	}
}
