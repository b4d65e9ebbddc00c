// Package schemas embeds driftwatch's published, versioned formats: the JSON
// Schemas of the event envelope and of the alert record, and the built-in
// status mapping tables, one YAML file per platform under mappings/.
//
// It depends on nothing, so the light events module and the services can both
// read the same bytes that are published to integrators.
package schemas

import "embed"

// EventSchema is the JSON Schema (draft 2020-12) of the event envelope,
// CONTRACT.md section 3.
//
//go:embed event.schema.json
var EventSchema []byte

// AlertSchema is the JSON Schema (draft 2020-12) of the alert record,
// CONTRACT.md section 6, with its owner and runbook. The detector's tests
// validate the records it publishes against it.
//
//go:embed alert.schema.json
var AlertSchema []byte

// Mappings holds the built-in mapping tables as mappings/<platform>.yaml.
//
//go:embed mappings/*.yaml
var Mappings embed.FS

// MappingsDir is the folder inside Mappings that holds the tables.
const MappingsDir = "mappings"
