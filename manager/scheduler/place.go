package scheduler

import (
	"fmt"
	"strings"
)

// Placement is a chosen host.
type Placement struct {
	Host HostRef
	// Notes lists the soft rules the choice could not honour (anti-affinity,
	// vCPU ratio, CVM down), empty when it honours them all.
	Notes []string
}

// Rejection says why one host cannot take a VM.
type Rejection struct {
	Host    HostRef
	Reasons []string
}

func (r Rejection) String() string { return r.Host.String() + ": " + strings.Join(r.Reasons, ", ") }

// NoEligibleHostError lists every host considered and why each was rejected.
type NoEligibleHostError struct {
	VM         VMRef
	Rejections []Rejection // in hypervisor IP order
}

func (e *NoEligibleHostError) Error() string {
	if len(e.Rejections) == 0 {
		return fmt.Sprintf("no eligible host for vm %s: the cluster has no hosts", e.VM)
	}
	parts := make([]string, len(e.Rejections))
	for i, r := range e.Rejections {
		parts[i] = r.String()
	}
	return fmt.Sprintf("no eligible host for vm %s: %s", e.VM, strings.Join(parts, "; "))
}

// Place chooses a host for a VM that is not running (power-on, create, or
// restart). The VM need not be in the snapshot.
func Place(s *Snapshot, vm VM, opt Options) (Placement, error) {
	st, err := compile(s, opt)
	if err != nil {
		return Placement{}, err
	}
	if i, ok := st.vmIdx[vm.UUID]; ok && st.vms[i].Running() {
		return Placement{}, fmt.Errorf("vm %s is already running on %s", vm.Name, st.hostLabel(st.vms[i].Host))
	}
	hi, rej := st.place(&vm, nil)
	if hi < 0 {
		return Placement{}, &NoEligibleHostError{VM: vmRefOf(&vm), Rejections: rej}
	}
	return st.placement(hi, &vm), nil
}

// CanLiveMigrate says why a VM cannot live-migrate, or nil when it can.
// It names no override: whether moving offline would serve depends on
// where the VM could go (the caller's question).
func CanLiveMigrate(v *VM) error {
	switch {
	case !v.Running():
		return fmt.Errorf("vm %s is off; only a running VM can live-migrate (power it on, or use live=false)", v.Name)
	case v.Agent:
		return fmt.Errorf("vm %s is an agent VM and stays on its host", v.Name)
	case v.Passthrough:
		return fmt.Errorf("vm %s has %s and cannot live-migrate", v.Name, v.pinnedBy())
	}
	return nil
}

// PickMigrationTarget chooses where to move a running VM. It never answers
// the VM's current host, nor excludeHost when that is set: asked to move, the
// VM moves or the error says why no host can take it. Agent VMs are refused;
// whether the move is live is the caller's concern (see CanLiveMigrate).
func PickMigrationTarget(s *Snapshot, vmUUID, excludeHost string, opt Options) (Placement, error) {
	st, err := compile(s, opt)
	if err != nil {
		return Placement{}, err
	}
	i, ok := st.vmIdx[vmUUID]
	if !ok {
		return Placement{}, fmt.Errorf("vm %s is not in the snapshot", vmUUID)
	}
	v := &st.vms[i]
	if !v.Running() {
		return Placement{}, fmt.Errorf("vm %s is off and has nothing to migrate (power it on first)", v.Name)
	}
	if v.Agent {
		return Placement{}, fmt.Errorf("vm %s is an agent VM and stays on its host", v.Name)
	}
	excl := make([]string, len(st.hosts))
	excl[st.byUUID[v.Host]] = "current host"
	if xi, ok := st.byUUID[excludeHost]; ok && excludeHost != v.Host {
		excl[xi] = "excluded"
	}
	hi, rej := st.place(v, excl)
	if hi < 0 {
		return Placement{}, &NoEligibleHostError{VM: vmRefOf(v), Rejections: rej}
	}
	return st.placement(hi, v), nil
}

// CheckTarget says why a running VM cannot move to the named host, or nil
// when it can (vm.migrate with host=).
func CheckTarget(s *Snapshot, vmUUID, hostUUID string, opt Options) error {
	st, err := compile(s, opt)
	if err != nil {
		return err
	}
	i, ok := st.vmIdx[vmUUID]
	if !ok {
		return fmt.Errorf("vm %s is not in the snapshot", vmUUID)
	}
	v := &st.vms[i]
	hi, ok := st.byUUID[hostUUID]
	if !ok {
		return fmt.Errorf("host %s is not in the snapshot", hostUUID)
	}
	if v.Host == hostUUID {
		return fmt.Errorf("vm %s is already on %s; name another host or omit host= to let the scheduler choose", v.Name, st.ref(hi))
	}
	if ok, reasons := st.check(hi, v, nil, true); !ok {
		return fmt.Errorf("cannot move vm %s to %s: %s", v.Name, st.ref(hi), strings.Join(reasons, ", "))
	}
	return nil
}

// check applies the must-rules of host hi for v. excl, when set, holds a
// reason per host that rules it out before anything else. With collect it
// gathers every failed rule; without it, it stops at the first and allocates
// nothing.
func (st *state) check(hi int, v *VM, excl []string, collect bool) (bool, []string) {
	h := &st.hosts[hi]
	var reasons []string
	fail := func(r string) bool {
		if collect {
			reasons = append(reasons, r)
		}
		return collect
	}
	if excl != nil && excl[hi] != "" {
		if !fail(excl[hi]) {
			return false, nil
		}
	}
	if h.State != NodeNormal {
		if !fail(h.State.String()) {
			return false, nil
		}
	}
	if !h.Schedulable {
		r := "not schedulable"
		if collect && h.UnschedulableReason != "" {
			r += " (" + h.UnschedulableReason + ")"
		}
		if !fail(r) {
			return false, nil
		}
	}
	if len(v.HostAffinity) > 0 && !contains(v.HostAffinity, h.UUID) {
		if !fail("not in the VM's host affinity") {
			return false, nil
		}
	}
	if why := h.deviceShort(v); why != "" {
		if !fail(why) {
			return false, nil
		}
	}
	if v.MemoryBytes > h.free {
		r := ""
		if collect {
			r = fmt.Sprintf("insufficient memory (needs %s, %s free)", gib(v.MemoryBytes), gib(max(h.free, 0)))
		}
		if !fail(r) {
			return false, nil
		}
	}
	return len(reasons) == 0, reasons
}

// soft is how far host hi is from honouring the soft rules for v; lower is better.
type soft struct {
	antiAffinity int  // members of v's groups already there
	cpuOver      bool // vCPU ratio above the limit once v is there
	cvmDown      bool
}

func (st *state) soft(hi int, v *VM) soft {
	h := &st.hosts[hi]
	var s soft
	for _, g := range v.AntiAffinityGroups {
		s.antiAffinity += h.groups[g]
	}
	s.cpuOver = st.cpuRatio(hi, v) > st.opt.cpuLimit()
	s.cvmDown = h.CVM != CVMUp
	return s
}

func (st *state) cpuRatio(hi int, v *VM) float64 {
	h := &st.hosts[hi]
	if h.Cores <= 0 {
		return float64(h.vcpus+v.VCPUs) * 1e9 // no cores known: always over
	}
	return float64(h.vcpus+v.VCPUs) / float64(h.Cores)
}

// better reports whether host a beats host b for a VM, given their soft scores.
func (st *state) better(a int, sa soft, b int, sb soft) bool {
	if sa.antiAffinity != sb.antiAffinity {
		return sa.antiAffinity < sb.antiAffinity
	}
	if sa.cpuOver != sb.cpuOver {
		return !sa.cpuOver
	}
	if sa.cvmDown != sb.cvmDown {
		return !sa.cvmDown
	}
	ha, hb := &st.hosts[a], &st.hosts[b]
	if ha.free != hb.free {
		return ha.free > hb.free
	}
	if ha.nvms != hb.nvms {
		return ha.nvms < hb.nvms
	}
	return ha.lessByAddr(hb)
}

// place returns the best host for v, or -1 and every host's rejection.
func (st *state) place(v *VM, excl []string) (int, []Rejection) {
	best := -1
	var bestSoft soft
	for hi := range st.hosts {
		if ok, _ := st.check(hi, v, excl, false); !ok {
			continue
		}
		s := st.soft(hi, v)
		if best < 0 || st.better(hi, s, best, bestSoft) {
			best, bestSoft = hi, s
		}
	}
	if best >= 0 {
		return best, nil
	}
	return -1, st.rejections(v, excl)
}

func (st *state) rejections(v *VM, excl []string) []Rejection {
	order := st.hostOrder()
	rej := make([]Rejection, 0, len(order))
	for _, hi := range order {
		_, reasons := st.check(hi, v, excl, true)
		rej = append(rej, Rejection{Host: st.ref(hi), Reasons: reasons})
	}
	return rej
}

// hostOrder lists host indexes by hypervisor IP, for stable messages.
func (st *state) hostOrder() []int {
	order := make([]int, len(st.hosts))
	for i := range order {
		order[i] = i
	}
	sortFunc(order, func(a, b int) bool { return st.hosts[a].lessByAddr(&st.hosts[b]) })
	return order
}

func (st *state) placement(hi int, v *VM) Placement {
	p := Placement{Host: st.ref(hi)}
	s := st.soft(hi, v)
	h := &st.hosts[hi]
	if s.antiAffinity > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("anti-affinity not honoured: %d other member(s) of the VM's groups already on %s", s.antiAffinity, p.Host))
	}
	if s.cpuOver {
		p.Notes = append(p.Notes, fmt.Sprintf("vCPU ratio on %s becomes %.2f, above %.2f", p.Host, st.cpuRatio(hi, v), st.opt.cpuLimit()))
	}
	if s.cvmDown {
		p.Notes = append(p.Notes, fmt.Sprintf("CVM on %s is %s; disks are served by a remote CVM", p.Host, h.CVM))
	}
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
