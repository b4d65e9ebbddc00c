package broker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/driftwatch/driftwatch/events"
)

// Roles of the users of the embedded server (the nats.users[].role key).
const (
	// RolePublisher publishes events for its systems and asks the gate.
	RolePublisher = "publisher"
	// RoleSubscriber reads the alerts stream.
	RoleSubscriber = "subscriber"
	// RoleOperator reads the three streams (the ops commands, the nats
	// CLI) and asks the gate; it changes nothing.
	RoleOperator = "operator"
)

// Roles lists the roles a user may have.
var Roles = []string{RolePublisher, RoleSubscriber, RoleOperator}

// InternalInboxPrefix is the inbox prefix of driftwatch's own connections
// to the embedded server when it requires authentication. Clients may
// subscribe to _INBOX.> (their JetStream acknowledgements and replies come
// there), which does not match this prefix: they cannot read the messages
// JetStream delivers to driftwatch's consumers, nor its replies.
const InternalInboxPrefix = "_INBOX_DRIFTWATCH"

// Auth is the embedded server's authentication and authorization. The zero
// value is an open server (no authentication), driftwatch's default on
// 127.0.0.1. With Users or ConfigFile set, every client must authenticate;
// driftwatch's own connections use an internal identity (see Start).
type Auth struct {
	// ConfigFile is a nats-server configuration file loaded instead of
	// Users (accounts, operator/JWT mode, anything nats-server reads).
	// driftwatch still sets the listen address, the JetStream store under
	// the data folder and its sync settings, and TLS when TLS is set.
	ConfigFile string
	// Users are the clients allowed in, each with its role's permissions.
	Users []User
	// TLS serves the client port over TLS.
	TLS ServerTLS
	// Durables are driftwatch's own durable consumers on the events stream
	// (the projectors' and the detector's). Operators may create their own
	// consumers there, so these names are denied to them: an operator can
	// neither update one of them nor pull or acknowledge its messages.
	Durables []string
}

// Enabled reports whether the server requires authentication.
func (a Auth) Enabled() bool { return a.ConfigFile != "" || len(a.Users) > 0 }

// User is one client identity of the embedded server: an NKey (its public
// key) or a name with a password file.
type User struct {
	Name string
	// Role is RolePublisher, RoleSubscriber or RoleOperator.
	Role string
	// Systems are the systems a publisher publishes for.
	Systems []string
	// NKey is the user's public NKey (U...): the client proves it holds
	// the seed by signing the server's nonce.
	NKey string
	// PasswordFile holds a bcrypt hash ($2a$...) or a plain password, which
	// is hashed when the server starts: the server never holds it in clear.
	PasswordFile string
}

// ServerTLS is the embedded server's TLS on its client port.
type ServerTLS struct {
	CertFile, KeyFile string
	// CAFile verifies client certificates when VerifyClients is set: a
	// client must then present a certificate signed by it.
	CAFile        string
	VerifyClients bool
}

// Enabled reports whether TLS is configured.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// streams are driftwatch's streams, the ones operators may read.
var streams = []string{events.EventsStream, events.DLQStream, events.AlertsStream}

// Permissions returns the nats-server permissions of a role. systems are a
// publisher's systems; durables are the consumer names on the events stream
// denied to operators (Auth.Durables).
//
//   - publisher: publish driftwatch.in.<each system> (and .<order_id>) and driftwatch.validate;
//     the dead-letter subjects of its systems and of input whose system
//     cannot be told (driftwatch.dlq.<system>, driftwatch.dlq._unknown),
//     so that events.Publisher keeps its invalid input with the reason;
//     the events stream's info (whether it takes atomic batches); subscribe
//     _INBOX.> (JetStream acknowledgements, gate replies). No other
//     JetStream API, no other subject.
//   - subscriber: subscribe driftwatch.alerts.> and _INBOX.>; publish the
//     JetStream API subjects a pull or push consumer of DRIFTWATCH_ALERTS
//     needs (account and stream info, consumer create, info and next,
//     acknowledgements, flow control).
//   - operator: read-only JetStream on the three streams (stream info, list
//     and names, ephemeral and ordered consumers, consumer info, list and
//     names, next, message get and direct get, acknowledgements, flow
//     control), service discovery ($SRV.PING, $SRV.INFO, $SRV.STATS),
//     driftwatch.validate, subscribe _INBOX.>. Every write is denied
//     explicitly too: stream create, update, delete, purge, message delete,
//     snapshot and restore, consumer delete, durable create and pause, any
//     publish on driftwatch's subjects, and the durables given.
func Permissions(role string, systems, durables []string) (*server.Permissions, error) {
	inbox := &server.SubjectPermission{Allow: []string{nats.InboxPrefix + ">"}}
	switch role {
	case RolePublisher:
		if len(systems) == 0 {
			return nil, errors.New("a publisher needs at least one system")
		}
		allow := make([]string, 0, len(systems)+1)
		for _, s := range systems {
			if !events.ValidSystemID(s) {
				return nil, fmt.Errorf("%q is not a system id", s)
			}
			allow = append(allow, events.InSubject(s), events.InSubject(s)+".*", events.DLQSubject(s))
		}
		allow = append(allow, events.ValidateSubject, events.DLQSubject(""), "$JS.API.STREAM.INFO."+events.EventsStream)
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: allow}, Subscribe: inbox}, nil
	case RoleSubscriber:
		s := events.AlertsStream
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{
				"$JS.API.INFO",
				"$JS.API.STREAM.INFO." + s,
				"$JS.API.CONSUMER.CREATE." + s,
				"$JS.API.CONSUMER.CREATE." + s + ".>",
				"$JS.API.CONSUMER.DURABLE.CREATE." + s + ".>",
				"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
				"$JS.API.CONSUMER.INFO." + s + ".>",
				"$JS.ACK." + s + ".>",
				"$JS.FC." + s + ".>",
			}},
			Subscribe: &server.SubjectPermission{Allow: []string{events.AlertsPrefix + ">", nats.InboxPrefix + ">"}},
		}, nil
	case RoleOperator:
		allow := []string{
			"$JS.API.INFO", "$JS.API.STREAM.LIST", "$JS.API.STREAM.NAMES",
			"$SRV.PING", "$SRV.INFO", "$SRV.STATS", "$SRV.PING.>", "$SRV.INFO.>", "$SRV.STATS.>",
			events.ValidateSubject,
		}
		for _, s := range streams {
			allow = append(allow,
				"$JS.API.STREAM.INFO."+s,
				"$JS.API.STREAM.MSG.GET."+s,
				"$JS.API.DIRECT.GET."+s,
				"$JS.API.DIRECT.GET."+s+".>",
				"$JS.API.CONSUMER.CREATE."+s,
				"$JS.API.CONSUMER.CREATE."+s+".>",
				"$JS.API.CONSUMER.MSG.NEXT."+s+".>",
				"$JS.API.CONSUMER.INFO."+s+".>",
				"$JS.API.CONSUMER.LIST."+s,
				"$JS.API.CONSUMER.NAMES."+s,
				"$JS.ACK."+s+".>",
				"$JS.FC."+s+".>",
			)
		}
		deny := []string{
			"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
			"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
			"$JS.API.STREAM.SNAPSHOT.>", "$JS.API.STREAM.RESTORE.>",
			"$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>", "$JS.API.CONSUMER.PAUSE.>",
			events.InPrefix + ">", events.DLQPrefix + ">", events.AlertsPrefix + ">", "driftwatch.reports.>",
		}
		for _, d := range durables {
			s := events.EventsStream
			deny = append(deny,
				"$JS.API.CONSUMER.CREATE."+s+"."+d,
				"$JS.API.CONSUMER.CREATE."+s+"."+d+".>",
				"$JS.API.CONSUMER.MSG.NEXT."+s+"."+d,
				"$JS.ACK."+s+"."+d+".>",
			)
		}
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: allow, Deny: deny}, Subscribe: inbox}, nil
	}
	return nil, fmt.Errorf("%q is not a role: want one of %s", role, strings.Join(Roles, ", "))
}

// identity is driftwatch's internal identity on the embedded server: an
// NKey pair made in memory at every start and never written anywhere. Its
// user has no permission limits.
type identity struct {
	kp  nkeys.KeyPair
	pub string
}

func newIdentity() (*identity, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("broker: internal identity: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("broker: internal identity: %w", err)
	}
	return &identity{kp: kp, pub: pub}, nil
}

// wipe erases the seed from memory (nil-safe).
func (id *identity) wipe() {
	if id != nil && id.kp != nil {
		id.kp.Wipe()
	}
}

// options authenticate a connection as the identity.
func (id *identity) options() []nats.Option {
	return []nats.Option{nats.Nkey(id.pub, id.kp.Sign), nats.CustomInboxPrefix(InternalInboxPrefix)}
}

// applyAuth sets the server options' users (or loads auth.ConfigFile into
// them) and adds the internal identity; it returns the options driftwatch's
// own connections use. client, when it has credentials, replaces the
// internal identity (a config file whose accounts or operator decide who
// driftwatch is).
func applyAuth(sopts *server.Options, auth Auth, client ClientOptions) (connOpts []nats.Option, id *identity, err error) {
	if auth.ConfigFile == "" && client.HasCredentials() {
		return nil, nil, errors.New("broker: client credentials for the embedded server are used only with a nats-server config file (nats.config_file) or an existing NATS (--nats-url)")
	}
	if !auth.Enabled() {
		return nil, nil, nil
	}
	for i, u := range auth.Users {
		perms, err := Permissions(u.Role, u.Systems, auth.Durables)
		if err != nil {
			return nil, nil, fmt.Errorf("nats.users[%d] (%s): %w", i, u.Name, err)
		}
		switch {
		case u.NKey != "" && u.PasswordFile != "":
			return nil, nil, fmt.Errorf("nats.users[%d] (%s): give an nkey or a password file, not both", i, u.Name)
		case u.NKey != "":
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				return nil, nil, fmt.Errorf("nats.users[%d] (%s): not a user public NKey", i, u.Name)
			}
			sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: perms})
		case u.PasswordFile != "":
			hash, err := passwordHash(u.PasswordFile)
			if err != nil {
				return nil, nil, fmt.Errorf("nats.users[%d] (%s): %w", i, u.Name, err)
			}
			sopts.Users = append(sopts.Users, &server.User{Username: u.Name, Password: hash, Permissions: perms})
		default:
			return nil, nil, fmt.Errorf("nats.users[%d] (%s): give an nkey or a password file", i, u.Name)
		}
	}
	if client.HasCredentials() {
		opts, err := client.Options()
		return opts, nil, err
	}
	if len(sopts.TrustedOperators) > 0 || len(sopts.TrustedKeys) > 0 {
		return nil, nil, fmt.Errorf("broker: %s runs in operator (JWT) mode: give driftwatch's own user credentials (serve --creds)", auth.ConfigFile)
	}
	if sopts.Authorization != "" || sopts.Username != "" {
		// nats-server ignores a token or a single user once there are
		// nkey users, so the internal identity cannot be added.
		return nil, nil, fmt.Errorf("broker: %s authorizes with a token or a single user: use a users list, or give driftwatch's own credentials (serve --user and --password)", auth.ConfigFile)
	}
	for _, acc := range sopts.Accounts {
		if acc.Name != server.DEFAULT_GLOBAL_ACCOUNT && acc.Name != sopts.SystemAccount && acc.Name != server.DEFAULT_SYSTEM_ACCOUNT {
			return nil, nil, fmt.Errorf("broker: %s defines accounts, so driftwatch cannot tell which one holds its streams: give driftwatch's own user credentials (serve --creds, --nkey or --user and --password)", auth.ConfigFile)
		}
	}
	id, err = newIdentity()
	if err != nil {
		return nil, nil, err
	}
	sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: id.pub})
	return id.options(), id, nil
}

// passwordHash reads a password file: a bcrypt hash is used as it is, a
// plain password is hashed. Neither is ever logged or put in an error.
func passwordHash(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw := bytes.TrimRight(data, "\r\n")
	if len(pw) == 0 {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if isBcrypt(pw) {
		if _, err := bcrypt.Cost(pw); err != nil {
			return "", fmt.Errorf("password file %s: starts like a bcrypt hash but is not one", path)
		}
		return string(pw), nil
	}
	hash, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	return string(hash), nil
}

// isBcrypt reports whether p looks like a bcrypt hash ($2a$, $2b$, $2x$ or
// $2y$), which nats-server compares with bcrypt.
func isBcrypt(p []byte) bool {
	return slices.ContainsFunc([]string{"$2a$", "$2b$", "$2x$", "$2y$"}, func(prefix string) bool {
		return bytes.HasPrefix(p, []byte(prefix))
	})
}
