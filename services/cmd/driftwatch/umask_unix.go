//go:build unix

package main

import "syscall"

// driftwatch's files are private to the user that runs it: the log (the
// embedded server's JetStream store), the Pebble store, exports and
// rebuilt stores are created 0600 and their folders 0700, whatever the
// shell's umask (the events and alerts hold order data, and the store
// holds the audit trail).
func init() { syscall.Umask(0o077) }
