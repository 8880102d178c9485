package events_test

import (
	"context"
	"strconv"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/events"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// The cost of durable numbering: one fsync'd store write per block of
// 1000 events, against publishing with no reservation.
func BenchmarkPublish(b *testing.B) {
	bus := events.New(events.DefaultCapacity, 0)
	for b.Loop() {
		bus.Publish(&acliv1.Event{Type: "vm", Message: "x"})
	}
}

func BenchmarkPublishReserved(b *testing.B) {
	st, err := bolt.Open(b.TempDir(), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	bus := events.New(events.DefaultCapacity, 0)
	bus.Reserve(1000, func(upTo uint64) error {
		_, err := st.Txn(context.Background(), nil, []store.Op{store.PutOp("/event-seq", []byte(strconv.FormatUint(upTo, 10)))})
		return err
	})
	for b.Loop() {
		bus.Publish(&acliv1.Event{Type: "vm", Message: "x"})
	}
}
