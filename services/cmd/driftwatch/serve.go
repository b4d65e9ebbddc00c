package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/app"
)

func newServeCmd() *cobra.Command {
	var (
		configPath, dataDir, natsListen, httpAddr, services, instance string
		nf                                                            *natsFlags
		insecure                                                      bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run driftwatch: the log, the projections, detection, the gate and the HTTP API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger()
			if err != nil {
				return err
			}
			cfg, err := loadConfigFile(configPath)
			if err != nil {
				return err
			}
			listen, err := listenAddr(httpAddr, cfg.HTTP.TLS.CertFile != "")
			if err != nil {
				return err
			}
			var list []string
			if services != "" && services != "all" {
				for _, s := range strings.Split(services, ",") {
					list = append(list, strings.TrimSpace(s))
				}
			}
			if instance != "" {
				cfg.Cluster.Instance = instance
				if err := cfg.Validate(); err != nil {
					return usageError{err}
				}
			}
			app.ApplyMemoryLimit(cfg)
			a, err := app.New(app.Options{
				Config:     cfg,
				DataDir:    dataDir,
				NATSListen: natsListen,
				NATSURL:    nf.URL(),
				NATSClient: nf.client(),
				HTTPAddr:   listen,
				Services:   list,
				Logger:     log,
				Insecure:   insecure,
			})
			if err != nil {
				return usageError{err}
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "driftwatch.yaml", "configuration file (DRIFTWATCH_CONFIG)")
	f.StringVar(&dataDir, "data", "data", "data folder: JetStream store and Pebble")
	f.StringVar(&natsListen, "nats-listen", "127.0.0.1:4222", "embedded NATS server's client address")
	nf = addNATSFlags(f, "", "use an existing NATS instead of embedding one")
	f.StringVar(&httpAddr, "http", defaultHTTP, "HTTP API and dashboard address: host:port, or an http:// or https:// URL")
	f.StringVar(&services, "services", "all", "comma-separated subset of services to run")
	f.StringVar(&instance, "instance", "", "join a cluster as this instance (cluster.instance): share the orders' partitions with the other instances on --nats-url, each with its own --data folder")
	f.BoolVar(&insecure, "insecure", false, "start even when --http or --nats-listen binds beyond loopback without http.tokens or nats.users configured (warns at every start)")
	return cmd
}
