package scheduler

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// state is a Snapshot indexed for placement. Plans update it as they go, so
// each decision sees the ones made before it; the caller's Snapshot is never
// modified.
type state struct {
	opt    Options
	hosts  []hostState
	byUUID map[string]int
	vms    []VM
	vmIdx  map[string]int
}

type hostState struct {
	Host
	addr   netip.Addr // parsed IP for tie-breaks; invalid when IP is not an address
	free   int64
	vcpus  int
	nvms   int
	groups map[string]int // running members per anti-affinity group
	// devices is what the host's devices can still give (nil: none).
	devices DevicePool
}

func compile(s *Snapshot, opt Options) (*state, error) {
	st := &state{
		opt:    opt,
		hosts:  make([]hostState, len(s.Hosts)),
		byUUID: make(map[string]int, len(s.Hosts)),
		vms:    s.VMs,
		vmIdx:  make(map[string]int, len(s.VMs)),
	}
	for i := range s.Hosts {
		h := s.Hosts[i]
		if h.UUID == "" {
			return nil, fmt.Errorf("host %q has no UUID", h.Name)
		}
		if _, dup := st.byUUID[h.UUID]; dup {
			return nil, fmt.Errorf("host UUID %s appears twice in the snapshot", h.UUID)
		}
		st.byUUID[h.UUID] = i
		hs := &st.hosts[i]
		hs.Host = h
		hs.addr, _ = netip.ParseAddr(h.IP)
		hs.free = h.MemoryBytes - h.MemoryUsedBytes
		hs.vcpus = h.VCPUsUsed
		if h.Devices != nil {
			hs.devices = h.Devices()
		}
	}
	for i := range s.VMs {
		v := &s.VMs[i]
		if v.UUID == "" {
			return nil, fmt.Errorf("vm %q has no UUID", v.Name)
		}
		if _, dup := st.vmIdx[v.UUID]; dup {
			return nil, fmt.Errorf("vm UUID %s appears twice in the snapshot", v.UUID)
		}
		st.vmIdx[v.UUID] = i
		if !v.Running() {
			continue
		}
		hi, ok := st.byUUID[v.Host]
		if !ok {
			return nil, fmt.Errorf("vm %s is running on host %q, which is not in the snapshot", v.Name, v.Host)
		}
		st.addVM(hi, v, false)
	}
	return st, nil
}

// addVM books v on host hi; withResources also charges memory, vCPUs and
// devices (compile does not: the host's used figures and its device pool
// already include its VMs).
func (st *state) addVM(hi int, v *VM, withResources bool) {
	h := &st.hosts[hi]
	h.nvms++
	if withResources {
		h.free -= v.MemoryBytes
		h.vcpus += v.VCPUs
	}
	for _, g := range v.AntiAffinityGroups {
		if h.groups == nil {
			h.groups = make(map[string]int)
		}
		h.groups[g]++
	}
	if withResources && len(v.Devices) > 0 && h.devices != nil {
		h.devices.Book(v)
	}
}

func (st *state) removeVM(hi int, v *VM) {
	h := &st.hosts[hi]
	h.nvms--
	h.free += v.MemoryBytes
	h.vcpus -= v.VCPUs
	for _, g := range v.AntiAffinityGroups {
		if h.groups[g]--; h.groups[g] <= 0 {
			delete(h.groups, g)
		}
	}
	if len(v.Devices) > 0 && h.devices != nil {
		h.devices.Release(v)
	}
}

// deviceShort says why host h cannot give v its devices ("" when it can).
func (h *hostState) deviceShort(v *VM) string {
	switch {
	case len(v.Devices) == 0:
		return ""
	case h.devices == nil:
		return "no free " + v.Devices[0].Name
	}
	return h.devices.Short(v)
}

// move books v off host from and onto host to.
func (st *state) move(v *VM, from, to int) {
	if from >= 0 {
		st.removeVM(from, v)
	}
	st.addVM(to, v, true)
}

func (st *state) ref(hi int) HostRef { return refOf(&st.hosts[hi].Host) }

// hostLabel names a host UUID for messages: its IP when known.
func (st *state) hostLabel(uuid string) string {
	if hi, ok := st.byUUID[uuid]; ok {
		h := &st.hosts[hi]
		if h.IP != "" {
			return h.IP
		}
		if h.Name != "" {
			return h.Name
		}
	}
	return uuid
}

func (st *state) hostLabels(uuids []string) string {
	parts := make([]string, len(uuids))
	for i, u := range uuids {
		parts[i] = st.hostLabel(u)
	}
	return strings.Join(parts, ", ")
}

// lessByAddr orders hosts by the final tie-break: hypervisor IP, then UUID.
func (a *hostState) lessByAddr(b *hostState) bool {
	switch {
	case a.addr.IsValid() && b.addr.IsValid():
		if c := a.addr.Compare(b.addr); c != 0 {
			return c < 0
		}
	case a.addr.IsValid() != b.addr.IsValid():
		return a.addr.IsValid()
	default:
		if a.IP != b.IP {
			return a.IP < b.IP
		}
	}
	return a.UUID < b.UUID
}

// gib renders a byte count for messages.
func gib(b int64) string {
	const mib = 1 << 20
	if b%(1<<30) == 0 || b >= 10<<30 || b <= -10<<30 {
		return fmt.Sprintf("%.4g GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", b/mib)
}

// sortFunc sorts by a less function; ties keep their order.
func sortFunc[T any](s []T, less func(a, b T) bool) {
	slices.SortStableFunc(s, func(a, b T) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
}
