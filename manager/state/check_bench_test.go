package state

import (
	"fmt"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// BenchmarkCheck20000 is the rules' own cost on one commit in a 16-host,
// 20,000-VM cluster (no store): a power-on and a cordon.
func BenchmarkCheck20000(b *testing.B) {
	db := NewDB(nil)
	db.applyLocked(ClusterKey, &acliv1.Cluster{RedundancyFactor: 2}, 1)
	hostOf := func(i int) *acliv1.Host {
		return &acliv1.Host{Uuid: fmt.Sprintf("h%02d", i), Name: fmt.Sprintf("h%02d", i), HypervisorIp: fmt.Sprintf("127.41.1.%d", i),
			MemoryBytes: 1 << 40, Schedulable: true, CvmState: acliv1.CvmState_kCvmUp}
	}
	for i := range 16 {
		db.applyLocked(HostKey(fmt.Sprintf("h%02d", i)), hostOf(i), 1)
	}
	for i := range 20000 {
		v := &acliv1.Vm{Uuid: fmt.Sprintf("v%05d", i), Name: fmt.Sprintf("vm%05d", i), MemoryBytes: 512 << 20}
		if i%2 == 0 {
			v.PowerState, v.HostUuid = acliv1.PowerState_kOn, fmt.Sprintf("h%02d", i%16)
		}
		db.applyLocked(VmKey(v.Uuid), v, 1)
	}
	db.Arrive("v00003", "h01", 512<<20)
	on := &acliv1.Vm{Uuid: "v00001", Name: "vm00001", MemoryBytes: 512 << 20, PowerState: acliv1.PowerState_kOn, HostUuid: "h01"}
	cordon := hostOf(3)
	cordon.Schedulable = false
	for _, c := range []struct {
		name string
		key  string
		msg  *acliv1.Vm
		host *acliv1.Host
	}{{"power-on", VmKey(on.Uuid), on, nil}, {"cordon", HostKey(cordon.Uuid), nil, cordon}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				tx := &Tx{db: db, staged: map[string]int{}}
				if c.msg != nil {
					tx.Put(c.key, c.msg, AnyRev)
				} else {
					tx.Put(c.key, c.host, AnyRev)
				}
				if vs := tx.check(); len(vs) > 0 {
					b.Fatal(vs)
				}
			}
		})
	}
}
