package state_test

import (
	"context"
	"fmt"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// benchDB commits 16 hosts of 1 TiB and 20,000 VMs of 512 MiB, half of
// them running, to a bbolt store without fsync (the rules' cost, not the
// disk's, is measured).
func benchDB(b *testing.B) *state.DB {
	st, err := bolt.Open(b.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	db := state.NewDB(st)
	_, err = db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
		for i := range 16 {
			h := host(fmt.Sprintf("h%02d", i), fmt.Sprintf("127.41.1.%d", i), func(h *acliv1.Host) { h.MemoryBytes = 1 << 40 })
			tx.Put(state.HostKey(h.Uuid), h, 0)
		}
		for i := range 20000 {
			on := ""
			if i%2 == 0 {
				on = fmt.Sprintf("h%02d", i%16)
			}
			v := vm(fmt.Sprintf("vm%05d", i), on, 512<<20)
			tx.Put(state.VmKey(v.Uuid), v, 0)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkUpdatePowerOn20000 is one checked commit of a power-on (a VM
// placed on a host, with an arrival held there) in a 20,000-VM cluster.
func BenchmarkUpdatePowerOn20000(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	off := vm("vm00001", "", 512<<20)
	on := vm("vm00001", "h01", 512<<20)
	b.ResetTimer()
	for i := range b.N {
		next := on
		if i%2 == 1 {
			next = off
		} else {
			db.Arrive(on.Uuid, on.HostUuid, on.MemoryBytes)
		}
		if _, err := db.Update(ctx, func(tx *state.Tx) error {
			tx.Put(state.VmKey(next.Uuid), next, state.AnyRev)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateHostCordon20000 is one checked commit of a host record
// (the RF budget reads every host).
func BenchmarkUpdateHostCordon20000(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	open := host("h03", "127.41.1.3", func(h *acliv1.Host) { h.MemoryBytes = 1 << 40 })
	closed := host("h03", "127.41.1.3", func(h *acliv1.Host) { h.MemoryBytes, h.Schedulable = 1<<40, false })
	b.ResetTimer()
	for i := range b.N {
		next := open
		if i%2 == 0 {
			next = closed
		}
		if _, err := db.Update(ctx, func(tx *state.Tx) error {
			tx.Put(state.HostKey(next.Uuid), next, state.AnyRev)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewMemoryTaken is the scheduler's read of one host's memory.
func BenchmarkViewMemoryTaken(b *testing.B) {
	db := benchDB(b)
	b.ResetTimer()
	for range b.N {
		_ = db.MemoryTaken("uuid-h01")
	}
}
