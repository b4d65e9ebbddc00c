package app

import (
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/detector"
	"github.com/driftwatch/driftwatch/services/projector"
)

// NATSAuth is the embedded server's authentication, authorization and TLS
// from the configuration's nats section, paths resolved against the
// configuration file's folder. driftwatch's own durable consumers (the one
// pass's, the detector's, the sentry's, each configured system's projector's) are
// denied to operators, who may otherwise create consumers on the events
// stream.
func NATSAuth(cfg *config.Config) broker.Auth {
	n := cfg.NATS
	a := broker.Auth{
		ConfigFile: cfg.NATSPath(n.ConfigFile),
		TLS: broker.ServerTLS{
			CertFile:      cfg.NATSPath(n.TLS.CertFile),
			KeyFile:       cfg.NATSPath(n.TLS.KeyFile),
			CAFile:        cfg.NATSPath(n.TLS.CAFile),
			VerifyClients: n.TLS.VerifyClients,
		},
		Durables: []string{projector.PassConsumer, detector.ConsumerName, projector.SentryConsumer},
	}
	for _, s := range cfg.Systems {
		a.Durables = append(a.Durables, projector.ConsumerPrefix+s.ID)
	}
	for _, u := range n.Users {
		a.Users = append(a.Users, broker.User{
			Name: u.Name, Role: u.Role, Systems: u.Systems,
			NKey: u.NKey, PasswordFile: cfg.NATSPath(u.PasswordFile),
		})
	}
	return a
}
