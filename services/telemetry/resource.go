package telemetry

import (
	"context"
	"runtime/debug"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
)

// Build is what the running binary is: its module version ("(devel)" for
// a build from a checkout), the commit and whether the tree had changes
// (from the VCS stamp Go records), and the Go version.
type Build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// ReadBuild reads the binary's build information.
func ReadBuild() Build {
	b := Build{Version: "(unknown)"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version, b.GoVersion = info.Main.Version, info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the version as `driftwatch version` prints it.
func (b Build) String() string {
	s := b.Version
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " (commit " + c
		if b.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + b.GoVersion
}

// Resource describes driftwatch to OpenTelemetry: service.name driftwatch
// and service.version, which OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// override. Prometheus shows it as target_info.
func Resource(ctx context.Context) (*resource.Resource, error) {
	b := ReadBuild()
	version := b.Version
	if b.Commit != "" {
		version += "+" + b.Commit
	}
	return resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "driftwatch"), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
}
