package commands

import (
	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
)

// acli's VM hardware settings, shared by vm.create and vm.update. All but
// annotation need the VM off to change (clusterd refuses with exit 5).
var (
	vmSettingKeys = []Key{
		{Name: "uefi_boot", Type: TypeBool, Help: "boot from UEFI firmware instead of BIOS"},
		{Name: "num_vnuma_nodes", Type: TypeInt, Min: 0, Max: 64, Help: "virtual NUMA nodes; they must divide the vCPUs and memory evenly (0: none)"},
		{Name: "num_threads_per_core", Type: TypeInt, Min: 1, Max: 8, Help: "threads per core (vCPUs = num_vcpus x num_cores_per_vcpu x threads)"},
		{Name: "hardware_virtualization", Type: TypeBool, Help: "nested virtualization: the guest sees the CPU's virtualization extensions"},
		{Name: "memory_overcommit", Type: TypeBool, Help: "the VM's memory may be over-committed on its host"},
		{Name: "vcpu_hard_pin", Type: TypeBool, Help: "pin each vCPU to a host CPU"},
		{Name: "cpu_passthrough", Type: TypeBool, Help: "give the guest the host's CPU model (the VM can no longer live-migrate)"},
		{Name: "virtual_tpm", Type: TypeBool, Help: "a virtual TPM 2.0 (needs uefi_boot=true)"},
	}
	vmAnnotationKey = Key{Name: "annotation", Type: TypeString, Help: "free text shown by vm.get (acli's name for description)", Example: `"web tier"`}
)

// settingsCreate puts the settings given on the command line into req.
func settingsCreate(r *Req, req *acliv1.CreateVmRequest) {
	req.UefiBoot, req.NumVnumaNodes, req.NumThreadsPerCore = r.Bool("uefi_boot"), r.Int32("num_vnuma_nodes"), r.Int32("num_threads_per_core")
	req.HardwareVirtualization, req.MemoryOvercommit = r.Bool("hardware_virtualization"), r.Bool("memory_overcommit")
	req.VcpuHardPin, req.CpuPassthrough, req.VirtualTpm = r.Bool("vcpu_hard_pin"), r.Bool("cpu_passthrough"), r.Bool("virtual_tpm")
	if r.Has("annotation") {
		req.Description = r.String("annotation")
	}
}

// settingsUpdate puts the settings given on the command line into u.
func settingsUpdate(r *Req, u *acliv1.UpdateVmRequest) {
	b := func(key string) *bool {
		if !r.Has(key) {
			return nil
		}
		return proto.Bool(r.Bool(key))
	}
	i := func(key string) *int32 {
		if !r.Has(key) {
			return nil
		}
		return proto.Int32(r.Int32(key))
	}
	u.UefiBoot, u.NumVnumaNodes, u.NumThreadsPerCore = b("uefi_boot"), i("num_vnuma_nodes"), i("num_threads_per_core")
	u.HardwareVirtualization, u.MemoryOvercommit = b("hardware_virtualization"), b("memory_overcommit")
	u.VcpuHardPin, u.CpuPassthrough, u.VirtualTpm = b("vcpu_hard_pin"), b("cpu_passthrough"), b("virtual_tpm")
	if r.Has("annotation") {
		u.Description = proto.String(r.String("annotation"))
	}
}

// validateAnnotation refuses annotation= with description=: they set the same text.
func validateAnnotation(inv *Invocation) error {
	if inv.Set["annotation"] && inv.Set["description"] {
		return usageErrorf("%s: annotation= and description= set the same text; give one", inv.Cmd.Name)
	}
	return nil
}

// vmPowerCycle is acli's vm.power_cycle: a hard reset where the VM runs.
func vmPowerCycle() *Command {
	c := powerCommand("vm.power_cycle", "Power cycle VMs (hard reset where they run)", acliv1.PowerTransition_kPowerCycle)
	c.Description = "Resets each running VM on its host, as pressing its reset button would; a VM that is off is refused (exit 5)."
	return c
}

// vmSettingsBlock adds the settings that differ from a plain VM's to the
// readable block.
func vmSettingsBlock(b *render.Block, v *acliv1.Vm) {
	if t := v.GetNumThreadsPerCore(); t > 1 {
		b.Add("Threads per core", i32(t))
	}
	if n := v.GetNumVnumaNodes(); n > 0 {
		b.Add("vNUMA nodes", i32(n))
	}
	for _, f := range []struct {
		label string
		on    bool
	}{
		{"UEFI boot", v.GetUefiBoot()}, {"Hardware virtualization", v.GetHardwareVirtualization()},
		{"Memory overcommit", v.GetMemoryOvercommit()}, {"vCPU hard pin", v.GetVcpuHardPin()},
		{"CPU passthrough", v.GetCpuPassthrough()}, {"Virtual TPM", v.GetVirtualTpm()},
	} {
		if f.on {
			b.Add(f.label, yesNo(true))
		}
	}
}
