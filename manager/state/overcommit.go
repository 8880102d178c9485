package state

import acliv1 "github.com/acli-dev/acli/api/acli/v1"

// OvercommitShare is the part of its memory (numerator over
// OvercommitDenominator) a memory_overcommit VM reserves on its host. AHV
// backs such a VM's memory only partly and reclaims the rest under
// pressure; acli's reference and the field reports give no ratio, so half
// is reserved: two overcommitted VMs fit where one full one does, and a
// host never promises more than twice its memory to them.
const (
	OvercommitShare       = 1
	OvercommitDenominator = 2
)

// MemoryReserved is the memory v takes on its host for the MEMORY rule,
// the scheduler and HA's guarantee.
func MemoryReserved(v *acliv1.Vm) int64 {
	if v.GetMemoryOvercommit() {
		return v.MemoryBytes * OvercommitShare / OvercommitDenominator
	}
	return v.GetMemoryBytes()
}
