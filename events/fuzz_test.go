package events

import (
	"errors"
	"testing"
)

// FuzzParse checks the envelope decoder never panics, that every failure is
// a *ValidationError with at least one problem, and that an accepted event
// re-encodes to an envelope that is accepted again with the same meaning.
func FuzzParse(f *testing.F) {
	for _, c := range envelopeCases() {
		f.Add([]byte(c.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		out, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, out)
		}
		if back.EventID != ev.EventID || back.OrderID != ev.OrderID || back.Status != ev.Status || !back.Occurred.Equal(ev.Occurred) {
			t.Fatalf("round trip changed the event: %+v vs %+v", back, ev)
		}
	})
}
