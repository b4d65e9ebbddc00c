package events

import (
	"strconv"
	"testing"
)

func TestPartitionIsFNV1aModuloN(t *testing.T) {
	// The hash is computed here from FNV-1a's offset basis and prime: a
	// change of hash would move every order of a deployed cluster.
	const basis, prime = 2166136261, 16777619
	h := uint32(basis)
	for _, c := range []byte("A-1001") {
		h ^= uint32(c)
		h *= prime
	}
	for _, n := range []int{2, 3, 8, 16, 64} {
		if got, want := Partition("A-1001", n), int(h%uint32(n)); got != want {
			t.Fatalf("Partition(A-1001, %d) = %d, want %d", n, got, want)
		}
	}
	if Partition("A-1001", 1) != 0 || Partition("A-1001", 0) != 0 {
		t.Fatal("one partition (or none) must be partition 0")
	}
	// Orders spread over the partitions.
	counts := make([]int, 8)
	for i := range 8000 {
		counts[Partition("order-"+strconv.Itoa(i), 8)]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("partition %d holds %d of 8000 orders: %v", p, c, counts)
		}
	}
}
