package canonical

import "testing"

func TestParseRoundTrip(t *testing.T) {
	for _, s := range States {
		got, ok := ParseState(s.String())
		if !ok || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), got, ok)
		}
	}
	for _, p := range Payments {
		got, ok := ParsePayment(p.String())
		if !ok || got != p {
			t.Errorf("ParsePayment(%q) = %v, %v", p.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "unknown", "Shipped", "paid"} {
		if _, ok := ParseState(bad); ok {
			t.Errorf("ParseState(%q) accepted", bad)
		}
	}
	if _, ok := ParsePayment("shipped"); ok {
		t.Error("ParsePayment(shipped) accepted")
	}
}

func TestRanks(t *testing.T) {
	want := map[State]int{Pending: 0, Confirmed: 1, Picked: 2, Packed: 3, PartiallyShipped: 4, Shipped: 5, Delivered: 6}
	for _, s := range States {
		r, ok := s.Rank()
		if w, ranked := want[s]; ranked != ok || (ok && r != w) {
			t.Errorf("%v.Rank() = %d, %v; want %d, %v", s, r, ok, w, ranked)
		}
	}
	if !Returned.Terminal() || !Cancelled.Terminal() || Delivered.Terminal() {
		t.Error("terminal states wrong")
	}
}

// documentedFulfilment is the contract's list written out pair by pair.
func documentedFulfilment() map[[2]State]bool {
	d := map[[2]State]bool{}
	ranked := []State{Pending, Confirmed, Picked, Packed, PartiallyShipped, Shipped, Delivered}
	for i := range ranked {
		for j := i + 1; j < len(ranked); j++ {
			d[[2]State{ranked[i], ranked[j]}] = true
		}
	}
	for _, s := range []State{Pending, Confirmed, Picked, Packed} {
		d[[2]State{s, Cancelled}] = true
	}
	for _, s := range []State{PartiallyShipped, Shipped, Delivered} {
		d[[2]State{s, ReturnRequested}] = true
		d[[2]State{s, Returned}] = true
	}
	d[[2]State{ReturnRequested, Returned}] = true
	d[[2]State{ReturnRequested, Delivered}] = true
	return d
}

func TestFulfilmentTransitionsExhaustive(t *testing.T) {
	doc := documentedFulfilment()
	for _, from := range States {
		for _, to := range States {
			got := FulfilmentTransition(from, to)
			want := Undocumented
			if from == to {
				want = NoChange
			} else if doc[[2]State{from, to}] {
				want = Documented
			}
			if got != want {
				t.Errorf("%v -> %v = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, named := range [][2]State{{Cancelled, Shipped}, {Delivered, Pending}, {Returned, Delivered}, {Shipped, Confirmed}, {Shipped, Cancelled}} {
		if FulfilmentTransition(named[0], named[1]) != Undocumented {
			t.Errorf("%v -> %v must be undocumented", named[0], named[1])
		}
	}
	if FulfilmentTransition(None, Confirmed) != Undocumented || FulfilmentTransition(Unknown, Confirmed) != Undocumented {
		t.Error("transitions from None/Unknown must be undocumented")
	}
}

func TestPaymentTransitionsExhaustive(t *testing.T) {
	doc := map[[2]Payment]bool{
		{Unpaid, Authorized}: true, {Unpaid, Paid}: true, {Unpaid, Failed}: true, {Unpaid, Voided}: true,
		{Authorized, Paid}: true, {Authorized, Voided}: true, {Authorized, Failed}: true,
		{Paid, PartiallyRefunded}: true, {Paid, Refunded}: true,
		{PartiallyRefunded, Refunded}: true,
		{Failed, Authorized}:          true, {Failed, Paid}: true,
	}
	for _, from := range Payments {
		for _, to := range Payments {
			want := Undocumented
			if from == to {
				want = NoChange
			} else if doc[[2]Payment{from, to}] {
				want = Documented
			}
			if got := PaymentTransition(from, to); got != want {
				t.Errorf("%v -> %v = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestReflectsState(t *testing.T) {
	cases := []struct {
		name      string
		b         State
		hasRecord bool
		s         State
		want      bool
	}{
		{"higher rank reflects", Shipped, true, Confirmed, true},
		{"same rank reflects", Confirmed, true, Confirmed, true},
		{"lower rank does not", Confirmed, true, Shipped, false},
		{"pending does not reflect confirmed", Pending, true, Confirmed, false},
		{"no record does not reflect confirmed", None, false, Confirmed, false},
		{"no record reflects cancelled", None, false, Cancelled, true},
		{"cancelled reflects cancelled", Cancelled, true, Cancelled, true},
		{"confirmed does not reflect cancelled", Confirmed, true, Cancelled, false},
		{"cancelled does not reflect shipped", Cancelled, true, Shipped, false},
		{"return requested reflects shipped", ReturnRequested, true, Shipped, true},
		{"returned reflects delivered", Returned, true, Delivered, true},
		{"returned reflects return requested", Returned, true, ReturnRequested, true},
		{"delivered does not reflect return requested", Delivered, true, ReturnRequested, false},
		{"return requested does not reflect returned", ReturnRequested, true, Returned, false},
		{"unknown does not reflect confirmed", Unknown, true, Confirmed, false},
		{"partially shipped does not reflect shipped", PartiallyShipped, true, Shipped, false},
	}
	for _, c := range cases {
		if got := ReflectsState(c.b, c.hasRecord, c.s); got != c.want {
			t.Errorf("%s: ReflectsState(%v, %v, %v) = %v", c.name, c.b, c.hasRecord, c.s, got)
		}
	}
}

func TestReflectsPayment(t *testing.T) {
	cases := []struct {
		b, s Payment
		want bool
	}{
		{Paid, Paid, true},
		{Paid, Authorized, true},
		{Refunded, Authorized, true},
		{Authorized, Paid, false},
		{Unpaid, Paid, false},
		{NoPayment, Paid, false},
		{Voided, Paid, false},
		{Paid, Voided, false},
		{Authorized, Failed, true}, // failed -> authorized is documented
		{Refunded, PartiallyRefunded, true},
		{PartiallyRefunded, Refunded, false},
	}
	for _, c := range cases {
		if got := ReflectsPayment(c.b, c.s); got != c.want {
			t.Errorf("ReflectsPayment(%v, %v) = %v, want %v", c.b, c.s, got, c.want)
		}
	}
}
