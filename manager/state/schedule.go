package state

// The scheduler's view: manager/scheduler plans on plain values, built
// here from one transaction, so every plan reads one consistent state and
// its callers need nothing but a Tx.

import (
	"fmt"
	"net/netip"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
)

// HostUse is the vCPUs and the number of the VMs placed on host, as the
// transaction would leave it.
func (tx *Tx) HostUse(host string) (vcpus, vms int32) {
	vcpus, vms = tx.db.vcpus[host], int32(len(tx.db.onHost[host]))
	for _, w := range tx.writes {
		id, ok := strings.CutPrefix(w.Key, VmPrefix)
		if !ok {
			continue
		}
		if old := tx.db.vms[id]; Placed(old) && old.HostUuid == host {
			vcpus, vms = vcpus-old.NumVcpus, vms-1
		}
		if v, _ := w.Msg.(*acliv1.Vm); Placed(v) && v.HostUuid == host {
			vcpus, vms = vcpus+v.NumVcpus, vms+1
		}
	}
	return vcpus, vms
}

// MemoryTaken is the memory of the VMs placed on host plus what is held
// there for arrivals, as the transaction would leave it.
func (tx *Tx) MemoryTaken(host string) int64 { return tx.MemoryUsed(host) + tx.Reserved(host) }

// Schedule is the cluster as the scheduler sees it: host usage includes
// reservations, so VMs on their way somewhere are accounted for; groups
// maps each VM to its anti-affinity groups (ha.AntiAffinity).
func (tx *Tx) Schedule(groups map[string][]string) *scheduler.Snapshot {
	hosts := tx.Hosts()
	s := &scheduler.Snapshot{Hosts: make([]scheduler.Host, len(hosts))}
	for i, h := range hosts {
		vcpus, _ := tx.HostUse(h.Uuid)
		s.Hosts[i] = schedHost(h, tx.MemoryTaken(h.Uuid), vcpus)
	}
	recs := tx.VmsByName()
	s.VMs = make([]scheduler.VM, len(recs))
	for i, r := range recs {
		s.VMs[i] = SchedVM(r.Vm, groups[r.Vm.Uuid])
	}
	tx.devicePools(s)
	return s
}

// Candidates are the hosts as the placement function sees them.
func (tx *Tx) Candidates() []scheduler.Candidate {
	hosts := tx.Hosts()
	out := make([]scheduler.Candidate, len(hosts))
	for i, h := range hosts {
		vcpus, vms := tx.HostUse(h.Uuid)
		ip, _ := netip.ParseAddr(h.HypervisorIp)
		out[i] = scheduler.Candidate{
			UUID: h.Uuid, Name: h.Name, IP: ip,
			MemoryBytes: h.MemoryBytes, MemoryUsedBytes: tx.MemoryTaken(h.Uuid),
			NumVms: int(vms), Unavailable: Unavailable(h),
			CPUCores: int(h.CpuCores), VcpusUsed: int(vcpus),
		}
	}
	return out
}

func schedHost(h *acliv1.Host, taken int64, vcpus int32) scheduler.Host {
	s := scheduler.Host{
		UUID: h.Uuid, Name: h.Name, IP: h.HypervisorIp, Cores: int(h.CpuCores),
		MemoryBytes: h.MemoryBytes, MemoryUsedBytes: taken, VCPUsUsed: int(vcpus),
		Schedulable: h.Schedulable, UnschedulableReason: h.SchedulableReason,
	}
	switch h.NodeState {
	case acliv1.NodeState_EnteringMaintenanceMode:
		s.State = scheduler.NodeEnteringMaintenance
	case acliv1.NodeState_EnteredMaintenanceMode:
		s.State = scheduler.NodeInMaintenance
	case acliv1.NodeState_kNodeDown:
		s.State = scheduler.NodeDown
	}
	switch h.CvmState {
	case acliv1.CvmState_kCvmDown:
		s.CVM = scheduler.CVMDown
	case acliv1.CvmState_kCvmMaintenance:
		s.CVM = scheduler.CVMMaintenance
	}
	return s
}

// SchedVM is v as the scheduler sees it, in the anti-affinity groups given.
func SchedVM(v *acliv1.Vm, groups []string) scheduler.VM {
	pin := PinnedBy(v)
	s := scheduler.VM{
		UUID: v.Uuid, Name: v.Name, VCPUs: int(v.NumVcpus), MemoryBytes: MemoryReserved(v), Host: v.HostUuid,
		HostAffinity: v.HostAffinity, Agent: v.AgentVm, Passthrough: pin != "", PinnedBy: pin,
		AntiAffinityGroups: groups, HAPriority: int(v.HaPriority),
	}
	for _, d := range v.Devices {
		s.Devices = append(s.Devices, scheduler.Device{Group: d.GroupUuid, Name: DeviceWord(d.Kind) + " " + d.Name})
	}
	switch v.PowerState {
	case acliv1.PowerState_kOn:
		s.Power = scheduler.PowerOn
	case acliv1.PowerState_kPaused:
		s.Power = scheduler.PowerPaused
	}
	return s
}

// PinnedBy names what keeps v on its host, so it cannot live-migrate ("" if
// nothing does).
func PinnedBy(v *acliv1.Vm) string {
	switch {
	case v.CpuPassthrough:
		return "the host CPU passed through"
	case len(v.Devices) > 0:
		return DevicesPin(v)
	case v.Passthrough:
		return "a passthrough device"
	}
	return ""
}

// devicePools gives each host of s its device pool as the DEVICE rule
// judges it, when a VM of s has devices.
func (tx *Tx) devicePools(s *scheduler.Snapshot) {
	vms := map[string]*acliv1.Vm{}
	for _, v := range s.VMs {
		if len(v.Devices) > 0 {
			vms[v.UUID] = tx.Vm(v.UUID)
		}
	}
	if len(vms) == 0 {
		return
	}
	for i := range s.Hosts {
		p := tx.DevicePool(s.Hosts[i].UUID)
		s.Hosts[i].Devices = func() scheduler.DevicePool { return schedPool{p.Clone(), vms} }
	}
}

// schedPool is a DevicePool for the scheduler, which names VMs by its own
// records.
type schedPool struct {
	p   *DevicePool
	vms map[string]*acliv1.Vm
}

func (s schedPool) Short(v *scheduler.VM) string {
	x := s.vms[v.UUID]
	if x == nil {
		return fmt.Sprintf("vm %s is not in the snapshot placement reads", v.Name)
	}
	return s.p.Short(x)
}

func (s schedPool) Book(v *scheduler.VM) {
	if x := s.vms[v.UUID]; x != nil {
		s.p.Book(x)
	}
}

func (s schedPool) Release(v *scheduler.VM) { s.p.Release(v.UUID) }

// DeviceFit says, for placement, why a host cannot give v its devices
// ("" when it can); nil when v has none.
func (db *DB) DeviceFit(v *acliv1.Vm) func(host string) string {
	if len(v.Devices) == 0 {
		return nil
	}
	return func(host string) string {
		var err error
		db.View(func(tx *Tx) { _, err = tx.BindDevices(v, host) })
		if err != nil {
			return err.Error()
		}
		return ""
	}
}

// StartOn is v with a free device of each of its groups on host bound, for
// a move or restart there, or the DEVICE refusal naming the group host has
// none free of.
func (db *DB) StartOn(v *acliv1.Vm, host string) (out *acliv1.Vm, err error) {
	db.View(func(tx *Tx) { out, err = tx.WithDevicesOn(v, host) })
	if err != nil {
		return nil, apierr.Precondition(RuleDevice, "vm:"+v.Name, "vm %s cannot start there: %v", v.Name, err)
	}
	return out, nil
}
