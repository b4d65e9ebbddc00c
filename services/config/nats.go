package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"
)

// NATS is the embedded NATS server's authentication, authorization and
// TLS (the nats section). Empty, the server is open on its listen address
// (127.0.0.1 by default). With users (or config_file) every client must
// authenticate; driftwatch's own services use an identity made at every
// start and need no entry here. None of it applies with serve --nats-url: an
// existing NATS has its own configuration.
type NATS struct {
	// ConfigFile is a nats-server configuration file the embedded server
	// loads instead of Users (accounts, operator/JWT mode): the user's full
	// control. driftwatch still sets the listen address (--nats-listen), the
	// JetStream store under the data folder and the sync settings.
	ConfigFile string `yaml:"config_file"`
	// TLS serves the embedded server's client port over TLS.
	TLS NATSTLS `yaml:"tls"`
	// Users are the clients allowed in, each with a role.
	Users []NATSUser `yaml:"users"`
}

// NATSTLS is the embedded server's TLS: its certificate and key, and a CA
// whose signed client certificates are required with verify_clients.
type NATSTLS struct {
	CertFile      string `yaml:"cert_file"`
	KeyFile       string `yaml:"key_file"`
	CAFile        string `yaml:"ca_file"`
	VerifyClients bool   `yaml:"verify_clients"`
}

// NATSUser is one client of the embedded server. It authenticates with an
// NKey (the public key here, the seed with the client) or with its name and
// the password in PasswordFile (a bcrypt hash, or a plain password that is
// hashed when the server starts and never logged).
type NATSUser struct {
	Name string `yaml:"name"`
	// Role is publisher, subscriber or operator (README.md lists each
	// role's permissions).
	Role string `yaml:"role"`
	// Systems are the systems a publisher may publish for.
	Systems      []string `yaml:"systems"`
	NKey         string   `yaml:"nkey"`
	PasswordFile string   `yaml:"password_file"`
}

// NATS user roles (the same as the broker's).
const (
	NATSRolePublisher  = "publisher"
	NATSRoleSubscriber = "subscriber"
	NATSRoleOperator   = "operator"
)

// NATSRoles lists the roles a nats.users entry may have.
var NATSRoles = []string{NATSRolePublisher, NATSRoleSubscriber, NATSRoleOperator}

// natsUserName is the form of a user name: it is the login of a password
// user and appears in the server's log.
var natsUserName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// NATSPath resolves a path of the nats section: a relative one is taken
// relative to the configuration file's folder.
func (c *Config) NATSPath(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

// validateNATS checks the nats section; add reports a problem.
func (c *Config) validateNATS(add func(format string, args ...any)) {
	n := &c.NATS
	file := func(key, p string) {
		st, err := os.Stat(c.NATSPath(p))
		switch {
		case err != nil:
			add("%s: %v", key, err)
		case st.IsDir():
			add("%s: %s is a folder, not a file", key, p)
		}
	}
	if n.ConfigFile != "" {
		file("nats.config_file", n.ConfigFile)
		if len(n.Users) > 0 {
			add("nats.users: not with nats.config_file: the embedded server loads the file instead (put the users there)")
		}
	}
	t := n.TLS
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" {
			add("nats.tls.cert_file: is required with nats.tls.key_file")
		} else {
			file("nats.tls.cert_file", t.CertFile)
		}
		if t.KeyFile == "" {
			add("nats.tls.key_file: is required with nats.tls.cert_file")
		} else {
			file("nats.tls.key_file", t.KeyFile)
		}
	}
	if t.CAFile != "" {
		file("nats.tls.ca_file", t.CAFile)
		if !t.VerifyClients {
			add("nats.tls.ca_file: verifies client certificates only with nats.tls.verify_clients: true")
		}
	}
	if t.VerifyClients {
		if t.CAFile == "" {
			add("nats.tls.verify_clients: needs nats.tls.ca_file, the CA that signs the client certificates")
		}
		if t.CertFile == "" {
			add("nats.tls.verify_clients: needs nats.tls.cert_file and key_file")
		}
	}
	names := map[string]int{}
	keys := map[string]int{}
	for i, u := range n.Users {
		key := fmt.Sprintf("nats.users[%d]", i)
		if !natsUserName.MatchString(u.Name) {
			add("%s.name: %q: want 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", key, u.Name)
		} else if j, dup := names[u.Name]; dup {
			add("%s.name: %q is already nats.users[%d]", key, u.Name, j)
		} else {
			names[u.Name] = i
		}
		if !slices.Contains(NATSRoles, u.Role) {
			add("%s.role: %q is not a role: want one of %s", key, u.Role, strings.Join(NATSRoles, ", "))
		}
		if u.Role == NATSRolePublisher {
			if len(u.Systems) == 0 {
				add("%s.systems: a publisher needs at least one system", key)
			}
			for j, s := range u.Systems {
				if !c.Known(s) {
					add("%s.systems[%d]: %q is not a configured system", key, j, s)
				}
			}
		} else if len(u.Systems) > 0 && slices.Contains(NATSRoles, u.Role) {
			add("%s.systems: only a publisher has systems (this user is a %s)", key, u.Role)
		}
		switch {
		case u.NKey != "" && u.PasswordFile != "":
			add("%s: give nkey or password_file, not both", key)
		case u.NKey == "" && u.PasswordFile == "":
			add("%s: give nkey (the user's public NKey) or password_file", key)
		case u.NKey != "":
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				add("%s.nkey: %q is not a user's public NKey (U followed by 55 characters; driftwatch nats nkey makes a pair)", key, u.NKey)
			} else if j, dup := keys[u.NKey]; dup {
				add("%s.nkey: the same key as nats.users[%d]", key, j)
			} else {
				keys[u.NKey] = i
			}
		default:
			path := c.NATSPath(u.PasswordFile)
			data, err := os.ReadFile(path)
			switch {
			case err != nil:
				add("%s.password_file: %v", key, err)
			case len(strings.TrimRight(string(data), "\r\n")) == 0:
				add("%s.password_file: %s is empty", key, u.PasswordFile)
			}
		}
	}
}
