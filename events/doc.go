// Package events is driftwatch's light client module: the event envelope
// (CONTRACT.md section 3) with its validation, the subjects and stream names
// (section 4), a Publisher that integration middleware uses to append events
// to the log, and the dead-letter writer shared by every path that rejects
// input. Publisher.PublishBatch appends atomic batches (one fsync each)
// when the events stream allows them, and one event at a time otherwise.
//
// Envelopes are read strictly, on every path (Parse's fast and slow paths,
// event files): text that is not valid UTF-8 and keys repeated in an
// object, at any depth, are rejected (invalid_utf8, duplicate_key), never
// repaired or resolved, and dead-lettered like any invalid event.
//
// The module depends on nats.go and a YAML parser only; it never imports the
// NATS server, Pebble or an OpenTelemetry SDK (a test keeps it so), so
// middleware can import it without pulling in driftwatch's daemon.
//
// Sub-packages: canonical (the canonical state model) and mapping (the
// versioned per-platform mapping tables).
package events
