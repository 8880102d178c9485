package state

import (
	"cmp"
	"fmt"
	"slices"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// RuleHAReservation: with HA's guarantee (kAcropolisHAReserveSegments) the
// running VMs fit on the hosts left after the num_host_failures_to_tolerate
// largest hosts fail. A host already out of service is one of those
// failures: its share of the reservation is in use.
const RuleHAReservation = "HA_RESERVATION"

// HA is the cluster's HA settings with the defaults filled in: failover on,
// best effort, one host failure.
func HA(c *acliv1.Cluster) *acliv1.HaConfig {
	h := &acliv1.HaConfig{FailoverEnabled: true, NumHostFailuresToTolerate: 1, ReservationType: acliv1.HaReservationType_kAcropolisHANoReservations}
	if c.GetHa() != nil {
		h.FailoverEnabled, h.NumHostFailuresToTolerate = c.Ha.FailoverEnabled, c.Ha.NumHostFailuresToTolerate
		if c.Ha.ReservationType != 0 {
			h.ReservationType = c.Ha.ReservationType
		}
	}
	return h
}

// Guarantee reports whether HA reserves memory for host failures.
func Guarantee(h *acliv1.HaConfig) bool {
	return h.FailoverEnabled && h.ReservationType == acliv1.HaReservationType_kAcropolisHAReserveSegments
}

// HAMemory is the memory picture of HA's guarantee over the hosts in service.
type HAMemory struct {
	Failures int   // host failures still to reserve for (the tolerated ones less the hosts out)
	Reserved int64 // memory of the Failures largest hosts in service
	Capacity int64 // memory of the hosts in service
	Used     int64 // memory their VMs take, arrivals counted
	Largest  []*acliv1.Host
}

// Free is the memory left outside the reservation (negative: the guarantee is broken).
func (m HAMemory) Free() int64 { return m.Capacity - m.Reserved - m.Used }

// HAMemory computes the guarantee's picture with extra bytes more in use.
func (tx *Tx) HAMemory(extra int64) HAMemory {
	h := HA(tx.Cluster())
	var in []*acliv1.Host
	out := 0
	for _, x := range tx.Hosts() {
		if x.NodeState == acliv1.NodeState_AcropolisNormal {
			in = append(in, x)
		} else {
			out++
		}
	}
	m := HAMemory{Failures: max(int(h.NumHostFailuresToTolerate)-out, 0), Used: extra}
	slices.SortFunc(in, func(a, b *acliv1.Host) int { return cmp.Compare(b.MemoryBytes, a.MemoryBytes) })
	for i, x := range in {
		m.Capacity += x.MemoryBytes
		m.Used += tx.MemoryUsed(x.Uuid) + tx.Reserved(x.Uuid)
		if i < m.Failures {
			m.Reserved += x.MemoryBytes
			m.Largest = append(m.Largest, x)
		}
	}
	return m
}

// HAShortfall says how starting extra bytes more would break HA's
// guarantee ("" when there is none or it holds).
func (tx *Tx) HAShortfall(extra int64) string {
	h := HA(tx.Cluster())
	if !Guarantee(h) {
		return ""
	}
	m := tx.HAMemory(extra)
	if m.Failures == 0 || m.Free() >= 0 {
		return ""
	}
	return fmt.Sprintf("the HA reservation (kAcropolisHAReserveSegments) keeps %d MiB free for %d host failure(s); running VMs would take %d MiB of the %d MiB left outside it",
		m.Reserved>>20, m.Failures, m.Used>>20, (m.Capacity-m.Reserved)>>20)
}
