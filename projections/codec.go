package projections

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// errCorrupt reports a value that does not decode.
var errCorrupt = errors.New("projections: corrupt value")

// enc appends fields to a byte slice in a fixed order: uvarints, varints and
// length-prefixed strings. It is the one encoding of every stored value, so
// equal states always produce equal bytes.
type enc struct{ b []byte }

func (e *enc) u(v uint64)    { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)     { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) s(v string)    { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) bool(v bool)   { e.b = append(e.b, boolByte(v)) }
func (e *enc) byte1(v uint8) { e.b = append(e.b, v) }
func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// dec reads what enc wrote; the first error sticks (and empties b, so the
// inlined fast paths, which do not look at err, read nothing after it).
type dec struct {
	b   []byte
	err error
	// alias makes strings share b's bytes instead of copying them: only
	// for bytes that are never modified afterwards (ScanOrdersRaw's).
	alias bool
}

// u reads a uvarint. Most are one byte (lengths, small numbers): that case
// is inlined.
func (d *dec) u() uint64 {
	if len(d.b) > 0 && d.b[0] < 0x80 {
		v := d.b[0]
		d.b = d.b[1:]
		return uint64(v)
	}
	return d.uLong()
}

func (d *dec) uLong() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.fail()
		return ""
	}
	var v string
	if d.alias && n > 0 {
		v = unsafe.String(&d.b[0], n) // shares bytes the caller never changes
	} else {
		v = string(d.b[:n])
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) fail() { d.err, d.b = errCorrupt, nil }

func (d *dec) byte1() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) bool() bool { return d.byte1() == 1 }

// seqBytes is a sequence as 8 bytes big-endian.
func appendSeq(b []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(b, seq) }
