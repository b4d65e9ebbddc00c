package detector

import (
	"fmt"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/events/canonical"
	"github.com/driftwatch/driftwatch/projections"
)

// message writes the sentence a person reads in an alert.
func (r *Rules) message(m *Mismatch, x *Expectation, tgt *projections.Row, now time.Time) string {
	late := dur(time.Duration(now.UnixNano() - x.Deadline))
	sla := dur(time.Duration(x.Deadline - x.Onset))
	src := m.Source
	what := src.Canonical
	if x.Dim == DimPayment {
		what = x.SourcePayment.String()
	}
	srcSays := fmt.Sprintf("%s (%q)", what, src.Status)
	targetShows := fmt.Sprintf("%s has no record of the order", x.To)
	if m.Target != nil {
		canon := m.Target.Canonical
		if x.Dim == DimPayment {
			canon = tgt.PaymentState().String()
			if tgt.PaymentState() == canonical.NoPayment {
				canon = "no payment state"
			}
		}
		targetShows = fmt.Sprintf("%s still shows %q (%s)", x.To, m.Target.Status, canon)
	}
	switch m.Pattern {
	case OrderNotAcknowledged:
		return fmt.Sprintf("Order %s was %s in %s at %s; %s %s past the %s SLA: the record system never acknowledged it.",
			m.OrderID, srcSays, x.From, clock(src.OccurredAt), targetShows, late, sla)
	case ShipmentNotReflected:
		return fmt.Sprintf("Order %s is %s in %s since %s; %s %s past the %s SLA: the shipment is not reflected.",
			m.OrderID, srcSays, x.From, clock(src.OccurredAt), targetShows, late, sla)
	case ReturnNotReflected:
		return fmt.Sprintf("Order %s is %s in %s since %s; %s %s past the %s SLA: the return is not reflected, refunds and stock may be wrong.",
			m.OrderID, srcSays, x.From, clock(src.OccurredAt), targetShows, late, sla)
	case CancelNotPropagated:
		tail := "the warehouse may ship it."
		if m.Severity == Critical {
			tail = fmt.Sprintf("%s is already at %s: stop the shipment.", x.To, tgt.State())
			if tgt.Fulfilment.Set() && tgt.Fulfilment.Occurred > x.Onset {
				tail = fmt.Sprintf("%s moved to %s after the cancellation: stop the shipment.", x.To, tgt.State())
			}
		}
		return fmt.Sprintf("Order %s was cancelled in %s at %s; %s %s past the %s SLA: %s",
			m.OrderID, x.From, clock(src.OccurredAt), targetShows, late, sla, tail)
	case PaymentWithoutOrder:
		return fmt.Sprintf("Payment for order %s is %s in %s since %s, but %s (the record system) has no record of the order %s past the %s SLA: money taken for an order nobody will fulfil.",
			m.OrderID, srcSays, x.From, clock(src.OccurredAt), x.To, late, sla)
	case AckedNotApplied:
		return fmt.Sprintf("%s acknowledged %s's event %s for order %s, %s at %s, but never applied it: %s %s past the %s SLA.",
			x.To, x.From, x.SourceEventID, m.OrderID, srcSays, clock(src.OccurredAt), targetShows, late, sla)
	case ManualOverride:
		if f := dimFacet(tgt, x.Dim); tgt.HasRecord() && f.Set() && f.Actor == "manual" {
			return fmt.Sprintf("A manual change in %s left order %s disagreeing: %s says %s (at %s); %s, set by hand at %s.",
				x.To, m.OrderID, x.From, srcSays, clock(src.OccurredAt), targetShows, clock(f.OccurredAt))
		}
		return fmt.Sprintf("A manual change left order %s disagreeing: %s says %s (at %s); %s, %s past the %s SLA.",
			m.OrderID, x.From, srcSays, clock(src.OccurredAt), targetShows, late, sla)
	default:
		return fmt.Sprintf("Order %s is %s in %s since %s; %s, which does not reflect it, %s past the %s SLA.",
			m.OrderID, srcSays, x.From, clock(src.OccurredAt), targetShows, late, sla)
	}
}

// Clock shows the time of day of an RFC 3339 timestamp with its offset, as
// the source wrote it ("10:04:05-04:00").
func Clock(ts string) string { return clock(ts) }

func clock(ts string) string {
	for i := 0; i < len(ts); i++ {
		if ts[i] == 'T' {
			ts = ts[i+1:]
			break
		}
	}
	// Drop fractions of a second: "10:04:05.123456-04:00" -> "10:04:05-04:00".
	if dot := strings.IndexByte(ts, '.'); dot >= 0 {
		end := dot + 1
		for end < len(ts) && ts[end] >= '0' && ts[end] <= '9' {
			end++
		}
		ts = ts[:dot] + ts[end:]
	}
	return ts
}

func dur(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}
