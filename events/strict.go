package events

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The strict reading of JSON text. encoding/json accepts two things in an
// envelope that change its meaning unseen: bytes that are not UTF-8 (it
// decodes each as U+FFFD) and a key repeated in one object (it keeps the
// last value, another reader may keep the first). Both are rejected, at
// every depth: invalid_utf8 and duplicate_key.
//
// textScanner checks JSON text for them, and for every other rule of JSON
// syntax, in one pass. The fast path runs it over the attributes object
// (its own reading of the envelope's top level checks the same things) in
// quick mode, giving up at the first problem; the slow path runs it over
// the whole input and lists the problems with their fields.

// maxTextProblems bounds the invalid_utf8 and duplicate_key problems listed
// for one input; past it the input is still rejected, the rest unlisted.
const maxTextProblems = 16

// maxNesting is the deepest nesting of objects and arrays accepted,
// counted from the outermost value: encoding/json's limit, so that both
// paths draw the line at the same place.
const maxNesting = 10000

// smallObject is the number of keys an object's repeats are looked for
// among by comparing each key with the ones before it; a larger object
// gets a map.
const smallObject = 16

// textScanner walks JSON text. Its methods return false when the text is
// not JSON or, in quick mode, at the first problem (bad is then set);
// otherwise problems are listed and the walk goes on.
type textScanner struct {
	data []byte
	i    int
	// base is added to offsets in messages: where data starts in the
	// input as sent.
	base  int
	quick bool

	bad bool // quick mode: a problem was found

	problems []Problem
	// tainted holds the top-level keys under which a problem was found
	// (the key itself, or anything in its value): their values are in
	// question and are not decoded.
	tainted map[string]bool

	// The keys of the objects being walked, innermost last: nkeys of
	// them, the first in small (inside the scanner, so the fast path's
	// scanner, on the stack, allocates nothing for them), the rest in more.
	small [smallObject]keySeen
	more  []keySeen
	nkeys int

	path []pathStep
}

// keySeen is a key met in an object: its text (escapes decoded) and the
// offset of its opening quote.
type keySeen struct {
	text []byte
	at   int
}

// pathStep is one step from the outermost value to the one being walked:
// a member's key, or an array index when index >= 0.
type pathStep struct {
	key   []byte
	index int
}

// fault is the first thing wrong with a string's text.
type fault struct {
	kind byte // 0: none; faultByte; faultSurrogate
	at   int  // offset of the byte, or of the escape's backslash
	b    byte
	r    rune
}

const (
	faultByte      = 1 // a byte that is not part of a UTF-8 sequence
	faultSurrogate = 2 // a \u escape of half a surrogate pair, alone
)

// document walks data as one JSON value with nothing after it but white
// space.
func (s *textScanner) document() bool {
	s.space()
	if !s.value(0) {
		return false
	}
	s.space()
	if s.i != len(s.data) {
		return s.fail()
	}
	return true
}

// value walks the value at s.i, which depth objects and arrays enclose.
func (s *textScanner) value(depth int) bool {
	if s.i >= len(s.data) {
		return s.fail()
	}
	switch c := s.data[s.i]; c {
	case '{':
		return s.object(depth + 1)
	case '[':
		return s.array(depth + 1)
	case '"':
		_, f, ok := s.str(false)
		if !ok {
			return false
		}
		return f.kind == 0 || s.textProblem("value", f)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

func (s *textScanner) object(depth int) bool {
	if depth > maxNesting {
		return s.fail()
	}
	s.i++
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return true
	}
	base := s.nkeys
	var index map[string]int // the keys, once there are more than smallObject
	if !s.quick {
		s.path = append(s.path, pathStep{index: -1})
	}
	for {
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return s.fail()
		}
		at := s.i
		key, f, ok := s.str(true)
		if !ok {
			return false
		}
		if !s.quick {
			s.path[len(s.path)-1].key = key
		}
		if f.kind != 0 && !s.textProblem("key", f) {
			return false
		}
		if first, dup := s.repeated(base, &index, key, at); dup && !s.duplicate(first, at) {
			return false
		}
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return s.fail()
		}
		s.i++
		s.space()
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.i >= len(s.data) {
			return s.fail()
		}
		switch s.data[s.i] {
		case ',':
			s.i++
			s.space()
			continue
		case '}':
			s.i++
			s.nkeys = base
			if !s.quick {
				s.path = s.path[:len(s.path)-1]
			}
			return true
		}
		return s.fail()
	}
}

// repeated reports whether key was met before in the object whose keys
// start at the base-th key of the stack (or are in *index), and where;
// else it records it.
func (s *textScanner) repeated(base int, index *map[string]int, key []byte, at int) (first int, dup bool) {
	if *index != nil {
		if first, dup := (*index)[string(key)]; dup {
			return first, true
		}
		(*index)[string(key)] = at
		return 0, false
	}
	for i := base; i < s.nkeys; i++ {
		if k := s.key(i); bytes.Equal(k.text, key) {
			return k.at, true
		}
	}
	if s.nkeys < len(s.small) {
		s.small[s.nkeys] = keySeen{text: key, at: at}
	} else {
		s.more = append(s.more[:s.nkeys-len(s.small)], keySeen{text: key, at: at})
	}
	s.nkeys++
	if s.nkeys-base > smallObject {
		m := make(map[string]int, 4*smallObject)
		for i := base; i < s.nkeys; i++ {
			m[string(s.key(i).text)] = s.key(i).at
		}
		*index = m
		s.nkeys = base
	}
	return 0, false
}

// key is the i-th key of the stack.
func (s *textScanner) key(i int) *keySeen {
	if i < len(s.small) {
		return &s.small[i]
	}
	return &s.more[i-len(s.small)]
}

func (s *textScanner) array(depth int) bool {
	if depth > maxNesting {
		return s.fail()
	}
	s.i++
	s.space()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return true
	}
	if !s.quick {
		s.path = append(s.path, pathStep{index: 0})
	}
	for n := 0; ; n++ {
		if !s.quick {
			s.path[len(s.path)-1].index = n
		}
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.i >= len(s.data) {
			return s.fail()
		}
		switch s.data[s.i] {
		case ',':
			s.i++
			s.space()
			continue
		case ']':
			s.i++
			if !s.quick {
				s.path = s.path[:len(s.path)-1]
			}
			return true
		}
		return s.fail()
	}
}

// str walks a string from its opening quote and returns its first fault.
// For a key (text true) it also returns the key's text: data's bytes when
// the key holds no escape, else a decoded copy.
func (s *textScanner) str(text bool) (out []byte, f fault, ok bool) {
	s.i++
	start := s.i
	var dec []byte
	decoded := false
	for s.i < len(s.data) {
		c := s.data[s.i]
		if c >= 0x20 && c < 0x80 && c != '"' && c != '\\' {
			if decoded {
				dec = append(dec, c)
			}
			s.i++
			continue
		}
		switch {
		case c == '"':
			end := s.i
			s.i++
			switch {
			case !text:
				return nil, f, true
			case decoded:
				return dec, f, true
			}
			return s.data[start:end], f, true
		case c == '\\':
			if text && !decoded {
				dec = append(make([]byte, 0, s.i-start+16), s.data[start:s.i]...)
				decoded = true
			}
			if s.i+1 >= len(s.data) {
				return nil, f, s.fail()
			}
			var r rune
			switch e := s.data[s.i+1]; e {
			case '"', '\\', '/':
				r = rune(e)
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				at := s.i
				r = s.hex4(s.i + 2)
				if r < 0 {
					return nil, f, s.fail()
				}
				s.i += 4
				if utf16.IsSurrogate(r) {
					// A high half followed by an escaped low half is one
					// character; anything else is no character at all.
					if lo := s.lowSurrogate(s.i + 2); r < 0xdc00 && lo >= 0 {
						r = utf16.DecodeRune(r, lo)
						s.i += 6
					} else {
						if f.kind == 0 {
							f = fault{kind: faultSurrogate, at: at, r: r}
						}
						r = utf8.RuneError
					}
				}
			default:
				return nil, f, s.fail()
			}
			if decoded {
				dec = utf8.AppendRune(dec, r)
			}
			s.i += 2
		case c < 0x20:
			return nil, f, s.fail()
		default:
			r, size := utf8.DecodeRune(s.data[s.i:])
			if r == utf8.RuneError && size == 1 && f.kind == 0 {
				f = fault{kind: faultByte, at: s.i, b: c}
			}
			if decoded {
				dec = append(dec, s.data[s.i:s.i+size]...)
			}
			s.i += size
		}
	}
	return nil, f, s.fail()
}

// hex4 reads four hex digits at i, or returns -1.
func (s *textScanner) hex4(i int) rune {
	if i+4 > len(s.data) {
		return -1
	}
	var r rune
	for _, c := range s.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// lowSurrogate reads an escaped low surrogate (\uDC00 to \uDFFF) at i, or
// returns -1.
func (s *textScanner) lowSurrogate(i int) rune {
	if i+6 > len(s.data) || s.data[i] != '\\' || s.data[i+1] != 'u' {
		return -1
	}
	if r := s.hex4(i + 2); r >= 0xdc00 && r <= 0xdfff {
		return r
	}
	return -1
}

func (s *textScanner) literal(word string) bool {
	if len(s.data)-s.i < len(word) || string(s.data[s.i:s.i+len(word)]) != word {
		return s.fail()
	}
	s.i += len(word)
	return true
}

// number walks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *textScanner) number() bool {
	d := s.data
	i := s.i
	if i < len(d) && d[i] == '-' {
		i++
	}
	digits := func() bool {
		from := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i > from
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		return s.fail()
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return s.fail()
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return s.fail()
		}
	}
	s.i = i
	return true
}

func (s *textScanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// fail reports that the text is not JSON.
func (s *textScanner) fail() bool { return false }

// textProblem reports f, found in a key or a value ("key", "value") at the
// current path.
func (s *textScanner) textProblem(where string, f fault) bool {
	if !s.found() {
		return false
	}
	if s.listing() {
		var msg string
		if f.kind == faultByte {
			msg = fmt.Sprintf("%s is not valid UTF-8 (byte 0x%02X at offset %d)", where, f.b, s.base+f.at)
		} else {
			msg = fmt.Sprintf(`%s holds \u%04x, half of a UTF-16 surrogate pair without the other half (at offset %d), which is not a character`, where, f.r, s.base+f.at)
		}
		s.problems = append(s.problems, Problem{Field: s.field(), Code: CodeInvalidUTF8, Message: msg})
	}
	return true
}

// duplicate reports the key at the current path, met at offset at and
// first at offset first.
func (s *textScanner) duplicate(first, at int) bool {
	if !s.found() {
		return false
	}
	if s.listing() {
		s.problems = append(s.problems, Problem{Field: s.field(), Code: CodeDuplicateKey,
			Message: fmt.Sprintf("key appears more than once in the same object (at offsets %d and %d); each key may appear only once", s.base+first, s.base+at)})
	}
	return true
}

// found records that a problem was found at the current path. It returns
// false in quick mode: the walk stops.
func (s *textScanner) found() bool {
	if s.quick {
		s.bad = true
		return false
	}
	if len(s.path) > 0 && s.path[0].index < 0 {
		if s.tainted == nil {
			s.tainted = map[string]bool{}
		}
		s.tainted[string(appendText(nil, s.path[0].key))] = true
	}
	return true
}

func (s *textScanner) listing() bool { return len(s.problems) < maxTextProblems }

// field names the current path: keys joined with dots, array indexes in
// brackets (attributes.lines[1].sku); bytes that are not UTF-8 show as
// U+FFFD.
func (s *textScanner) field() string {
	var b []byte
	for i, st := range s.path {
		if st.index >= 0 {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(st.index), 10)
			b = append(b, ']')
			continue
		}
		if i > 0 {
			b = append(b, '.')
		}
		b = appendText(b, st.key)
	}
	return string(b)
}

// appendText appends b with every byte that is not part of a UTF-8
// sequence replaced by U+FFFD, as encoding/json decodes it.
func appendText(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// isTextCode reports whether code is about the text itself rather than a
// field's value.
func isTextCode(code string) bool { return code == CodeInvalidUTF8 || code == CodeDuplicateKey }
