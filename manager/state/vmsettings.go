package state

import (
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// RulePowerState: a VM's virtual hardware (firmware, CPU model and
// topology, vNUMA, pinning, vTPM, memory over-commit) changes only while
// it is off, as on AHV.
const RulePowerState = "POWER_STATE"

// OffOnlyChanges names the settings next changes from prev that need the
// VM off.
func OffOnlyChanges(prev, next *acliv1.Vm) []string {
	if prev == nil || next == nil {
		return nil
	}
	var out []string
	for _, s := range []struct {
		name     string
		was, now any
	}{
		{"uefi_boot", prev.UefiBoot, next.UefiBoot},
		{"num_vnuma_nodes", prev.NumVnumaNodes, next.NumVnumaNodes},
		{"num_threads_per_core", max(prev.NumThreadsPerCore, 1), max(next.NumThreadsPerCore, 1)},
		{"hardware_virtualization", prev.HardwareVirtualization, next.HardwareVirtualization},
		{"memory_overcommit", prev.MemoryOvercommit, next.MemoryOvercommit},
		{"vcpu_hard_pin", prev.VcpuHardPin, next.VcpuHardPin},
		{"cpu_passthrough", prev.CpuPassthrough, next.CpuPassthrough},
		{"virtual_tpm", prev.VirtualTpm, next.VirtualTpm},
	} {
		if s.was != s.now {
			out = append(out, s.name)
		}
	}
	if DevicesChanged(prev, next) {
		out = append(out, "passthrough devices")
	}
	return out
}

// OffOnly describes a change to a running VM's off-only settings ("" if none).
func OffOnly(prev, next *acliv1.Vm) string {
	running := func(v *acliv1.Vm) bool {
		return v.PowerState == acliv1.PowerState_kOn || v.PowerState == acliv1.PowerState_kPaused
	}
	if prev == nil || !running(prev) || !running(next) {
		return ""
	}
	ch := OffOnlyChanges(prev, next)
	if len(ch) == 0 {
		return ""
	}
	return fmt.Sprintf("vm %s is on; %s change only while it is off (vm.off %s first)", next.Name, strings.Join(ch, ", "), next.Name)
}
