package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/app"
	"github.com/driftwatch/driftwatch/services/broker"
	"github.com/driftwatch/driftwatch/services/config"
	"github.com/driftwatch/driftwatch/services/demo"
)

func newDemoCmd() *cobra.Command {
	var dataDir, httpAddr, natsListen string
	var speed float64
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run driftwatch with a simulated six-system stack that drifts now and then; open the dashboard",
		Long: `Start everything on the embedded default with a simulator that plays a
storefront (Shopify), a marketplace (Amazon), the ERP (NetSuite, the record
system), a warehouse, a payment processor (Stripe) and a carrier (EasyPost)
with their real vocabularies and time zones, at human speed, injecting every
kind of fault now and then. Open the printed dashboard URL: drift shows up
within a minute. Ctrl-C stops it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger()
			if err != nil {
				return err
			}
			cfg, err := config.Parse("demo.yaml", []byte(demo.Config))
			if err != nil {
				return err
			}
			listen, err := listenAddr(httpAddr, false)
			if err != nil {
				return err
			}
			if dataDir == "" {
				if dataDir, err = os.MkdirTemp("", "driftwatch-demo-"); err != nil {
					return err
				}
				defer os.RemoveAll(dataDir)
			}
			app.ApplyMemoryLimit(cfg)
			a, err := app.New(app.Options{Config: cfg, DataDir: dataDir, NATSListen: natsListen, HTTPAddr: listen, Logger: log})
			if err != nil {
				return err
			}
			if err := a.Start(cmd.Context()); err != nil {
				return err
			}
			pub, err := events.NewPublisher(a.Broker.Conn, events.WithSystems(cfg.Known))
			if err != nil {
				return err
			}
			sim := demo.New(pub, time.Now().UnixNano())
			sim.Speed = speed
			sim.OnError = func(err error) { log.Warn().Err(err).Msg("demo publish failed") }
			printf(os.Stdout, "\ndriftwatch demo is running.\n\n  dashboard  http://%s/\n  NATS       %s   (try: nats sub 'driftwatch.alerts.>')\n  data       %s\n\nA six-system stack plays orders with faults now and then; drift shows up within a minute. Ctrl-C stops.\n\n",
				a.HTTPAddr(), broker.Redact(a.Broker.ClientURL), dataDir)
			sim.Run(cmd.Context())
			stopCtx, cancel := contextWithTimeout(15 * time.Second)
			defer cancel()
			return a.Stop(stopCtx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "data folder (default: a temporary folder removed on exit)")
	f.StringVar(&httpAddr, "http", defaultHTTP, "HTTP API and dashboard address: host:port, or an http:// URL")
	f.StringVar(&natsListen, "nats-listen", "127.0.0.1:4222", "embedded NATS server's client address")
	f.Float64Var(&speed, "speed", 1, "simulation speed (2 = twice as fast)")
	return cmd
}
