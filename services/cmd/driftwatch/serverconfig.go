package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/driftwatch/driftwatch/services/api"
	"github.com/driftwatch/driftwatch/services/config"
)

// configHint says how to give a command its configuration file.
const configHint = "give the configuration file with --config FILE or the variable DRIFTWATCH_CONFIG"

// loadConfigFile reads the configuration file of a command that needs one
// (serve, rebuild, or a client command given --config). A file that is not
// there is reported with the flag and the variable that name it.
func loadConfigFile(path string) (*config.Config, error) {
	cfg, err := config.LoadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", err, configHint)
	}
	return cfg, err
}

// clientConfig is the configuration a client command works with: the file
// of --config (or DRIFTWATCH_CONFIG) when one is given, else the running
// server's, read from GET /v1/config at --http. done removes what reading
// the server's left on disk (its mapping tables from mappings_dir, which
// cfg.MappingsPath then names); call it once done with cfg.
func clientConfig(path, httpAddr string, auth *apiAuth) (cfg *config.Config, done func(), err error) {
	if path != "" {
		cfg, err := loadConfigFile(path)
		return cfg, func() {}, err
	}
	cfg, done, err = serverConfig(httpAddr, auth)
	var ue usageError
	if err != nil && !errors.As(err, &ue) {
		err = fmt.Errorf("read the configuration of driftwatch serve: %w; or %s", err, configHint)
	}
	return cfg, done, err
}

// serverConfig reads the running server's configuration (GET /v1/config at
// httpAddr); see clientConfig.
func serverConfig(httpAddr string, auth *apiAuth) (*config.Config, func(), error) {
	c := newAPIClient(httpAddr, auth)
	var view api.ConfigView
	if err := c.do("GET", "/v1/config", nil, &view); err != nil {
		return nil, nil, err
	}
	return configFromView(view, c.base)
}

// configFromView turns the server's configuration back into a
// configuration: the sections a client needs are written as a document
// config.Parse reads (JSON is YAML), with the server's own mapping tables
// (those of its mappings_dir) in a temporary folder as mappings_dir.
func configFromView(view api.ConfigView, origin string) (*config.Config, func(), error) {
	done := func() {}
	alerts := view.Alerts
	alerts.Webhooks = nil // the client notifies no one
	doc := map[string]any{
		"systems": view.Systems, "flows": view.Flows, "detect": view.Detect, "alerts": alerts,
		"reconcile": view.Reconcile, "ingest": view.Ingest, "memory": view.Memory,
	}
	var custom []api.ConfigMapping
	for _, m := range view.Mappings {
		if m.Source == api.MappingMappingsDir {
			custom = append(custom, m)
		}
	}
	if len(custom) > 0 {
		dir, err := os.MkdirTemp("", "driftwatch-mappings-")
		if err != nil {
			return nil, nil, err
		}
		done = func() { _ = os.RemoveAll(dir) }
		for _, m := range custom {
			if m.YAML == "" || m.File == "" || filepath.Base(m.File) != m.File {
				done()
				return nil, nil, fmt.Errorf("driftwatch serve at %s did not give its mapping table of %s (from mappings_dir): %s", origin, m.Platform, configHint)
			}
			if err := os.WriteFile(filepath.Join(dir, m.File), []byte(m.YAML), 0o600); err != nil {
				done()
				return nil, nil, err
			}
		}
		doc["mappings_dir"] = dir
	}
	data, err := json.Marshal(doc)
	if err != nil {
		done()
		return nil, nil, err
	}
	cfg, err := config.Parse("(driftwatch serve at "+origin+")", data)
	if err != nil {
		done()
		return nil, nil, err
	}
	return cfg, done, nil
}

// natsSideConfig is the configuration publish and snapshot import check
// events against when they go over NATS (through the API, the server
// checks them): the file of --config when given, else driftwatch serve's,
// from its API at the default address. Without either they cannot tell a
// system driftwatch does not configure, so they stop and say how to give
// one.
func natsSideConfig(command, path string, auth *apiAuth) (*config.Config, func(), error) {
	if path != "" {
		cfg, err := loadConfigFile(path)
		return cfg, func() {}, err
	}
	cfg, done, err := serverConfig(defaultHTTP, auth)
	if err != nil {
		return nil, nil, fmt.Errorf("%s over NATS checks every event's system before publishing it, and could not read the configured systems from driftwatch serve at %s (%s): give the configuration file with --config FILE or DRIFTWATCH_CONFIG, or go through the API, which checks them itself, with --http ADDR", command, defaultHTTP, briefCause(err))
	}
	return cfg, done, nil
}

// briefCause is an error for a parenthesis: a network error's last part
// ("connect: connection refused"), else the whole error.
func briefCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err.Error()
	}
	return err.Error()
}
