package events

import (
	"errors"
	"strings"
)

// Error codes carried in the Driftwatch-Error-Code header and in rejected
// results. They are part of the outside contract: scripts match on them.
const (
	CodeTooLarge        = "too_large"
	CodeMalformedJSON   = "malformed_json"
	CodeMissingField    = "missing_field"
	CodeInvalidField    = "invalid_field"
	CodeUnknownField    = "unknown_field"
	CodeUnknownSystem   = "unknown_system"
	CodeSubjectMismatch = "subject_mismatch"
	// CodeInvalidUTF8: a key or string value is not valid UTF-8, or holds
	// an escape that stands for no character (half of a UTF-16 surrogate
	// pair). Such text is rejected, never repaired: encoding/json would
	// replace it with U+FFFD, silently changing an id.
	CodeInvalidUTF8 = "invalid_utf8"
	// CodeDuplicateKey: an object, at any depth, holds the same key more
	// than once. Such input is rejected, never resolved: a reader that kept
	// the first value and one that kept the last would see different
	// events.
	CodeDuplicateKey = "duplicate_key"
)

// ErrInvalidEvent is matched (errors.Is) by every *ValidationError.
var ErrInvalidEvent = errors.New("events: invalid event")

// Problem is one thing wrong with an event: the field, a stable code and a
// sentence that says what would be right.
type Problem struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// ValidationError lists every problem found in one event.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidEvent }

// Code is the code of the first problem, used as Driftwatch-Error-Code.
func (e *ValidationError) Code() string {
	if len(e.Problems) == 0 {
		return CodeInvalidField
	}
	return e.Problems[0].Code
}

// Add appends a problem.
func (e *ValidationError) Add(field, code, message string) {
	e.Problems = append(e.Problems, Problem{Field: field, Code: code, Message: message})
}

// OrNil returns e when it holds problems and nil otherwise.
func (e *ValidationError) OrNil() error {
	if e == nil || len(e.Problems) == 0 {
		return nil
	}
	return e
}

// ErrorCode returns the Driftwatch-Error-Code for err: the validation code
// when err is a *ValidationError, the code of an error that says its own
// (an ErrorCode method: a webhook's bad_signature), else invalid_field.
func ErrorCode(err error) string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Code()
	}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	return CodeInvalidField
}
