// Package projections is driftwatch's Pebble store: each system's current
// view of every order (the projections), the order index (every event of an
// order by log sequence), acknowledgement links, the ledger of seen event
// ids, and the consumers' checkpoints. Detection's expectations and
// mismatches live in the same store under their own prefixes.
//
// The projection is a state machine: Applier.Apply(batch, delivery) turns one
// log message into writes on a Pebble batch, and the consumer's checkpoint
// (the last applied stream sequence) is written in the same batch. The
// caller commits the batch durably before acknowledging the messages, so a
// crash at any point either keeps the batch and its checkpoint or neither,
// and a redelivered message at or below the checkpoint is skipped: the
// effect is exactly once.
//
// Everything here can be rebuilt from the log (Rebuild), and a rebuild gives
// byte-for-byte the same keys and values as incremental processing: values
// hold only what comes from the log (event fields, the JetStream sequence and
// timestamp, mapping versions), never the time of processing.
//
// # Key layout (format version 1)
//
// Keys are byte strings; "·" below is a 0x00 separator (order ids and event
// ids cannot hold control characters, so it never occurs inside them), and
// <seq> is a stream sequence as 8 bytes big-endian, so keys sort in log
// order.
//
//	m/format                               format version (uvarint)
//	m/stream                               the events stream's creation time, to detect a recreated stream
//	c/<consumer>                           last applied stream sequence of a consumer (checkpoint)
//	n/<consumer>/<counter>                 counters (dead-lettered events, duplicates) of a consumer
//	t/count, t/<p>/held, t/<p>/<consumer>   an instance of a cluster: its partition count, whether it owns partition p, and (while it does not) the checkpoint of each consumer p's state is current at (services/cluster)
//	p/<order_id>·<system>                  the system's projection of the order (Row)
//	h/<order_id>·<seq>                     the order index: one Entry per event of the order
//	k/<order_id>·<system>·<event_id>·<ack system>  an acknowledgement of an event (AckLink)
//	e/<system>·<event_id>                  the ledger of seen event ids -> seq of the first copy
//	s/<seq>                                the sequence index: order id of each applied event
//
// The store owns the whole keyspace: the services that keep their state in
// it do so under a prefix registered here (ServicePrefixes), and nowhere
// else.
//
//	x/...                                  the detector: expectations, mismatches, gate flags, clock statistics, the outbox (services/detector/doc.go)
//	o/...                                  the alert policy: ops alerts, source arrival history (services/policy)
//	r/...                                  reconciliation reports (services/reconcile)
//
// Ties: a system's current state is its latest event by occurred_at,
// compared as instants; two events of one system with the same instant are
// ordered by stream sequence, so the later-logged one wins. This is
// deterministic because the log's order is fixed.
package projections
