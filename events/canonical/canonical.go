// Package canonical is driftwatch's canonical state model (CONTRACT.md
// section 1): the fulfilment states with their ranks, the payment states, the
// documented transitions between them, and the "B reflects A" relation that
// flow expectations are judged by.
//
// Both dimensions are small enums; the zero value of each means "no state in
// this dimension" (an event that says nothing about it, or a system with no
// record). All functions are pure and allocation-free.
package canonical

import "fmt"

// State is a fulfilment state. The zero value, None, means no state.
type State uint8

// Fulfilment states. The order of the forward states is their rank.
const (
	None State = iota
	Pending
	Confirmed
	Picked
	Packed
	PartiallyShipped
	Shipped
	Delivered
	ReturnRequested
	Returned
	Cancelled
	// Unknown is the state of an event whose raw status its platform's
	// mapping table lacks (an unmapped status).
	Unknown
)

var stateNames = [...]string{"", "pending", "confirmed", "picked", "packed", "partially_shipped", "shipped", "delivered", "return_requested", "returned", "cancelled", "unknown"}

// States lists every real fulfilment state (not None or Unknown) in rank
// order, then the side states.
var States = []State{Pending, Confirmed, Picked, Packed, PartiallyShipped, Shipped, Delivered, ReturnRequested, Returned, Cancelled}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// ParseState returns the fulfilment state named name (the canonical
// spelling: "partially_shipped"). "unknown" and "" are not parsed.
func ParseState(name string) (State, bool) {
	for i := Pending; i <= Cancelled; i++ {
		if stateNames[i] == name {
			return i, true
		}
	}
	return None, false
}

// Rank is the state's place along the forward path (pending 0 ... delivered
// 6); ok is false for the side states, None and Unknown.
func (s State) Rank() (rank int, ok bool) {
	if s >= Pending && s <= Delivered {
		return int(s - Pending), true
	}
	return -1, false
}

// Ranked reports whether the state lies on the forward path.
func (s State) Ranked() bool { _, ok := s.Rank(); return ok }

// Terminal reports whether no documented transition leaves the state.
func (s State) Terminal() bool { return s == Returned || s == Cancelled }

// Side reports whether s is a return state (return_requested, returned):
// off the fulfilment ranks, usually kept on a record of its own.
func (s State) Side() bool { return s == ReturnRequested || s == Returned }

// Real reports whether s is a fulfilment state (not None or Unknown).
func (s State) Real() bool { return s >= Pending && s <= Cancelled }

// Payment is a payment state. The zero value, NoPayment, means no state.
type Payment uint8

// Payment states.
const (
	NoPayment Payment = iota
	Unpaid
	Authorized
	Paid
	PartiallyRefunded
	Refunded
	Voided
	Failed
)

var paymentNames = [...]string{"", "unpaid", "authorized", "paid", "partially_refunded", "refunded", "voided", "failed"}

// Payments lists every payment state.
var Payments = []Payment{Unpaid, Authorized, Paid, PartiallyRefunded, Refunded, Voided, Failed}

func (p Payment) String() string {
	if int(p) < len(paymentNames) {
		return paymentNames[p]
	}
	return fmt.Sprintf("payment(%d)", p)
}

// ParsePayment returns the payment state named name.
func ParsePayment(name string) (Payment, bool) {
	for i := Unpaid; i <= Failed; i++ {
		if paymentNames[i] == name {
			return i, true
		}
	}
	return NoPayment, false
}

// Real reports whether p is a payment state (not NoPayment).
func (p Payment) Real() bool { return p >= Unpaid && p <= Failed }

// Refund reports whether p is a refund state (partially_refunded,
// refunded).
func (p Payment) Refund() bool { return p == PartiallyRefunded || p == Refunded }

// Transition classifies a move from one state to another.
type Transition uint8

// Transition kinds.
const (
	Undocumented Transition = iota // not in the contract's list: a person should look
	NoChange                       // a repeat of the same state
	Documented                     // a documented transition
)

func (t Transition) String() string {
	return [...]string{"undocumented", "no change", "documented"}[t]
}

// Allowed reports whether the move is documented or no change.
func (t Transition) Allowed() bool { return t != Undocumented }

// FulfilmentTransition classifies from -> to. Moves from or to None or
// Unknown are Undocumented; callers decide what a missing state means.
func FulfilmentTransition(from, to State) Transition {
	if !from.Real() || !to.Real() {
		return Undocumented
	}
	if from == to {
		return NoChange
	}
	fr, fok := from.Rank()
	tr, tok := to.Rank()
	switch {
	case fok && tok:
		if tr > fr {
			return Documented // forward, skipping allowed
		}
	case to == Cancelled:
		if from == Pending || from == Confirmed || from == Picked || from == Packed {
			return Documented
		}
	case to == ReturnRequested || to == Returned:
		if from == PartiallyShipped || from == Shipped || from == Delivered {
			return Documented
		}
		if from == ReturnRequested && to == Returned {
			return Documented
		}
	case from == ReturnRequested && to == Delivered:
		return Documented // return withdrawn
	}
	return Undocumented
}

// paymentNext lists the documented payment transitions.
var paymentNext = [...][]Payment{
	Unpaid:            {Authorized, Paid, Failed, Voided},
	Authorized:        {Paid, Voided, Failed},
	Paid:              {PartiallyRefunded, Refunded},
	PartiallyRefunded: {Refunded},
	Failed:            {Authorized, Paid},
	Refunded:          nil,
	Voided:            nil,
	NoPayment:         nil,
}

// paymentReach[a] has bit b set when b is a or reachable from a along
// documented payment transitions ("a later state").
var paymentReach [Failed + 1]uint16

func init() {
	for _, a := range Payments {
		seen := uint16(1) << a
		queue := []Payment{a}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, n := range paymentNext[p] {
				if seen&(1<<n) == 0 {
					seen |= 1 << n
					queue = append(queue, n)
				}
			}
		}
		paymentReach[a] = seen
	}
}

// PaymentTransition classifies from -> to.
func PaymentTransition(from, to Payment) Transition {
	if !from.Real() || !to.Real() {
		return Undocumented
	}
	if from == to {
		return NoChange
	}
	for _, n := range paymentNext[from] {
		if n == to {
			return Documented
		}
	}
	return Undocumented
}

// ReflectsState reports whether a system B whose fulfilment state is b
// reflects A's state s (CONTRACT.md section 1). hasRecord is false when B has
// no record of the order at all; b is then ignored.
//
//   - a ranked s: B's rank >= rank(s), or B is return_requested/returned;
//   - cancelled: B is cancelled or has no record of the order;
//   - return_requested: B is return_requested or returned;
//   - returned: B is returned.
func ReflectsState(b State, hasRecord bool, s State) bool {
	if s == Cancelled {
		return !hasRecord || b == Cancelled
	}
	if !hasRecord {
		return false
	}
	switch s {
	case ReturnRequested:
		return b == ReturnRequested || b == Returned
	case Returned:
		return b == Returned
	}
	sr, ok := s.Rank()
	if !ok {
		return true // None/Unknown: nothing is expected
	}
	if b == ReturnRequested || b == Returned {
		return true
	}
	br, ok := b.Rank()
	return ok && br >= sr
}

// ReflectsPayment reports whether B's payment state b is s or a later state
// along the payment transitions. NoPayment never reflects a real s.
func ReflectsPayment(b, s Payment) bool {
	if !s.Real() {
		return true
	}
	if !b.Real() {
		return false
	}
	return paymentReach[s]&(1<<b) != 0
}
