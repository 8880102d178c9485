package image_test

import (
	"fmt"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// BenchmarkGetSnapshotByName10k: snapshot.get by name among 10,000
// snapshots (the last name in UUID order).
func BenchmarkGetSnapshotByName10k(b *testing.B) {
	f := newFixture(b)
	for i := 0; i < 10; i++ {
		if _, err := f.db.Update(bg, func(tx *state.Tx) error {
			for j := 0; j < 1000; j++ {
				id := fmt.Sprintf("%08d-0000-0000-0000-000000000000", i*1000+j)
				tx.Put(state.SnapshotKey(id), &acliv1.Snapshot{Uuid: id, Name: "s" + id[:8], VmUuid: "uuid-db", Vm: &acliv1.Vm{}}, 0)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	req := &acliv1.GetSnapshotRequest{Snapshot: "s00009999"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.GetSnapshot(bg, req); err != nil {
			b.Fatal(err)
		}
	}
}
