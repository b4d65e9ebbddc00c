package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/events"
)

// Platform names. They are the names of the platforms' mapping tables
// (events/mapping).
const (
	Shopify     = "shopify"
	Stripe      = "stripe"
	BigCommerce = "bigcommerce"
	WooCommerce = "woocommerce"
	EasyPost    = "easypost"
	Amazon      = "amazon"
)

// DefaultTolerance is how far a signed timestamp (Stripe, Standard
// Webhooks, EasyPost's timestamped form) may be from now, either way.
const DefaultTolerance = 5 * time.Minute

// DefaultSecretHeader carries the shared secret of the schemes without a
// signature: BigCommerce without Standard Webhooks headers, and Amazon
// notifications relayed by an EventBridge API destination or an SQS relay.
const DefaultSecretHeader = "X-Driftwatch-Secret"

// Request is one delivery as received: its headers, its body exactly as
// read (signatures are over these bytes) and when it was received.
// Received is for the caller's records; Translate never uses it for
// occurred_at, which is always the payload's own time.
type Request struct {
	Header   http.Header
	Body     []byte
	Received time.Time
}

// Secrets are the secrets a platform's deliveries may be signed with. Two
// are valid at once while a secret is rotated: a delivery verifies if any
// one of them produces its signature. Empty entries are ignored.
type Secrets [][]byte

// Options adjust verification and signing. The zero value is the default.
type Options struct {
	// Tolerance is how far a signed timestamp may be from now, either
	// way; 0 means DefaultTolerance.
	Tolerance time.Duration
	// SecretHeader names the header carrying a shared secret (BigCommerce
	// without Standard Webhooks headers, Amazon); "" means
	// DefaultSecretHeader.
	SecretHeader string
	// Path is the request path the delivery was posted to. When set,
	// EasyPost's timestamped signature must name it in X-Path; Sign puts
	// it in X-Path (default "/").
	Path string
}

func (o Options) tolerance() time.Duration {
	if o.Tolerance > 0 {
		return o.Tolerance
	}
	return DefaultTolerance
}

func (o Options) secretHeader() string {
	if o.SecretHeader != "" {
		return o.SecretHeader
	}
	return DefaultSecretHeader
}

func (o Options) path() string {
	if o.Path != "" {
		return o.Path
	}
	return "/"
}

type platform struct {
	verify    func(req Request, keys Secrets, now time.Time, o Options) error
	sign      func(body, secret []byte, now time.Time, o Options) http.Header
	translate func(req Request) (*delivery, error)
}

var platforms = map[string]platform{
	Shopify:     {verifyShopify, signShopify, translateShopify},
	Stripe:      {verifyStripe, signStripe, translateStripe},
	BigCommerce: {verifyBigCommerce, signBigCommerce, translateBigCommerce},
	WooCommerce: {verifyWooCommerce, signWooCommerce, translateWooCommerce},
	EasyPost:    {verifyEasyPost, signEasyPost, translateEasyPost},
	Amazon:      {verifyAmazon, signAmazon, translateAmazon},
}

// Platforms lists the platforms this package verifies and translates, in
// alphabetical order.
func Platforms() []string {
	out := make([]string, 0, len(platforms))
	for p := range platforms {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func lookup(name string) (platform, error) {
	p, ok := platforms[name]
	if !ok {
		return platform{}, fail(name, ReasonUnknownPlatform, "want one of %s", strings.Join(Platforms(), ", "))
	}
	return p, nil
}

// Verify checks that req was sent by platform: its signature (or shared
// secret) against secrets and, where the scheme signs a timestamp, that the
// timestamp is within DefaultTolerance of now. It is VerifyWith with the
// default Options. It returns nil or an *Error whose reason is
// missing_signature, bad_signature, expired, no_secret or
// unknown_platform. Every comparison is constant-time, every secret is
// tried, and no error text holds a secret.
func Verify(platform string, req Request, secrets Secrets, now time.Time) error {
	return VerifyWith(platform, req, secrets, now, Options{})
}

// VerifyWith is Verify with options.
func VerifyWith(platform string, req Request, secrets Secrets, now time.Time, o Options) error {
	p, err := lookup(platform)
	if err != nil {
		return err
	}
	keys := make(Secrets, 0, len(secrets))
	for _, s := range secrets {
		if len(s) > 0 {
			keys = append(keys, s)
		}
	}
	if len(keys) == 0 {
		return fail(platform, ReasonNoSecret, "no non-empty secret is configured")
	}
	return p.verify(req, keys, now, o)
}

// Sign returns the headers platform would send with body signed with
// secret at now: the signature header and, where the scheme has them, its
// timestamp and id headers. It is SignWith with the default Options. It
// returns nil for an unknown platform. Verify accepts what Sign produces.
func Sign(platform string, body []byte, secret []byte, now time.Time) http.Header {
	return SignWith(platform, body, secret, now, Options{})
}

// SignWith is Sign with options (the path EasyPost signs, the shared
// secret's header name).
func SignWith(platform string, body []byte, secret []byte, now time.Time, o Options) http.Header {
	p, ok := platforms[platform]
	if !ok {
		return nil
	}
	return p.sign(body, secret, now, o)
}

// Translate turns a verified delivery into envelopes for system (a
// configured system id whose platform is platform). It returns the
// envelopes in the order they must be published (on equal occurred_at the
// one published later wins), the delivery id the envelopes' event ids are
// derived from (the same for every retry of the delivery), and nil; or an
// *Error whose reason is unknown_topic, untranslatable, no_status or
// unknown_platform. Every returned envelope passes events' Validate.
// Translate does not verify: call Verify first.
func Translate(platform string, req Request, system string) ([]events.Event, string, error) {
	p, err := lookup(platform)
	if err != nil {
		return nil, "", err
	}
	if !events.ValidSystemID(system) {
		return nil, "", fail(platform, ReasonUntranslatable, "%q is not a system id", system)
	}
	if err := checkBody(platform, req.Body); err != nil {
		return nil, "", err
	}
	d, err := p.translate(req)
	if err != nil {
		return nil, "", err
	}
	evs, err := d.envelopes(platform, system, req.Body)
	if err != nil {
		return nil, "", err
	}
	return evs, d.id, nil
}

// header returns the first value of name, matched without regard to case
// (a hand-built http.Header may hold a key that is not canonical).
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return strings.TrimSpace(v)
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return strings.TrimSpace(vs[0])
		}
	}
	return ""
}

// mac is HMAC-SHA256 of the concatenated parts under key.
func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// matchAny reports whether expected(key), for some key, equals some
// candidate. Every key and every candidate is compared, in constant time,
// whatever matched earlier: the time taken says nothing about which secret
// or signature matched.
func matchAny(keys Secrets, candidates [][]byte, expected func(key []byte) []byte) bool {
	ok := false
	for _, k := range keys {
		want := expected(k)
		if len(want) == 0 {
			continue
		}
		for _, c := range candidates {
			if hmac.Equal(want, c) {
				ok = true
			}
		}
	}
	return ok
}

// sharedSecretMatches compares a header value with every secret in constant
// time; hashing both first hides the secret's length as well. A header
// value arrives without surrounding white space, so a secret is compared
// without it too (a secret read from a file often ends in a newline).
func sharedSecretMatches(value string, keys Secrets) bool {
	got := sha256.Sum256([]byte(value))
	ok := false
	for _, k := range keys {
		k = bytes.TrimSpace(k)
		if len(k) == 0 {
			continue
		}
		want := sha256.Sum256(k)
		if hmac.Equal(got[:], want[:]) {
			ok = true
		}
	}
	return ok
}

func verifySharedSecret(platform string, req Request, keys Secrets, o Options) error {
	name := o.secretHeader()
	v := header(req.Header, name)
	if v == "" {
		return fail(platform, ReasonMissingSignature, "no %s header", name)
	}
	if !sharedSecretMatches(v, keys) {
		return fail(platform, ReasonBadSignature, "the %s header matches no configured secret", name)
	}
	return nil
}

// skew says how far a signed time is from now: "10m0s ago", "6m0s ahead".
func skew(t, now time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return (-d).String() + " ahead of now"
	}
	return d.String() + " ago"
}

// within reports whether t is within tolerance of now, either way.
func within(t, now time.Time, tolerance time.Duration) bool {
	d := now.Sub(t)
	return d <= tolerance && d >= -tolerance
}
