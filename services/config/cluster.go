package config

import (
	"time"

	"github.com/driftwatch/driftwatch/events"
)

// Cluster shares the work among driftwatch instances on one JetStream
// cluster (services/cluster): orders are split into Partitions by
// events.Partition, and each instance owns a set of them under a lease in
// a NATS key-value bucket.
type Cluster struct {
	// Instance names this instance (serve --instance). Empty: the one
	// instance owns every order, without leases (the default).
	Instance string `yaml:"instance"`
	// Partitions is how many parts the orders are split into: the most
	// instances that can share the work. Every instance must use the
	// same number; it changes only by the procedure in the README (Scale
	// out).
	Partitions int `yaml:"partitions"`
	// Lease is how long an instance's claim on its partitions lasts
	// without renewal (renewed every third of it): a dead instance's
	// partitions move after at most about this long.
	Lease Duration `yaml:"lease"`
}

// Clustered reports whether this instance shares the work with others.
func (c *Config) Clustered() bool { return c.Cluster.Instance != "" }

// DefaultPartitions is cluster.partitions when the file leaves it out.
const DefaultPartitions = 16

func (c *Config) validateCluster(add func(format string, args ...any)) {
	cl := c.Cluster
	if cl.Instance != "" && !events.ValidSystemID(cl.Instance) {
		add("cluster.instance: %q: want a name of lower-case letters, digits, _ and - starting with a letter, at most 32 long", cl.Instance)
	}
	if cl.Partitions < 1 || cl.Partitions > 1024 {
		add("cluster.partitions: %d: want 1 to 1024", cl.Partitions)
	}
	if cl.Lease.D() < time.Second {
		add("cluster.lease: %s: want at least 1s", cl.Lease.D())
	}
}
