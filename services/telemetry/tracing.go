package telemetry

import (
	"context"
	"net/http"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing makes a span per event through ingest, projection and detection,
// with the W3C trace context carried in NATS headers (traceparent,
// tracestate; read case-insensitively). Spans are exported by OTLP/HTTP
// when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) variable is set; otherwise tracing is
// off and costs nothing on the hot path.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewTracing configures tracing from the environment.
func NewTracing(ctx context.Context) (*Tracing, error) {
	t := &Tracing{tracer: noop.NewTracerProvider().Tracer("driftwatch"), prop: propagation.TraceContext{}}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return t, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := Resource(ctx)
	if err != nil {
		return nil, err
	}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.tracer = t.tp.Tracer("driftwatch")
	return t, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.tp != nil }

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// natsCarrier adapts NATS headers to the propagator, matching keys without
// regard to case on read (NATS headers are case-sensitive, publishers are
// not consistent).
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string {
	for k, v := range c {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (c natsCarrier) Set(key, value string) { c[key] = []string{value} }

func (c natsCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Inject writes ctx's trace context into NATS headers.
func (t *Tracing) Inject(ctx context.Context, h nats.Header) {
	if !t.Enabled() || h == nil {
		return
	}
	t.prop.Inject(ctx, natsCarrier(h))
}

// StartFromNATS starts a span whose parent is the trace context in h.
func (t *Tracing) StartFromNATS(ctx context.Context, name string, h nats.Header, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if h != nil {
		ctx = t.prop.Extract(ctx, natsCarrier(h))
	}
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...), trace.WithSpanKind(trace.SpanKindConsumer))
}

// StartFromHTTP starts a span whose parent is the request's traceparent.
func (t *Tracing) StartFromHTTP(r *http.Request, name string) (context.Context, trace.Span) {
	ctx := r.Context()
	if !t.Enabled() || r == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
}
