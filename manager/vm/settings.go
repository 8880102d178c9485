package vm

import (
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// The VM's shape (vCPUs, cores, memory) and virtual hardware settings
// (acli's uefi_boot, num_vnuma_nodes, num_threads_per_core,
// hardware_virtualization, memory_overcommit, vcpu_hard_pin,
// cpu_passthrough, virtual_tpm). The settings need the VM off to change:
// state refuses it at commit (state.RulePowerState).

// maxThreadsPerCore bounds num_threads_per_core (SMT width of x86 hosts
// and then some).
const maxThreadsPerCore = 8

// CheckShape validates (and defaults, when create) the sizing fields.
func CheckShape(vcpus, cores *int32, mem, dirty int64, create bool) []apierr.Field {
	var bad []apierr.Field
	if create && *vcpus == 0 {
		*vcpus = 1
	}
	if create && *cores == 0 {
		*cores = 1
	}
	if *vcpus < 1 {
		bad = append(bad, apierr.Field{Field: "num_vcpus", Description: fmt.Sprintf("num_vcpus %d must be at least 1", *vcpus)})
	}
	if *cores < 1 {
		bad = append(bad, apierr.Field{Field: "num_cores_per_vcpu", Description: fmt.Sprintf("num_cores_per_vcpu %d must be at least 1", *cores)})
	}
	if mem <= 0 {
		bad = append(bad, apierr.Field{Field: "memory_bytes", Description: fmt.Sprintf("memory %d must be greater than 0, e.g. memory=4G", mem)})
	}
	if dirty < 0 {
		bad = append(bad, apierr.Field{Field: "dirty_rate_mbps", Description: fmt.Sprintf("dirty_rate_mbps %d must not be negative", dirty)})
	}
	return bad
}

// settingsFromCreate copies a create request's settings onto v.
func settingsFromCreate(v *acliv1.Vm, req *acliv1.CreateVmRequest) {
	v.UefiBoot, v.NumVnumaNodes, v.NumThreadsPerCore = req.UefiBoot, req.NumVnumaNodes, req.NumThreadsPerCore
	v.HardwareVirtualization, v.MemoryOvercommit = req.HardwareVirtualization, req.MemoryOvercommit
	v.VcpuHardPin, v.CpuPassthrough, v.VirtualTpm = req.VcpuHardPin, req.CpuPassthrough, req.VirtualTpm
	if v.NumThreadsPerCore == 0 {
		v.NumThreadsPerCore = 1
	}
}

// settingsFromUpdate applies an update request's settings to v and names
// the ones given.
func settingsFromUpdate(v *acliv1.Vm, req *acliv1.UpdateVmRequest) []string {
	var changed []string
	setGiven(&changed, &v.UefiBoot, req.UefiBoot, "uefi_boot")
	setGiven(&changed, &v.NumVnumaNodes, req.NumVnumaNodes, "num_vnuma_nodes")
	setGiven(&changed, &v.NumThreadsPerCore, req.NumThreadsPerCore, "num_threads_per_core")
	setGiven(&changed, &v.HardwareVirtualization, req.HardwareVirtualization, "hardware_virtualization")
	setGiven(&changed, &v.MemoryOvercommit, req.MemoryOvercommit, "memory_overcommit")
	setGiven(&changed, &v.VcpuHardPin, req.VcpuHardPin, "vcpu_hard_pin")
	setGiven(&changed, &v.CpuPassthrough, req.CpuPassthrough, "cpu_passthrough")
	setGiven(&changed, &v.VirtualTpm, req.VirtualTpm, "virtual_tpm")
	return changed
}

// setGiven copies an update's optional field onto dst when the request
// gave it, and names it in changed.
func setGiven[T any](changed *[]string, dst, src *T, name string) {
	if src != nil {
		*dst = *src
		*changed = append(*changed, name)
	}
}

// checkSettings validates the settings against each other and the VM's shape.
func checkSettings(v *acliv1.Vm) []apierr.Field {
	var bad []apierr.Field
	add := func(field, format string, args ...any) {
		bad = append(bad, apierr.Field{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	vcpus := v.NumVcpus * max(v.NumCoresPerVcpu, 1) * max(v.NumThreadsPerCore, 1)
	switch n := v.NumVnumaNodes; {
	case n < 0:
		add("num_vnuma_nodes", "num_vnuma_nodes %d must not be negative (0: no vNUMA)", n)
	case n > 0 && vcpus%n != 0:
		add("num_vnuma_nodes", "num_vnuma_nodes %d must divide the VM's %d vCPUs evenly", n, vcpus)
	case n > 0 && (v.MemoryBytes>>20)%int64(n) != 0:
		add("num_vnuma_nodes", "num_vnuma_nodes %d must divide the VM's %d MiB of memory evenly", n, v.MemoryBytes>>20)
	}
	if t := v.NumThreadsPerCore; t < 1 || t > maxThreadsPerCore {
		add("num_threads_per_core", "num_threads_per_core %d must be 1 to %d", t, maxThreadsPerCore)
	}
	if v.VirtualTpm && !v.UefiBoot {
		add("virtual_tpm", "virtual_tpm needs UEFI firmware; add uefi_boot=true")
	}
	return bad
}

// refuseOffOnly refuses, before any task starts, a change that the commit
// would refuse: off-only settings of a running VM.
func refuseOffOnly(cur, next *acliv1.Vm) error {
	if why := state.OffOnly(cur, next); why != "" {
		return apierr.Precondition(state.RulePowerState, "vm:"+cur.Name, "%s", why)
	}
	return nil
}
