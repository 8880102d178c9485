package state

import (
	"fmt"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// BenchmarkHAGuarantee20000 is the HA segment check of one power-on commit
// in a 16-host, 20,000-VM cluster (10,000 running) with the guarantee on,
// for 1 and 2 tolerated host failures (16 and 120 failure sets).
func BenchmarkHAGuarantee20000(b *testing.B) {
	for _, failures := range []int32{1, 2} {
		db := NewDB(nil)
		db.applyLocked(ClusterKey, &acliv1.Cluster{RedundancyFactor: 3, Ha: &acliv1.HaConfig{FailoverEnabled: true,
			NumHostFailuresToTolerate: failures, ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}}, 1)
		for i := range 16 {
			db.applyLocked(HostKey(fmt.Sprintf("h%02d", i)), &acliv1.Host{Uuid: fmt.Sprintf("h%02d", i), Name: fmt.Sprintf("h%02d", i),
				HypervisorIp: fmt.Sprintf("127.46.1.%d", i), MemoryBytes: 8 << 40, Schedulable: true, NodeState: acliv1.NodeState_AcropolisNormal}, 1)
		}
		for i := range 20000 {
			v := &acliv1.Vm{Uuid: fmt.Sprintf("v%05d", i), Name: fmt.Sprintf("vm%05d", i), MemoryBytes: int64(1+i%8) << 28}
			if i%2 == 0 {
				v.PowerState, v.HostUuid = acliv1.PowerState_kOn, fmt.Sprintf("h%02d", i%16)
			}
			db.applyLocked(VmKey(v.Uuid), v, 1)
		}
		on := &acliv1.Vm{Uuid: "v00001", Name: "vm00001", MemoryBytes: 512 << 20, PowerState: acliv1.PowerState_kOn, HostUuid: "h01"}
		b.Run(fmt.Sprintf("failures=%d", failures), func(b *testing.B) {
			for range b.N {
				tx := &Tx{db: db, staged: map[string]int{}}
				tx.Put(VmKey(on.Uuid), on, AnyRev)
				if vs := tx.check(); len(vs) > 0 {
					b.Fatal(vs)
				}
			}
		})
	}
}
