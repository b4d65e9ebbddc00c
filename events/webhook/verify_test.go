package webhook

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	testBody = []byte(`{"id":1,"financial_status":"paid"}`)
	// testNow is 2023-11-14T22:13:20Z, Unix 1700000000.
	testNow = time.Unix(1700000000, 0).UTC()
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// TestSignatureVectors checks Verify against signatures computed outside
// this package (Python's hmac module, and the Standard Webhooks spec's own
// example), so that Sign and Verify cannot agree on a wrong scheme.
func TestSignatureVectors(t *testing.T) {
	cases := []struct {
		name, platform string
		header         http.Header
		body           []byte
		secret         string
		opts           Options
	}{
		{"shopify", Shopify, hdr(shopifyHMAC, "yL/jB+VZFFZ6a4Ene9fqWiKXwTVIRW8BZRlQSvdCQCo="), testBody, "hush", Options{}},
		{"stripe", Stripe, hdr(stripeSignature, "t=1700000000,v1=e59513d6dca2245e857c05a9afd206cf9d75995a4b2324491e403553e9f098d3"), testBody, "whsec_test_secret", Options{}},
		{"standard webhooks spec example", BigCommerce, hdr(swID, "msg_p5jXN8AQM9LWM0D4loKWxJek", swTimestamp, "1614265330",
			swSignature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
			[]byte(`{"test": 2432232314}`), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Options{Tolerance: 24 * 365 * 10 * time.Hour}},
		{"woocommerce, secret with entities", WooCommerce, hdr(wcSignature, "ZNpdP4VXb0aoCZKwX5cdGW/UHH9DYC/JksUouNCYrBA="), testBody, "a&amp;b&quot;c", Options{}},
		{"easypost, NFKD secret", EasyPost, hdr(epSignature, "hmac-sha256-hex=ad745535773e9be81bb36af4588705da5c05c36394127d4af312b43581e26d34"), testBody, "s\u00e9cret", Options{}},
		{"easypost v2", EasyPost, hdr(epTimestamp, "Tue, 14 Nov 2023 22:13:20 -0000", epPath, "/webhooks/easypost",
			epSignatureV2, "hmac-sha256-hex=744532b5a1cebc8ce3fd174cbcb9acc17f1a933f25bc855ffdfd1192fdfc5e72"), testBody, "se\u0301cret", Options{Path: "/webhooks/easypost"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := Request{Header: c.header, Body: c.body}
			if err := VerifyWith(c.platform, req, Secrets{[]byte(c.secret)}, testNow, c.opts); err != nil {
				t.Fatalf("valid vector rejected: %v", err)
			}
			if err := VerifyWith(c.platform, req, Secrets{[]byte(c.secret + "x")}, testNow, c.opts); ReasonOf(err) != ReasonBadSignature {
				t.Fatalf("wrong secret: got %v, want bad_signature", err)
			}
		})
	}
}

// schemes lists, per platform, how to strip its signature and whether it
// signs a timestamp.
var schemes = []struct {
	platform  string
	timed     bool
	signature []string // headers whose absence is missing_signature
}{
	{Shopify, false, []string{shopifyHMAC}},
	{Stripe, true, []string{stripeSignature}},
	{BigCommerce, true, []string{swSignature, swID, swTimestamp}},
	{WooCommerce, false, []string{wcSignature}},
	{EasyPost, true, []string{epSignatureV2, epSignature}},
	{Amazon, false, []string{DefaultSecretHeader}},
}

func TestVerify(t *testing.T) {
	current, previous := []byte("current-secret-0123456789"), []byte("previous-secret-9876543210")
	for _, s := range schemes {
		t.Run(s.platform, func(t *testing.T) {
			signed := func(secret []byte, body []byte, at time.Time) Request {
				return Request{Header: Sign(s.platform, body, secret, at), Body: body, Received: testNow}
			}
			check := func(name string, req Request, secrets Secrets, want Reason) {
				t.Helper()
				err := Verify(s.platform, req, secrets, testNow)
				if ReasonOf(err) != want {
					t.Errorf("%s: got %v, want %q", name, err, want)
				}
				if err != nil {
					for _, sec := range secrets {
						if len(sec) > 0 && strings.Contains(err.Error(), string(sec)) {
							t.Errorf("%s: error text holds a secret: %v", name, err)
						}
					}
				}
			}
			both := Secrets{current, previous}
			check("valid", signed(current, testBody, testNow), Secrets{current}, "")
			check("rotated: signed with the second of two secrets", signed(previous, testBody, testNow), both, "")
			check("rotated: signed with the first of two secrets", signed(current, testBody, testNow), both, "")
			check("wrong secret", signed([]byte("some-other-secret"), testBody, testNow), both, ReasonBadSignature)
			tampered := signed(current, testBody, testNow)
			tampered.Body = bytes.Replace(testBody, []byte("paid"), []byte("void"), 1)
			if s.platform == Amazon {
				check("tampered body (a shared secret does not sign the body)", tampered, both, "")
			} else {
				check("tampered body", tampered, both, ReasonBadSignature)
			}
			check("no secret configured", signed(current, testBody, testNow), Secrets{nil, {}}, ReasonNoSecret)
			for _, h := range s.signature {
				req := signed(current, testBody, testNow)
				req.Header.Del(h)
				if s.platform == EasyPost && h == epSignatureV2 {
					check("without the timestamped signature, the plain one", req, both, "")
					continue
				}
				if s.platform == EasyPost {
					req.Header.Del(epSignatureV2)
				}
				check("without "+h, req, both, ReasonMissingSignature)
			}
			check("no headers at all", Request{Header: http.Header{}, Body: testBody}, both, ReasonMissingSignature)
			if s.timed {
				check("signed 6 minutes ago", signed(current, testBody, testNow.Add(-6*time.Minute)), both, ReasonExpired)
				check("signed 6 minutes ahead", signed(current, testBody, testNow.Add(6*time.Minute)), both, ReasonExpired)
				check("signed 4 minutes ago", signed(current, testBody, testNow.Add(-4*time.Minute)), both, "")
				check("signed 4 minutes ahead", signed(current, testBody, testNow.Add(4*time.Minute)), both, "")
				old := signed(current, testBody, testNow.Add(-6*time.Minute))
				if err := VerifyWith(s.platform, old, both, testNow, Options{Tolerance: 10 * time.Minute}); err != nil {
					t.Errorf("a 10-minute tolerance refuses a 6-minute-old signature: %v", err)
				}
			} else {
				check("signed long ago (no timestamp in the scheme)", signed(current, testBody, testNow.Add(-72*time.Hour)), both, "")
			}
		})
	}
}

func TestVerifyUnknownPlatform(t *testing.T) {
	err := Verify("etsy", Request{Header: http.Header{}}, Secrets{[]byte("x")}, testNow)
	if !errors.Is(err, ErrUnknownPlatform) || ReasonOf(err) != ReasonUnknownPlatform {
		t.Fatalf("got %v", err)
	}
	if Sign("etsy", testBody, []byte("x"), testNow) != nil {
		t.Fatal("Sign of an unknown platform returned headers")
	}
}

func TestErrorsAreSentinels(t *testing.T) {
	err := Verify(Shopify, Request{Header: hdr(shopifyHMAC, "AAAA"), Body: testBody}, Secrets{[]byte("s")}, testNow)
	if !errors.Is(err, ErrBadSignature) || errors.Is(err, ErrExpired) {
		t.Fatalf("errors.Is: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Platform != Shopify || e.Reason != ReasonBadSignature {
		t.Fatalf("errors.As: %#v", err)
	}
	if !strings.HasPrefix(err.Error(), "webhook: shopify: bad_signature: ") {
		t.Fatalf("text: %q", err.Error())
	}
}

func TestStripeSeveralV1(t *testing.T) {
	secret := []byte("whsec_rolling")
	h := Sign(Stripe, testBody, secret, testNow)
	good := strings.SplitN(h.Get(stripeSignature), ",", 2)[1]
	// Stripe lists one v1 per active endpoint secret, and may add v0.
	h.Set(stripeSignature, "t="+strconv.FormatInt(testNow.Unix(), 10)+",v1="+strings.Repeat("ab", 32)+","+good+",v0=00")
	if err := Verify(Stripe, Request{Header: h, Body: testBody}, Secrets{secret}, testNow); err != nil {
		t.Fatalf("a valid v1 among others rejected: %v", err)
	}
	for _, bad := range []string{"t=abc,v1=00", "v1=" + strings.Repeat("ab", 32), "t=1700000000,v1=zz", "t=1,t=2,v1=00"} {
		h.Set(stripeSignature, bad)
		if err := Verify(Stripe, Request{Header: h, Body: testBody}, Secrets{secret}, testNow); ReasonOf(err) != ReasonBadSignature {
			t.Errorf("%q: got %v, want bad_signature", bad, err)
		}
	}
	h.Set(stripeSignature, "t=1700000000")
	if err := Verify(Stripe, Request{Header: h, Body: testBody}, Secrets{secret}, testNow); ReasonOf(err) != ReasonMissingSignature {
		t.Errorf("no v1: got %v, want missing_signature", err)
	}
}

func TestBigCommerceSecrets(t *testing.T) {
	client := []byte("bc-client-secret")
	// BigCommerce's examples pass base64(client secret) to the Standard
	// Webhooks library: the same key as the client secret itself.
	whsec := []byte("whsec_YmMtY2xpZW50LXNlY3JldA==")
	h := Sign(BigCommerce, testBody, client, testNow)
	for _, s := range []Secrets{{client}, {whsec}} {
		if err := Verify(BigCommerce, Request{Header: h, Body: testBody}, s, testNow); err != nil {
			t.Errorf("secret %s: %v", s[0], err)
		}
	}
	if err := Verify(BigCommerce, Request{Header: h, Body: testBody}, Secrets{[]byte("whsec_***")}, testNow); ReasonOf(err) != ReasonBadSignature {
		t.Errorf("a whsec_ secret that is not base64: got %v", err)
	}
	// Several signatures, space-separated; v1a (asymmetric) is ignored.
	h.Set(swSignature, "v1a,AAAA v1,AAAA "+h.Get(swSignature))
	if err := Verify(BigCommerce, Request{Header: h, Body: testBody}, Secrets{client}, testNow); err != nil {
		t.Errorf("a valid signature among others: %v", err)
	}
	// Without Standard Webhooks headers: a shared secret in a configured header.
	shared := Request{Header: hdr("X-Store-Secret", "s3cret-value"), Body: testBody}
	if err := VerifyWith(BigCommerce, shared, Secrets{[]byte("s3cret-value\n")}, testNow, Options{SecretHeader: "X-Store-Secret"}); err != nil {
		t.Errorf("shared secret: %v", err)
	}
	if err := Verify(BigCommerce, shared, Secrets{[]byte("s3cret-value")}, testNow); ReasonOf(err) != ReasonMissingSignature {
		t.Errorf("shared secret in another header than configured: got %v", err)
	}
}

func TestEasyPostForms(t *testing.T) {
	secret := []byte("s\u00e9cret") // é precomposed; EasyPost signs with its NFKD form
	h := SignWith(EasyPost, testBody, secret, testNow, Options{Path: "/hooks/ep"})
	req := Request{Header: h, Body: testBody}
	if err := VerifyWith(EasyPost, req, Secrets{[]byte("se\u0301cret")}, testNow, Options{Path: "/hooks/ep"}); err != nil {
		t.Fatalf("decomposed form of the same secret: %v", err)
	}
	if err := VerifyWith(EasyPost, req, Secrets{secret}, testNow, Options{Path: "/elsewhere"}); ReasonOf(err) != ReasonBadSignature {
		t.Errorf("X-Path other than the route: got %v", err)
	}
	// A wrong V2 signature is not rescued by a valid plain one.
	bad := h.Clone()
	bad.Set(epSignatureV2, epPrefix+strings.Repeat("00", 32))
	if err := Verify(EasyPost, Request{Header: bad, Body: testBody}, Secrets{secret}, testNow); ReasonOf(err) != ReasonBadSignature {
		t.Errorf("bad V2 with good V1: got %v", err)
	}
	// The timestamped form without the method in the signed string.
	ts := h.Get(epTimestamp)
	noMethod := h.Clone()
	noMethod.Set(epSignatureV2, "HMAC-SHA256-HEX="+hexMAC(easyPostKey(secret), []byte(ts+"/hooks/ep"), testBody))
	if err := Verify(EasyPost, Request{Header: noMethod, Body: testBody}, Secrets{secret}, testNow); err != nil {
		t.Errorf("V2 signed without the method: %v", err)
	}
	noDate := h.Clone()
	noDate.Set(epTimestamp, "yesterday")
	if err := Verify(EasyPost, Request{Header: noDate, Body: testBody}, Secrets{secret}, testNow); ReasonOf(err) != ReasonBadSignature {
		t.Errorf("X-Timestamp not a date: got %v", err)
	}
	noPath := h.Clone()
	noPath.Del(epPath)
	if err := Verify(EasyPost, Request{Header: noPath, Body: testBody}, Secrets{secret}, testNow); ReasonOf(err) != ReasonMissingSignature {
		t.Errorf("V2 without X-Path: got %v", err)
	}
}

func hexMAC(key []byte, parts ...[]byte) string {
	const digits = "0123456789abcdef"
	sum := mac(key, parts...)
	out := make([]byte, 0, 2*len(sum))
	for _, b := range sum {
		out = append(out, digits[b>>4], digits[b&15])
	}
	return string(out)
}

func TestSharedSecretHeaderName(t *testing.T) {
	o := Options{SecretHeader: "X-Api-Key"}
	h := SignWith(Amazon, testBody, []byte("key-123"), testNow, o)
	if h.Get("X-Api-Key") != "key-123" {
		t.Fatalf("SignWith put the secret in %v", h)
	}
	if err := VerifyWith(Amazon, Request{Header: h, Body: testBody}, Secrets{[]byte("key-123")}, testNow, o); err != nil {
		t.Fatal(err)
	}
	if err := VerifyWith(Amazon, Request{Header: hdr("X-Api-Key", "key-12"), Body: testBody}, Secrets{[]byte("key-123")}, testNow, o); ReasonOf(err) != ReasonBadSignature {
		t.Fatalf("a prefix of the secret: got %v", err)
	}
}

func TestHeaderNamesAnyCase(t *testing.T) {
	h := http.Header{"x-shopify-hmac-sha256": {Sign(Shopify, testBody, []byte("k"), testNow).Get(shopifyHMAC)}}
	if err := Verify(Shopify, Request{Header: h, Body: testBody}, Secrets{[]byte("k")}, testNow); err != nil {
		t.Fatal(err)
	}
}
