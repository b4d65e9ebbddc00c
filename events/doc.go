// Package events is driftwatch's light client module: the event envelope
// (CONTRACT.md section 3) with its validation, the subjects and stream names
// (section 4), a Publisher that integration middleware uses to append events
// to the log, and the dead-letter writer shared by every path that rejects
// input. Publisher.PublishBatch appends atomic batches (one fsync each)
// when the events stream allows them, and one event at a time otherwise.
//
// The module depends on nats.go and a YAML parser only; it never imports the
// NATS server, Pebble or an OpenTelemetry SDK (a test keeps it so), so
// middleware can import it without pulling in driftwatch's daemon.
//
// Sub-packages: canonical (the canonical state model) and mapping (the
// versioned per-platform mapping tables).
package events
