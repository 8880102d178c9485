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

// Hold holds on host the memory v reserves there (MemoryReserved) until
// Depart(id) or until v is committed as placed on host: what a VM on its
// way somewhere (a power-on, a migration, an HA restart) keeps, counted by
// the same rule as the commit that ends it.
func (db *DB) Hold(v *acliv1.Vm, host string) uint64 {
	return db.Arrive(v.Uuid, host, MemoryReserved(v))
}
