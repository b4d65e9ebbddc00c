package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/driftwatch/driftwatch/services/apptest"
	"github.com/driftwatch/driftwatch/services/cluster"
)

// TestWrittenFirst races two creates of a deleted key, as two instances
// race for a partition the last owner gave back, on a replicated bucket:
// one wins, and the other's error, whatever its form, says another
// client wrote the key first.
func TestWrittenFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster")
	}
	_, url := apptest.StartCluster(t, 3)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "RACE", Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	notExists := 0
	for i := range 20 {
		key := fmt.Sprintf("partitions.%d", i)
		if _, err := kv.Put(ctx, key, []byte("old")); err != nil {
			t.Fatal(err)
		}
		if err := kv.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		for _, name := range []string{"a", "b"} {
			go func() {
				_, err := kv.Create(ctx, key, []byte(name))
				errs <- err
			}()
		}
		won := 0
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				won++
			case !cluster.WrittenFirst(err):
				t.Fatalf("create of %s lost with %v, not seen as written first", key, err)
			case !errors.Is(err, jetstream.ErrKeyExists):
				notExists++
			}
		}
		if won != 1 {
			t.Fatalf("%d creates of the deleted %s won", won, key)
		}
	}
	t.Logf("%d of 20 lost creates were not ErrKeyExists", notExists)
}
