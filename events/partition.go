package events

import "hash/fnv"

// Partition is the partition of orderID among n partitions: FNV-1a (32
// bits) of the order id's bytes, modulo n. It is part of the contract
// (CONTRACT.md section 4): every driftwatch instance, and any middleware
// that wants to know which instance holds an order, computes the same
// number. n below 2 gives partition 0.
func Partition(orderID string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(orderID))
	return int(h.Sum32() % uint32(n))
}
