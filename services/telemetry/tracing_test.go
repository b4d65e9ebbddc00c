package telemetry

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTraceContextThroughNATSHeaders(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := &Tracing{tp: tp, tracer: tp.Tracer("test"), prop: propagation.TraceContext{}}
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, key := range []string{"traceparent", "Traceparent", "TRACEPARENT"} {
		h := nats.Header{key: []string{parent}}
		ctx, span := tr.StartFromNATS(context.Background(), "driftwatch.project", h)
		span.End()
		if got := span.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("header %q: trace id %s", key, got)
		}
		out := nats.Header{}
		tr.Inject(ctx, out)
		if out.Get("traceparent") == "" {
			t.Fatalf("no traceparent injected: %v", out)
		}
	}
	if len(rec.Ended()) != 3 {
		t.Fatalf("%d spans", len(rec.Ended()))
	}
	var off *Tracing
	if off.Enabled() {
		t.Fatal("a nil Tracing is enabled")
	}
}
