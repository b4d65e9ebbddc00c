package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/driftwatch/driftwatch/services/broker"
)

// natsFlags are the connection flags of every command that talks to NATS:
// --nats-url and the nats CLI's credential and TLS flags (--creds, --nkey,
// --user, --password, --tls-ca, --tls-cert, --tls-key). A flag not given
// is taken from the nats CLI's environment variable (NATS_URL, NATS_CREDS,
// NATS_NKEY, NATS_USER, NATS_PASSWORD, NATS_CA, NATS_CERT, NATS_KEY);
// DRIFTWATCH_<FLAG> counts as giving the flag. The credential flags go
// together: when one of them is given, none is read from the environment.
type natsFlags struct {
	fs *pflag.FlagSet
	// embedded: an empty --nats-url means the embedded server (serve,
	// rebuild). NATS_URL does not change that, and the NATS_ variables
	// are read only with --nats-url: the embedded server knows driftwatch
	// by its internal identity.
	embedded bool

	url, creds, nkey, user, password, tlsCA, tlsCert, tlsKey string
}

// addNATSFlags registers the flags on fs. An empty urlDefault means the
// command embeds the server unless --nats-url is given.
func addNATSFlags(fs *pflag.FlagSet, urlDefault, urlUsage string) *natsFlags {
	n := &natsFlags{fs: fs, embedded: urlDefault == ""}
	env := func(name string) string {
		if n.embedded {
			return " (" + name + " with --nats-url)"
		}
		return " (or " + name + ")"
	}
	if n.embedded {
		fs.StringVar(&n.url, "nats-url", urlDefault, urlUsage)
	} else {
		fs.StringVar(&n.url, "nats-url", urlDefault, urlUsage+" (or NATS_URL)")
	}
	fs.StringVar(&n.creds, "creds", "", "NATS user credentials file: JWT and seed"+env("NATS_CREDS"))
	fs.StringVar(&n.nkey, "nkey", "", "NATS NKey seed file"+env("NATS_NKEY"))
	fs.StringVar(&n.user, "user", "", "NATS user name, or a token without --password"+env("NATS_USER"))
	fs.StringVar(&n.password, "password", "", "NATS password"+env("NATS_PASSWORD")+"; a flag shows in the process list: prefer the variable")
	fs.StringVar(&n.tlsCA, "tls-ca", "", "CA file that verifies the NATS server's certificate"+env("NATS_CA"))
	fs.StringVar(&n.tlsCert, "tls-cert", "", "client certificate for NATS"+env("NATS_CERT"))
	fs.StringVar(&n.tlsKey, "tls-key", "", "key of the client certificate for NATS"+env("NATS_KEY"))
	return n
}

// URL is the NATS to connect to: --nats-url when given, else NATS_URL,
// else the flag's default. For an embedding command "" is the embedded
// server.
func (n *natsFlags) URL() string {
	if n.embedded || n.fs.Changed("nats-url") {
		return n.url
	}
	if v := os.Getenv("NATS_URL"); v != "" {
		return v
	}
	return n.url
}

// client returns the credentials and TLS settings from the flags and the
// environment.
func (n *natsFlags) client() broker.ClientOptions {
	useEnv := !n.embedded || n.url != ""
	pick := func(flag, val, env string, fromEnv bool) string {
		if n.fs.Changed(flag) || !fromEnv {
			return val
		}
		if v := os.Getenv(env); v != "" {
			return v
		}
		return val
	}
	credsFromEnv := useEnv && !n.fs.Changed("creds") && !n.fs.Changed("nkey") && !n.fs.Changed("user") && !n.fs.Changed("password")
	return broker.ClientOptions{
		Creds:    pick("creds", n.creds, "NATS_CREDS", credsFromEnv),
		NKey:     pick("nkey", n.nkey, "NATS_NKEY", credsFromEnv),
		User:     pick("user", n.user, "NATS_USER", credsFromEnv),
		Password: pick("password", n.password, "NATS_PASSWORD", credsFromEnv),
		TLSCA:    pick("tls-ca", n.tlsCA, "NATS_CA", useEnv),
		TLSCert:  pick("tls-cert", n.tlsCert, "NATS_CERT", useEnv),
		TLSKey:   pick("tls-key", n.tlsKey, "NATS_KEY", useEnv),
	}
}

// connect opens a client connection named name.
func (n *natsFlags) connect(name string) (*nats.Conn, error) {
	opts, err := n.client().Options()
	if err != nil {
		return nil, err
	}
	url := n.URL()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(name), nats.ErrorHandler(asyncError)}, opts...)...)
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) {
			// Nothing answered there: the server is down or elsewhere,
			// unlike a refusal of the credentials, which says so itself.
			return nil, fmt.Errorf("connect to NATS %s: %w (is driftwatch serve running? see --nats-url)", broker.Redact(url), err)
		}
		return nil, fmt.Errorf("connect to NATS %s: %w", broker.Redact(url), err)
	}
	return nc, nil
}

// asyncError reports an asynchronous NATS error on stderr, except the
// refusal of a consumer delete: an ordered consumer deletes itself when a
// command is done with it, which an operator may not do (the server removes
// it once it has been idle for its inactivity threshold).
func asyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"$JS.API.CONSUMER.DELETE.`) {
		return
	}
	printf(os.Stderr, "driftwatch: NATS: %v\n", err)
}

func newNATSCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "nats", Short: "Identities for the embedded NATS server (nats.users)"}
	var force bool
	nkey := &cobra.Command{
		Use:   "nkey SEED_FILE",
		Short: "Make a user NKey pair: print the public key for nats.users, write the seed to SEED_FILE (mode 0600)",
		Long: `Make a user NKey pair. The public key (U...) is printed on stdout: it goes
in the configuration (nats.users[].nkey) for the embedded server, or in the
authorization of a NATS cluster of your own (deploy/nats-cluster/accounts.conf
for the example cluster). The seed (SU...) is written to
SEED_FILE with mode 0600 and nowhere else: the client proves it holds it
(driftwatch --nkey SEED_FILE, nats --nkey SEED_FILE, nats.go's
NkeyOptionFromSeed). An existing file is kept unless --force is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := writeNKey(args[0], force)
			if err != nil {
				return err
			}
			printf(os.Stdout, "%s\n", pub)
			printf(os.Stderr, "seed written to %s (mode 0600); for the embedded server, in the configuration:\n  nats:\n    users:\n      - {name: NAME, role: publisher, systems: [SYSTEM], nkey: %s}\n"+
				"on a NATS cluster of your own, in its authorization (deploy/nats-cluster/accounts.conf): { nkey: \"%s\", permissions: ... }\n", args[0], pub, pub)
			return nil
		},
	}
	nkey.Flags().BoolVar(&force, "force", false, "replace SEED_FILE when it exists")
	cmd.AddCommand(nkey)
	return cmd
}

// writeNKey makes a user NKey pair, writes its seed to path with mode 0600
// (replacing a file there only when force is set) and returns the public
// key.
func writeNKey(path string, force bool) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("%s exists: give --force to replace it", path)
	}
	if err != nil {
		return "", err
	}
	// An existing file keeps its mode through O_TRUNC: make it 0600.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", err
	}
	_, err = f.Write(append(seed, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return pub, nil
}
