package state

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

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
	Failures int            // host failures still to reserve for (the tolerated ones less the hosts out)
	Reserved int64          // memory the worst such failure restarts elsewhere
	Capacity int64          // memory of the hosts in service
	Used     int64          // memory their VMs take, arrivals counted
	Largest  []*acliv1.Host // the hosts of that worst failure
	// Short describes the first failure whose VMs would not fit in the
	// free memory of the hosts left ("" when every failure fits).
	Short string
}

// Free is the memory left outside the reservation (negative: the guarantee is broken).
func (m HAMemory) Free() int64 { return m.Capacity - m.Reserved - m.Used }

// maxFailureSets bounds the host failures checked one by one; past it only
// the hosts with the most to restart are failed together.
const maxFailureSets = 4096

// HAMemory computes the guarantee's picture with v (nil: none) running on
// host. The reservation is per host segment, as AHV's
// kAcropolisHAReserveSegments: for every set of Failures hosts in service,
// each VM HA would restart from them must fit, whole, in the free memory of
// one of the hosts left (first fit, largest first), not merely in their
// total.
func (tx *Tx) HAMemory(v *acliv1.Vm, host string) HAMemory {
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
	// By name, so the failure a refusal names does not depend on UUIDs.
	slices.SortFunc(in, func(a, b *acliv1.Host) int { return strings.Compare(a.Name, b.Name) })
	m := HAMemory{Failures: max(int(h.NumHostFailuresToTolerate)-out, 0)}
	free := make([]bin, len(in))
	segs := make([][]segment, len(in))
	for i, x := range in {
		used := tx.MemoryUsed(x.Uuid) + tx.Reserved(x.Uuid)
		pool := newPool(x)
		for _, vm := range tx.VmsOn(x.Uuid) {
			pool.hold(vm, vm.Devices)
			if restartable(vm) {
				segs[i] = append(segs[i], segment{vm, MemoryReserved(vm)})
			}
		}
		if held := tx.Reserved(x.Uuid); held > 0 {
			segs[i] = append(segs[i], segment{&acliv1.Vm{Name: "arriving VMs"}, held})
		}
		if v != nil && x.Uuid == host && !(Placed(tx.Vm(v.Uuid)) && tx.Vm(v.Uuid).HostUuid == host) {
			used += MemoryReserved(v)
			pool.Book(v)
			if restartable(v) {
				segs[i] = append(segs[i], segment{v, MemoryReserved(v)})
			}
		}
		m.Capacity += x.MemoryBytes
		m.Used += used
		free[i] = bin{x.MemoryBytes - used, pool}
	}
	if m.Failures == 0 || m.Failures >= len(in) {
		return m
	}
	sets := failureSets(len(in), m.Failures, func(i int) int64 { return total(segs[i]) })
	for _, set := range sets {
		var fail []segment
		var names []string
		failed := make([]bool, len(in))
		for _, i := range set {
			fail, failed[i] = append(fail, segs[i]...), true
			names = append(names, label(in[i]))
		}
		if need := total(fail); need > m.Reserved || m.Largest == nil {
			m.Reserved, m.Largest = need, nil
			for _, i := range set {
				m.Largest = append(m.Largest, in[i])
			}
		}
		if m.Short != "" {
			continue
		}
		bins := make([]bin, 0, len(in))
		for i := range in {
			if !failed[i] {
				bins = append(bins, free[i])
			}
		}
		if s, most, ok := firstFit(fail, bins); !ok {
			if most < 0 {
				d := s.vm.Devices[0]
				m.Short = fmt.Sprintf("if host %s fails, vm %s needs a %s %s and none of the hosts left has one free",
					strings.Join(names, " and "), s.vm.Name, DeviceWord(d.Kind), d.Name)
			} else {
				m.Short = fmt.Sprintf("if host %s fails, vm %s (%d MiB) fits in the free memory of none of the hosts left (the most any has is %d MiB)",
					strings.Join(names, " and "), s.vm.Name, s.bytes>>20, most>>20)
			}
		}
	}
	return m
}

// segment is what one VM takes on the host HA restarts it on: its memory
// and its devices.
type segment struct {
	vm    *acliv1.Vm
	bytes int64
}

// bin is what a host left has free: memory, and its devices.
type bin struct {
	bytes int64
	pool  *DevicePool
}

// takes reports whether b has the devices s needs, as the DEVICE rule
// would bind them.
func (b bin) takes(s segment) bool {
	return len(s.vm.Devices) == 0 || b.pool.Short(s.vm) == ""
}

func total(s []segment) int64 {
	var n int64
	for _, x := range s {
		n += x.bytes
	}
	return n
}

// restartable: HA restarts v elsewhere when its host fails (agent VMs stay
// with their host; a negative priority never restarts).
func restartable(v *acliv1.Vm) bool { return !v.AgentVm && v.HaPriority >= 0 }

// firstFit places segs, those needing devices first (they have the fewest
// hosts to go to), then largest first, each in the first bin with the
// memory and the devices it needs. It returns the first segment that fits
// nowhere and the most free memory among the bins with its devices (-1:
// none has them).
func firstFit(segs []segment, bins []bin) (segment, int64, bool) {
	segs = slices.Clone(segs)
	slices.SortStableFunc(segs, func(a, b segment) int {
		if da, db := len(a.vm.Devices) > 0, len(b.vm.Devices) > 0; da != db {
			if da {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.bytes, a.bytes)
	})
	bins = slices.Clone(bins)
	for _, s := range segs {
		i := slices.IndexFunc(bins, func(b bin) bool { return b.bytes >= s.bytes && b.takes(s) })
		if i < 0 {
			most := int64(-1)
			for _, b := range bins {
				if b.takes(s) {
					most = max(most, b.bytes, 0)
				}
			}
			return s, most, false
		}
		if len(s.vm.Devices) > 0 {
			b := &bins[i]
			b.pool = b.pool.Clone()
			b.pool.Book(s.vm)
		}
		bins[i].bytes -= s.bytes
	}
	return segment{}, 0, true
}

// failureSets are the sets of k of n hosts to fail: all of them, or when
// there are too many, the k with the most to restart (weight).
func failureSets(n, k int, weight func(int) int64) [][]int {
	count := 1
	for i := range k {
		count = count * (n - i) / (i + 1)
		if count > maxFailureSets {
			idx := make([]int, n)
			for j := range idx {
				idx[j] = j
			}
			slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(weight(b), weight(a)) })
			return [][]int{idx[:k]}
		}
	}
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			out = append(out, slices.Clone(cur))
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

// HAShortfall says how running v on host (v nil: nothing more) would break
// HA's guarantee ("" when there is none or it holds).
func (tx *Tx) HAShortfall(v *acliv1.Vm, host string) string {
	h := HA(tx.Cluster())
	if !Guarantee(h) {
		return ""
	}
	m := tx.HAMemory(v, host)
	if m.Failures == 0 || m.Short == "" {
		return ""
	}
	return fmt.Sprintf("the HA reservation (kAcropolisHAReserveSegments) keeps room for %d host failure(s): %s", m.Failures, m.Short)
}
