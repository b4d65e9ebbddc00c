package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/events/canonical"
)

var requiredPlatforms = []string{"shopify", "amazon", "ebay", "walmart", "woocommerce", "bigcommerce", "magento", "netsuite", "odoo", "businesscentral", "stripe", "paypal", "easypost", "shippo", "aftership", "generic"}

func TestBuiltinTablesLoad(t *testing.T) {
	set, err := LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range requiredPlatforms {
		tab, ok := set.Table(p)
		if !ok {
			t.Errorf("no built-in table for %s", p)
			continue
		}
		if tab.Version < 1 || tab.DefaultField == "" {
			t.Errorf("%s: version %d default_field %q", p, tab.Version, tab.DefaultField)
		}
	}
}

type sample struct {
	Field   string `yaml:"field"`
	Raw     string `yaml:"raw"`
	State   string `yaml:"state"`
	Payment string `yaml:"payment"`
	Ignore  bool   `yaml:"ignore"`
}

// TestRealWireStrings checks a sample of real wire strings per platform,
// taken from the reference vocabularies, map to the expected states.
func TestRealWireStrings(t *testing.T) {
	set, err := LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/samples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var samples map[string][]sample
	if err := yaml.Unmarshal(data, &samples); err != nil {
		t.Fatal(err)
	}
	for _, p := range requiredPlatforms {
		if len(samples[p]) == 0 {
			t.Errorf("no samples for %s", p)
		}
	}
	for platform, list := range samples {
		tab, ok := set.Table(platform)
		if !ok {
			t.Errorf("samples for %s, which has no table", platform)
			continue
		}
		for _, s := range list {
			got, _, ok := tab.Lookup(s.Field, s.Raw)
			if !ok {
				t.Errorf("%s %s=%q: unmapped", platform, s.Field, s.Raw)
				continue
			}
			want := Result{Ignore: s.Ignore}
			if s.State != "" {
				want.State, _ = canonical.ParseState(s.State)
			}
			if s.Payment != "" {
				want.Payment, _ = canonical.ParsePayment(s.Payment)
			}
			if got != want {
				t.Errorf("%s %s=%q: got %v, want %v", platform, s.Field, s.Raw, got, want)
			}
		}
	}
}

func TestBothCancelSpellings(t *testing.T) {
	set, _ := LoadBuiltin()
	for _, c := range []struct{ platform, field, a, b string }{
		{"amazon", "OrderStatus", "Canceled", "Cancelled"},
		{"amazon", "fulfillmentStatus", "CANCELED", "CANCELLED"},
		{"walmart", "orderLineStatus", "Canceled", "Cancelled"},
	} {
		tab, _ := set.Table(c.platform)
		for _, raw := range []string{c.a, c.b} {
			if r, _, ok := tab.Lookup(c.field, raw); !ok || r.State != canonical.Cancelled {
				t.Errorf("%s %s=%q: %v %v", c.platform, c.field, raw, r, ok)
			}
		}
	}
}

func TestLookupTrimsAndDefaults(t *testing.T) {
	tab, err := Parse("generic.yaml", []byte("platform: generic\nversion: 2\ndefault_field: status\nfields:\n  status:\n    shipped: shipped\n  pay:\n    paid: {payment: paid}\n    both: {state: confirmed, payment: authorized}\n    noise: ignore\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, f, ok := tab.Lookup("", "  shipped "); !ok || f != "status" || r.State != canonical.Shipped {
		t.Fatalf("default field lookup: %v %q %v", r, f, ok)
	}
	if _, _, ok := tab.Lookup("", "Shipped"); ok {
		t.Fatal("case-sensitive table matched another case")
	}
	if r, _, ok := tab.Lookup("pay", "both"); !ok || r.State != canonical.Confirmed || r.Payment != canonical.Authorized {
		t.Fatalf("two-dimension value: %v", r)
	}
	if r, _, _ := tab.Lookup("pay", "noise"); !r.Ignore {
		t.Fatal("ignore")
	}
	if _, _, ok := tab.Lookup("nosuch", "shipped"); ok {
		t.Fatal("unknown field matched")
	}
	if !tab.CanExpressPayment(canonical.Paid) || tab.CanExpressState(canonical.Delivered) {
		t.Fatal("expressible sets wrong")
	}
	if got := tab.ExpressibleState(canonical.Delivered); got != canonical.Shipped {
		t.Fatalf("ExpressibleState(delivered) = %v, want shipped", got)
	}
	ci, err := Parse("x.yaml", []byte("platform: x\nversion: 1\ncase_insensitive: true\nfields:\n  s:\n    Shipped: shipped\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := ci.Lookup("", "SHIPPED"); !ok {
		t.Fatal("case-insensitive table did not match")
	}
}

func TestBrokenTablesRefused(t *testing.T) {
	cases := []struct {
		name, yaml, key, reason string
		line                    int
	}{
		{"unknown state", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n    b: dispatched\n", `fields.s."b"`, "unknown canonical state", 6},
		{"payment as state", "platform: x\nversion: 1\nfields:\n  s:\n    a: paid\n", `fields.s."a"`, "is a payment state", 5},
		{"unknown payment", "platform: x\nversion: 1\nfields:\n  s:\n    a: {payment: settled}\n", `fields.s."a"`, "unknown payment state", 5},
		{"duplicate key", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n    a: shipped\n", `fields.s."a"`, "duplicate key", 6},
		{"duplicate after trim", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n    \"a \": shipped\n", `fields.s."a "`, "duplicate key", 6},
		{"missing version", "platform: x\nfields:\n  s:\n    a: confirmed\n", "version", "is missing", 1},
		{"bad version", "platform: x\nversion: one\nfields:\n  s:\n    a: confirmed\n", "version", "integer", 2},
		{"platform mismatch", "platform: y\nversion: 1\nfields:\n  s:\n    a: confirmed\n", "platform", "does not match the file name", 1},
		{"unknown key", "platform: x\nversion: 1\ncolour: red\nfields:\n  s:\n    a: confirmed\n", "colour", "unknown key", 3},
		{"bad default_field", "platform: x\nversion: 1\ndefault_field: t\nfields:\n  s:\n    a: confirmed\n", "default_field", "not one of the table's fields", 3},
		{"missing default with two fields", "platform: x\nversion: 1\nfields:\n  s:\n    a: confirmed\n  t:\n    b: shipped\n", "default_field", "is missing", 1},
		{"empty mapping", "platform: x\nversion: 1\nfields:\n  s:\n    a: {}\n", `fields.s."a"`, "empty mapping", 5},
		{"not yaml", "platform: [x\n", "", "not valid YAML", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("dir/x.yaml", []byte(c.yaml))
			var te *TableError
			if !errors.As(err, &te) || !errors.Is(err, ErrInvalidTable) {
				t.Fatalf("want *TableError, got %v", err)
			}
			if te.File != "dir/x.yaml" || te.Key != c.key || !strings.Contains(te.Reason, c.reason) || (c.line != 0 && te.Line != c.line) {
				t.Fatalf("got file %q line %d key %q reason %q", te.File, te.Line, te.Key, te.Reason)
			}
			if !strings.Contains(err.Error(), "dir/x.yaml") {
				t.Fatalf("message does not name the file: %v", err)
			}
		})
	}
}

func TestMappingsDirReplacesBuiltin(t *testing.T) {
	dir := t.TempDir()
	custom := "platform: shopify\nversion: 99\ndefault_field: fulfillment_status\nfields:\n  fulfillment_status:\n    shipped_custom: shipped\n"
	if err := os.WriteFile(filepath.Join(dir, "shopify.yaml"), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tab, _ := set.Table("shopify")
	if tab.Version != 99 || tab.Source != filepath.Join(dir, "shopify.yaml") {
		t.Fatalf("custom table not used: v%d from %s", tab.Version, tab.Source)
	}
	if _, _, ok := tab.Lookup("", "fulfilled"); ok {
		t.Fatal("replaced table still has built-in entries")
	}
	if _, ok := set.Table("amazon"); !ok {
		t.Fatal("other built-in tables lost")
	}
	if err := os.WriteFile(filepath.Join(dir, "amazon.yaml"), []byte("platform: amazon\nfields:\n  s:\n    a: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "amazon.yaml") {
		t.Fatalf("an invalid table in mappings_dir must refuse the set, naming the file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	entries, _ := os.ReadDir("../../schemas/mappings")
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join("../../schemas/mappings", e.Name()))
		f.Add(data)
	}
	f.Add([]byte("platform: x\nversion: 1\nfields:\n  s:\n    a: {state: confirmed, payment: paid}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Parse("x.yaml", data)
		if err != nil {
			var te *TableError
			if !errors.As(err, &te) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		if tab.Platform != "x" || tab.Version < 1 {
			t.Fatalf("accepted a table without platform x or a version: %+v", tab)
		}
		if _, ok := tab.fields[tab.DefaultField]; !ok {
			t.Fatal("default field not among fields")
		}
	})
}

// res builds an expected Result from canonical names ("" for none).
func res(t *testing.T, state, payment string) Result {
	t.Helper()
	var r Result
	if state != "" {
		s, ok := canonical.ParseState(state)
		if !ok {
			t.Fatalf("bad state %q in test", state)
		}
		r.State = s
	}
	if payment != "" {
		p, ok := canonical.ParsePayment(payment)
		if !ok {
			t.Fatalf("bad payment %q in test", payment)
		}
		r.Payment = p
	}
	return r
}

// TestReturnAndRefundFields checks the ERP tables' return and refund
// fields through Lookup: field, raw value and the canonical meaning.
func TestReturnAndRefundFields(t *testing.T) {
	set, err := LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	ignore := Result{Ignore: true}
	cases := []struct {
		name, platform, field, raw string
		want                       Result
	}{
		// NetSuite return authorization: filter code, SOAP enum and label.
		{"ns RA pending approval code", "netsuite", "return_authorization_status", "RtnAuth:A", res(t, "return_requested", "")},
		{"ns RA pending approval enum", "netsuite", "return_authorization_status", "_pendingApproval", res(t, "return_requested", "")},
		{"ns RA pending receipt label", "netsuite", "return_authorization_status", "Pending Receipt", res(t, "return_requested", "")},
		{"ns RA pending receipt enum", "netsuite", "return_authorization_status", "_pendingReceipt", res(t, "return_requested", "")},
		{"ns RA partially received", "netsuite", "return_authorization_status", "Partially Received", res(t, "return_requested", "")},
		{"ns RA pending refund part received", "netsuite", "return_authorization_status", "RtnAuth:E", res(t, "return_requested", "")},
		{"ns RA pending refund", "netsuite", "return_authorization_status", "Pending Refund", res(t, "returned", "")},
		{"ns RA pending refund code", "netsuite", "return_authorization_status", "RtnAuth:F", res(t, "returned", "")},
		{"ns RA refunded", "netsuite", "return_authorization_status", "Refunded", res(t, "returned", "refunded")},
		{"ns RA refunded code", "netsuite", "return_authorization_status", "RtnAuth:G", res(t, "returned", "refunded")},
		{"ns RA cancelled", "netsuite", "return_authorization_status", "Cancelled", ignore},
		{"ns RA closed code", "netsuite", "return_authorization_status", "RtnAuth:H", ignore},
		{"ns credit memo open", "netsuite", "credit_memo_status", "Open", res(t, "", "partially_refunded")},
		{"ns credit memo fully applied", "netsuite", "credit_memo_status", "CustCred:B", res(t, "", "partially_refunded")},
		{"ns credit memo voided", "netsuite", "credit_memo_status", "CustCred:V", ignore},
		// Business Central return order, credit memo, return credit memo.
		{"bc return order open", "businesscentral", "return_order_status", "Open", res(t, "return_requested", "")},
		{"bc return order released", "businesscentral", "return_order_status", "Released", res(t, "return_requested", "")},
		{"bc return order pending approval wire", "businesscentral", "return_order_status", "Pending_x0020_Approval", res(t, "return_requested", "")},
		{"bc return order pending prepayment", "businesscentral", "return_order_status", "Pending Prepayment", res(t, "return_requested", "")},
		{"bc credit memo draft", "businesscentral", "credit_memo_status", "Draft", ignore},
		{"bc credit memo open", "businesscentral", "credit_memo_status", "Open", ignore},
		{"bc credit memo paid", "businesscentral", "credit_memo_status", "Paid", res(t, "", "partially_refunded")},
		{"bc credit memo canceled", "businesscentral", "credit_memo_status", "Canceled", ignore},
		{"bc credit memo corrective", "businesscentral", "credit_memo_status", "Corrective", ignore},
		{"bc return credit memo open", "businesscentral", "return_credit_memo_status", "Open", res(t, "returned", "")},
		{"bc return credit memo paid", "businesscentral", "return_credit_memo_status", "Paid", res(t, "returned", "partially_refunded")},
		// SAP Business One return request, return, credit memo.
		{"sap return request open", "sapb1", "return_request_status", "bost_Open", res(t, "return_requested", "")},
		{"sap return request open letter", "sapb1", "return_request_status", "O", res(t, "return_requested", "")},
		{"sap return request closed", "sapb1", "return_request_status", "bost_Close", ignore},
		{"sap return open", "sapb1", "return_status", "bost_Open", res(t, "returned", "")},
		{"sap return closed letter", "sapb1", "return_status", "C", ignore},
		{"sap credit memo open", "sapb1", "credit_memo_status", "bost_Open", res(t, "", "partially_refunded")},
		{"sap credit memo closed", "sapb1", "credit_memo_status", "bost_Close", ignore},
		// Odoo return picking and credit note.
		{"odoo return picking confirmed", "odoo", "return_picking_state", "confirmed", res(t, "return_requested", "")},
		{"odoo return picking assigned", "odoo", "return_picking_state", "assigned", res(t, "return_requested", "")},
		{"odoo return picking done", "odoo", "return_picking_state", "done", res(t, "returned", "")},
		{"odoo return picking cancel", "odoo", "return_picking_state", "cancel", ignore},
		{"odoo credit note draft", "odoo", "credit_note_state", "draft", ignore},
		{"odoo credit note posted", "odoo", "credit_note_state", "posted", res(t, "", "partially_refunded")},
		{"odoo credit note paid", "odoo", "credit_note_payment_state", "paid", res(t, "", "partially_refunded")},
		{"odoo credit note in payment", "odoo", "credit_note_payment_state", "in_payment", res(t, "", "partially_refunded")},
		{"odoo credit note not paid", "odoo", "credit_note_payment_state", "not_paid", ignore},
		{"odoo credit note reversed", "odoo", "credit_note_payment_state", "reversed", ignore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, ok := set.Table(c.platform)
			if !ok {
				t.Fatalf("no table for %s", c.platform)
			}
			got, field, ok := tab.Lookup(c.field, c.raw)
			if !ok || field != c.field {
				t.Fatalf("%s %s=%q: unmapped (field %q)", c.platform, c.field, c.raw, field)
			}
			if got != c.want {
				t.Fatalf("%s %s=%q: got %v, want %v", c.platform, c.field, c.raw, got, c.want)
			}
		})
	}
}

// TestReturnFieldsStayOffTheDefault checks that the return statuses do not
// leak into the sales order field: "Cancelled" on the NetSuite order is an
// order cancellation, on its return authorization a withdrawn return.
func TestReturnFieldsStayOffTheDefault(t *testing.T) {
	set, _ := LoadBuiltin()
	cases := []struct {
		name, platform, raw string
		want                Result
	}{
		{"ns order cancelled", "netsuite", "Cancelled", res(t, "cancelled", "")},
		{"ns order pending approval", "netsuite", "Pending Approval", res(t, "pending", "")},
		{"bc api open", "businesscentral", "Open", res(t, "confirmed", "")},
		{"sap order open", "sapb1", "bost_Open", res(t, "confirmed", "")},
		{"odoo order cancel", "odoo", "cancel", res(t, "cancelled", "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, _ := set.Table(c.platform)
			got, _, ok := tab.Lookup("", c.raw)
			if !ok || got != c.want {
				t.Fatalf("%s default %q: got %v %v, want %v", c.platform, c.raw, got, ok, c.want)
			}
		})
	}
	ns, _ := set.Table("netsuite")
	if _, _, ok := ns.Lookup("", "RtnAuth:G"); ok {
		t.Fatal("a return authorization code maps on the sales order field")
	}
}

// TestGenericTakesBothDimensions: the generic default field takes every
// canonical name of either dimension; payment_status keeps working.
func TestGenericTakesBothDimensions(t *testing.T) {
	set, _ := LoadBuiltin()
	tab, ok := set.Table("generic")
	if !ok {
		t.Fatal("no generic table")
	}
	cases := []struct {
		name, field, raw string
		want             Result
	}{
		{"default paid", "", "paid", res(t, "", "paid")},
		{"status paid", "status", "paid", res(t, "", "paid")},
		{"default shipped", "", "shipped", res(t, "shipped", "")},
		{"status refunded", "status", "refunded", res(t, "", "refunded")},
		{"payment_status paid", "payment_status", "paid", res(t, "", "paid")},
		{"payment_status voided", "payment_status", "voided", res(t, "", "voided")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, ok := tab.Lookup(c.field, c.raw)
			if !ok || got != c.want {
				t.Fatalf("generic %s=%q: got %v %v, want %v", c.field, c.raw, got, ok, c.want)
			}
		})
	}
	for _, s := range canonical.States {
		if r, _, ok := tab.Lookup("", s.String()); !ok || r.State != s || r.Payment != canonical.NoPayment {
			t.Errorf("generic default %q: %v %v", s, r, ok)
		}
	}
	for _, p := range canonical.Payments {
		for _, field := range []string{"", "payment_status"} {
			if r, _, ok := tab.Lookup(field, p.String()); !ok || r.Payment != p || r.State != canonical.None {
				t.Errorf("generic %q %q: %v %v", field, p, r, ok)
			}
		}
	}
	if _, _, ok := tab.Lookup("payment_status", "shipped"); ok {
		t.Fatal("payment_status took a fulfilment name")
	}
}

// TestERPTablesExpressReturnsAndRefunds: each ERP table can be expected to
// reflect a return and the refund states it maps, and still cannot express
// paid (payment flows into it expect only what it can say).
func TestERPTablesExpressReturnsAndRefunds(t *testing.T) {
	set, _ := LoadBuiltin()
	cases := []struct {
		platform   string
		delivered  canonical.State // what a delivery elsewhere is expected as
		payments   []canonical.Payment
		noPayments []canonical.Payment
	}{
		{"netsuite", canonical.Shipped, []canonical.Payment{canonical.PartiallyRefunded, canonical.Refunded}, []canonical.Payment{canonical.Unpaid, canonical.Authorized, canonical.Paid, canonical.Voided, canonical.Failed}},
		{"businesscentral", canonical.Confirmed, []canonical.Payment{canonical.PartiallyRefunded, canonical.Unpaid}, []canonical.Payment{canonical.Authorized, canonical.Paid, canonical.Refunded, canonical.Voided, canonical.Failed}},
		{"sapb1", canonical.Shipped, []canonical.Payment{canonical.PartiallyRefunded}, []canonical.Payment{canonical.Unpaid, canonical.Authorized, canonical.Paid, canonical.Refunded, canonical.Voided, canonical.Failed}},
		{"odoo", canonical.Shipped, []canonical.Payment{canonical.PartiallyRefunded}, []canonical.Payment{canonical.Unpaid, canonical.Authorized, canonical.Paid, canonical.Refunded, canonical.Voided, canonical.Failed}},
	}
	for _, c := range cases {
		t.Run(c.platform, func(t *testing.T) {
			tab, ok := set.Table(c.platform)
			if !ok {
				t.Fatalf("no table for %s", c.platform)
			}
			for _, s := range []canonical.State{canonical.ReturnRequested, canonical.Returned} {
				if !tab.CanExpressState(s) {
					t.Errorf("cannot express %s", s)
				}
				if got := tab.ExpressibleState(s); got != s {
					t.Errorf("ExpressibleState(%s) = %v", s, got)
				}
			}
			// The return states are side states: they add nothing to the
			// ranked fallback, so a delivery is still expected as the
			// highest ranked state the table says.
			if got := tab.ExpressibleState(canonical.Delivered); got != c.delivered {
				t.Errorf("ExpressibleState(delivered) = %v, want %v", got, c.delivered)
			}
			for _, p := range c.payments {
				if !tab.CanExpressPayment(p) {
					t.Errorf("cannot express payment %s", p)
				}
			}
			for _, p := range c.noPayments {
				if tab.CanExpressPayment(p) {
					t.Errorf("expresses payment %s", p)
				}
			}
		})
	}
}

// TestChangedTableVersions pins the versions of the tables that gained
// return, refund or payment entries: a table's version is bumped on every
// change and stamped on every projection row.
func TestChangedTableVersions(t *testing.T) {
	set, _ := LoadBuiltin()
	want := map[string]int{"netsuite": 2, "businesscentral": 2, "sapb1": 2, "odoo": 2, "generic": 2}
	for p, v := range want {
		tab, ok := set.Table(p)
		if !ok {
			t.Errorf("no table for %s", p)
			continue
		}
		if tab.Version != v {
			t.Errorf("%s: version %d, want %d", p, tab.Version, v)
		}
	}
}
