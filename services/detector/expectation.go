package detector

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"github.com/driftwatch/driftwatch/events/canonical"
)

// Expectations in the store: their keys and their fixed binary encoding
// (see doc.go for the key layout).

func expKey(x *Expectation) []byte {
	k := join(prefixExp, x.OrderID, x.From, x.To)
	k = append(k, 0, x.Dim, 0)
	return binary.BigEndian.AppendUint64(k, x.SourceSeq)
}

func expFlowPrefix(order, from, to string, dim uint8) []byte {
	k := join(prefixExp, order, from, to)
	return append(k, 0, dim, 0)
}

func dueKey(x *Expectation) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte(nil), prefixDue...), uint64(x.JudgeAt))
	return append(k, expKey(x)[len(prefixExp):]...)
}

// expectationVersion prefixes the binary encoding of an Expectation.
const expectationVersion = 1

// encode writes the expectation in a fixed binary layout (it is written and
// read once per event and flow: no reflection on this path).
func (x *Expectation) encode() []byte {
	b := make([]byte, 0, 96+len(x.OrderID)+len(x.From)+len(x.To)+len(x.SourceEventID))
	b = append(b, expectationVersion)
	for _, s := range []string{x.OrderID, x.From, x.To, x.SourceEventID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, x.Dim, byte(x.State), byte(x.Payment), byte(x.SourceState), byte(x.SourcePayment), boolByte(x.Manual), boolByte(x.Presence))
	b = binary.AppendUvarint(b, x.SourceSeq)
	for _, v := range []int64{x.Onset, x.Deadline, x.JudgeAt} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

var errBadExpectation = errors.New("detector: corrupt expectation")

// decodeExpectation reads what encode wrote.
func decodeExpectation(b []byte) (Expectation, error) {
	var x Expectation
	if len(b) == 0 || b[0] != expectationVersion {
		return x, errBadExpectation
	}
	b = b[1:]
	str := func() string {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			b = nil
			return ""
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	x.OrderID, x.From, x.To, x.SourceEventID = str(), str(), str(), str()
	if len(b) < 7 {
		return x, errBadExpectation
	}
	x.Dim, x.State, x.Payment = b[0], canonical.State(b[1]), canonical.Payment(b[2])
	x.SourceState, x.SourcePayment, x.Manual, x.Presence = canonical.State(b[3]), canonical.Payment(b[4]), b[5] == 1, b[6] == 1
	b = b[7:]
	seq, k := binary.Uvarint(b)
	if k <= 0 {
		return x, errBadExpectation
	}
	x.SourceSeq, b = seq, b[k:]
	for _, dst := range []*int64{&x.Onset, &x.Deadline, &x.JudgeAt} {
		v, k := binary.Varint(b)
		if k <= 0 {
			return x, errBadExpectation
		}
		*dst, b = v, b[k:]
	}
	return x, nil
}

// putExpectation writes an expectation and its due index entry.
// putExpectation stores an expectation and keeps the judgement floor at
// or below its judgement time. The floor is set from driftwatch's clock
// (the watermark) while judgement times come from the log's (received_at
// is the NATS server's timestamp): on a server whose clock runs behind,
// an expectation could land below the floor and never be judged. The
// floor follows what is stored, whatever the clocks say.
func (e *Engine) putExpectation(b *pebble.Batch, x *Expectation) error {
	e.mu.Lock()
	e.dueFloor = min(e.dueFloor, x.JudgeAt)
	e.mu.Unlock()
	return putExpectation(b, x)
}

func putExpectation(b *pebble.Batch, x *Expectation) error {
	v := x.encode()
	if err := b.Set(expKey(x), v, nil); err != nil {
		return err
	}
	return b.Set(dueKey(x), v, nil) // the due index carries the value: no lookup when judging
}

func deleteExpectation(b *pebble.Batch, x *Expectation) error {
	if err := b.Delete(expKey(x), nil); err != nil {
		return err
	}
	return b.Delete(dueKey(x), nil)
}

func expectationsOf(b *pebble.Batch, prefix []byte) ([]Expectation, error) {
	var out []Expectation
	err := scanPrefix(b, prefix, func(_, v []byte) error {
		x, err := decodeExpectation(v)
		if err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	return out, err
}
