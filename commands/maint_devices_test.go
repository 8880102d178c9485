package commands

import (
	"testing"

	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// The maintenance check names, for each VM a device pins, every argument
// that lifts it: mode=cold when the cold plan would move the VM offline
// to a host with a free GPU (gpu1: h3's GPU is free), not when none has one
// (gpu2, after gpu3 takes it), beside acpi_shutdown and mode=power_off.
func TestGoldenMaintenanceDeviceHints(t *testing.T) {
	m60 := []sim.DeviceSpec{{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_M60"}}
	m := newMH(t, managertest.Options{Sim: &sim.Config{HostList: []sim.HostSpec{{Devices: m60}, {}, {Devices: m60}}}})
	for _, line := range []string{
		"vm.create gpu1 memory=4G",
		"vm.gpu_assign gpu1 gpu=Nvidia_Tesla_M60",
		"vm.on gpu1 host=h1",
		"vm.create web1 memory=4G",
		"vm.on web1 host=h1",
	} {
		m.must(line)
	}
	code, out, errOut := m.run("host.enter_maintenance_mode_check", "h1")
	if code != 5 || errOut != "Error: host h1 cannot enter maintenance mode: 1 blocker\n" {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	golden(t, "pipe/host.enter_maintenance_mode_check.gpu.txt", out)
	m.must("vm.off gpu1")
	m.must("vm.create gpu3 memory=4G")
	m.must("vm.gpu_assign gpu3 gpu=Nvidia_Tesla_M60")
	m.must("vm.on gpu3 host=h3")
	m.must("vm.on gpu1 host=h1")
	m.expect("host.enter_maintenance_mode_check h1", 5, `Not ok to enter maintenance mode: 1 blocker.
vm gpu1 has a passthrough GPU Nvidia_Tesla_M60 and cannot live-migrate (use non_migratable_vm_action=acpi_shutdown or mode=power_off)

Evacuation plan for h1:
VM name  Action   Target host  Reason
web1     migrate  h2
gpu1     blocked               has a passthrough GPU Nvidia_Tesla_M60 and cannot live-migrate
`, "Error: host h1 cannot enter maintenance mode: 1 blocker\n")
}
