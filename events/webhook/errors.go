package webhook

import (
	"errors"
	"fmt"
)

// Reason is the stable code of a webhook error. Reasons are part of the
// outside contract: an HTTP handler answers with them and scripts match on
// them.
type Reason string

// Reasons. Verify returns the first five; Translate the others (and
// unknown_platform).
const (
	// ReasonMissingSignature: the headers the platform's scheme needs are
	// absent (no signature, or a signature without its id or timestamp).
	ReasonMissingSignature Reason = "missing_signature"
	// ReasonBadSignature: a signature is present but no configured secret
	// produces it (wrong secret, tampered body, malformed header).
	ReasonBadSignature Reason = "bad_signature"
	// ReasonExpired: the signature is right but its signed timestamp is
	// further from now than the tolerance, either way (a replay, or a
	// clock far off).
	ReasonExpired Reason = "expired"
	// ReasonNoSecret: no usable secret is configured for the platform;
	// nothing can be verified (a configuration error, not the sender's).
	ReasonNoSecret Reason = "no_secret"
	// ReasonUnknownPlatform: the platform name is not one this package
	// knows.
	ReasonUnknownPlatform Reason = "unknown_platform"
	// ReasonUnknownTopic: the delivery verified but its topic (event type,
	// scope, notification type) is not one driftwatch translates. Answer
	// it with success and drop it: the platform would retry an error.
	ReasonUnknownTopic Reason = "unknown_topic"
	// ReasonUntranslatable: the topic is known but the payload lacks what
	// an envelope needs (the order id, a status, a time), is not JSON, or
	// is JSON that driftwatch refuses (invalid UTF-8, a repeated key).
	ReasonUntranslatable Reason = "untranslatable"
	// ReasonNoStatus: the payload was understood but reports no status the
	// mapping tables could use (a Shopify refund without a refund
	// transaction). Nothing is lost by dropping it.
	ReasonNoStatus Reason = "no_status"
)

// Sentinel errors, one per reason: errors.Is(err, ErrBadSignature) is true
// for every *Error with that reason.
var (
	ErrMissingSignature = errors.New("webhook: missing signature")
	ErrBadSignature     = errors.New("webhook: bad signature")
	ErrExpired          = errors.New("webhook: signature timestamp outside the tolerance")
	ErrNoSecret         = errors.New("webhook: no secret configured")
	ErrUnknownPlatform  = errors.New("webhook: unknown platform")
	ErrUnknownTopic     = errors.New("webhook: unknown topic")
	ErrUntranslatable   = errors.New("webhook: untranslatable payload")
	ErrNoStatus         = errors.New("webhook: no status in payload")
)

var sentinels = map[Reason]error{
	ReasonMissingSignature: ErrMissingSignature,
	ReasonBadSignature:     ErrBadSignature,
	ReasonExpired:          ErrExpired,
	ReasonNoSecret:         ErrNoSecret,
	ReasonUnknownPlatform:  ErrUnknownPlatform,
	ReasonUnknownTopic:     ErrUnknownTopic,
	ReasonUntranslatable:   ErrUntranslatable,
	ReasonNoStatus:         ErrNoStatus,
}

// Error is what Verify and Translate return. Its text names the platform,
// the reason and what was wrong; it never holds a secret, a signature or a
// header value.
type Error struct {
	Platform string `json:"platform"`
	Reason   Reason `json:"reason"`
	// Detail says what was wrong in a sentence, e.g. "no configured secret
	// produces the X-Shopify-Hmac-Sha256 signature".
	Detail string `json:"detail"`
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("webhook: %s: %s", e.Platform, e.Reason)
	}
	return fmt.Sprintf("webhook: %s: %s: %s", e.Platform, e.Reason, e.Detail)
}

// Is makes errors.Is(err, ErrBadSignature) (and the other sentinels) true
// for an *Error of that reason.
func (e *Error) Is(target error) bool { return sentinels[e.Reason] == target }

// ErrorCode is the reason, as the dead-letter stream's
// Driftwatch-Error-Code header carries it (events.ErrorCode).
func (e *Error) ErrorCode() string { return string(e.Reason) }

// ReasonOf returns the reason of an *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func fail(platform string, reason Reason, format string, args ...any) *Error {
	return &Error{Platform: platform, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
