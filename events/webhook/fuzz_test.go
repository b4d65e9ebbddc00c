package webhook

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzVerify checks what every verifier promises: no panic, nil or an
// *Error with a verification reason, and a text without the secret.
func fuzzVerify(t *testing.T, platform string, req Request, secret []byte, o Options) {
	t.Helper()
	err := VerifyWith(platform, req, Secrets{secret}, testNow, o)
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("untyped error: %v", err)
	}
	switch e.Reason {
	case ReasonMissingSignature, ReasonBadSignature, ReasonExpired, ReasonNoSecret:
	default:
		t.Fatalf("reason %q from Verify", e.Reason)
	}
	// The text must not depend on the secret: another secret of the same
	// length gives the same text whenever it fails for the same reason (a
	// right secret can get further: to expired).
	other := make([]byte, len(secret))
	for i, b := range secret {
		other[i] = b ^ 0x5a
	}
	if err2 := VerifyWith(platform, req, Secrets{other}, testNow, o); ReasonOf(err2) == e.Reason && err2.Error() != err.Error() {
		t.Fatalf("error text depends on the secret: %q vs %q", err, err2)
	}
	if !utf8.ValidString(err.Error()) {
		t.Fatalf("error text is not UTF-8: %q", err.Error())
	}
}

// roundTrip checks that Verify accepts what Sign produced.
func roundTrip(t *testing.T, platform string, body, secret []byte, o Options) {
	t.Helper()
	if len(secret) == 0 {
		return
	}
	h := SignWith(platform, body, secret, testNow, o)
	if err := VerifyWith(platform, Request{Header: h, Body: body}, Secrets{[]byte("another secret"), secret}, testNow, o); err != nil {
		t.Fatalf("Verify refused what Sign produced: %v", err)
	}
}

func FuzzStripeSignatureHeader(f *testing.F) {
	f.Add("t=1700000000,v1=e59513d6dca2245e857c05a9afd206cf9d75995a4b2324491e403553e9f098d3", testBody, []byte("whsec_test_secret"))
	f.Add("t=1700000000,v1=00,v0=11,v1=", []byte("{}"), []byte("k"))
	f.Add("t=,v1", []byte(""), []byte(""))
	f.Add(",,t=99999999999999999999,v1=zz", []byte("x"), []byte("s"))
	f.Fuzz(func(t *testing.T, header string, body, secret []byte) {
		sh, reason, _ := parseStripeHeader(header)
		if reason == "" && len(sh.v1) == 0 {
			t.Fatal("parsed without a v1")
		}
		fuzzVerify(t, Stripe, Request{Header: hdr(stripeSignature, header), Body: body}, secret, Options{})
		roundTrip(t, Stripe, body, secret, Options{})
	})
}

func FuzzStandardWebhooksSignature(f *testing.F) {
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`), []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	f.Add("id", "abc", "v1a,xx v1,=== v2,aa", []byte("{}"), []byte("whsec_"))
	f.Add("", "", "", []byte(""), []byte("plain"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body, secret []byte) {
		fuzzVerify(t, BigCommerce, Request{Header: hdr(swID, id, swTimestamp, ts, swSignature, sig), Body: body}, secret, Options{})
		if _, ok := standardKey(secret); ok { // a whsec_ secret that is not base64 verifies nothing
			roundTrip(t, BigCommerce, body, secret, Options{})
		}
	})
}

func FuzzEasyPostSignature(f *testing.F) {
	f.Add("hmac-sha256-hex=ad745535773e9be81bb36af4588705da5c05c36394127d4af312b43581e26d34", "", "", "", testBody, []byte("s\u00e9cret"))
	f.Add("", "hmac-sha256-hex=744532b5a1cebc8ce3fd174cbcb9acc17f1a933f25bc855ffdfd1192fdfc5e72", "Tue, 14 Nov 2023 22:13:20 -0000", "/webhooks/easypost", testBody, []byte("se\u0301cret"))
	f.Add("HMAC-SHA256-HEX=zz", "x", "Mon, 99 Foo", "", []byte("{}"), []byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, v1, v2, ts, path string, body, secret []byte) {
		h := hdr(epSignature, v1, epSignatureV2, v2, epTimestamp, ts, epPath, path)
		fuzzVerify(t, EasyPost, Request{Header: h, Body: body}, secret, Options{})
		// A header value is visible text without surrounding blanks.
		o := Options{Path: "/" + strings.Map(func(r rune) rune {
			if r <= ' ' || r >= 0x7f {
				return -1
			}
			return r
		}, path)}
		roundTrip(t, EasyPost, body, secret, o)
	})
}

func FuzzShopifySignature(f *testing.F) {
	f.Add("yL/jB+VZFFZ6a4Ene9fqWiKXwTVIRW8BZRlQSvdCQCo=", testBody, []byte("hush"))
	f.Add("not base64!", []byte(""), []byte("k"))
	f.Fuzz(func(t *testing.T, sig string, body, secret []byte) {
		fuzzVerify(t, Shopify, Request{Header: hdr(shopifyHMAC, sig), Body: body}, secret, Options{})
		roundTrip(t, Shopify, body, secret, Options{})
	})
}

func FuzzWooCommerceSignature(f *testing.F) {
	f.Add("ZNpdP4VXb0aoCZKwX5cdGW/UHH9DYC/JksUouNCYrBA=", testBody, []byte("a&amp;b&quot;c"))
	f.Add("====", []byte("webhook_id=1"), []byte("&#039;&#x27;&lt;"))
	f.Fuzz(func(t *testing.T, sig string, body, secret []byte) {
		fuzzVerify(t, WooCommerce, Request{Header: hdr(wcSignature, sig), Body: body}, secret, Options{})
		roundTrip(t, WooCommerce, body, secret, Options{})
	})
}

func FuzzSharedSecretHeader(f *testing.F) {
	f.Add("s3cret", []byte("s3cret"))
	f.Add("", []byte(" \n"))
	f.Add("s3cre", []byte("s3cret\n"))
	f.Fuzz(func(t *testing.T, value string, secret []byte) {
		req := Request{Header: hdr(DefaultSecretHeader, value), Body: testBody}
		fuzzVerify(t, Amazon, req, secret, Options{})
		fuzzVerify(t, BigCommerce, req, secret, Options{})
		// A header value has no line breaks or surrounding blanks.
		if s := strings.TrimSpace(string(secret)); s != "" && !strings.ContainsAny(s, "\r\n") {
			roundTrip(t, Amazon, testBody, []byte(s), Options{})
		}
	})
}

// FuzzTranslate feeds payloads to every translator: no panic; nil error
// with valid envelopes, or an *Error with a translation reason.
func FuzzTranslate(f *testing.F) {
	topics := map[string]string{Shopify: "orders/updated", WooCommerce: "order.updated"}
	for i, p := range Platforms() {
		files, _ := filepath.Glob(filepath.Join("testdata", p, "*.json"))
		for _, file := range files {
			body, err := os.ReadFile(file)
			if err == nil {
				f.Add(uint8(i), topics[p], body)
			}
		}
	}
	f.Add(uint8(0), "", []byte(`{"NotificationType":"ORDER_CHANGE","detail":{}}`))
	f.Fuzz(func(t *testing.T, which uint8, topic string, body []byte) {
		names := Platforms()
		p := names[int(which)%len(names)]
		h := hdr(shopifyTopic, topic, wcTopic, topic, shopifyWebhookID, "w")
		evs, id, err := Translate(p, Request{Header: h, Body: body, Received: testNow}, "sys")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error: %v", err)
			}
			switch e.Reason {
			case ReasonUnknownTopic, ReasonUntranslatable, ReasonNoStatus:
			default:
				t.Fatalf("reason %q from Translate", e.Reason)
			}
			return
		}
		if id == "" || len(evs) == 0 {
			t.Fatalf("success without envelopes or delivery id: %q %d", id, len(evs))
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Fatalf("invalid envelope: %v", err)
			}
			if _, err := time.Parse(time.RFC3339Nano, ev.OccurredAt); err != nil {
				t.Fatalf("occurred_at %q: %v", ev.OccurredAt, err)
			}
		}
	})
}

func TestSignHeadersAreHTTPValid(t *testing.T) {
	for _, p := range Platforms() {
		for name, vals := range Sign(p, testBody, []byte("k"), testNow) {
			if name != http.CanonicalHeaderKey(name) {
				t.Errorf("%s: header %q not canonical", p, name)
			}
			for _, v := range vals {
				if strings.ContainsAny(v, "\r\n") {
					t.Errorf("%s: header %s has a line break", p, name)
				}
			}
		}
	}
}
