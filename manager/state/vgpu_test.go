package state_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

const (
	profile2Q = "group-m60-2q"
	profile8Q = "group-m60-8q"
)

// withSplitGPU gives h one M60 that serves two 2Q vGPUs or one 8Q.
func withSplitGPU(h *acliv1.Host) {
	withGPU(h)
	h.Devices[0].VgpuProfiles = []*acliv1.VgpuProfile{
		{Name: "Nvidia_Tesla_M60-2Q", TypeId: "nvidia-18", Count: 2, GroupUuid: profile2Q},
		{Name: "Nvidia_Tesla_M60-8Q", TypeId: "nvidia-22", Count: 1, GroupUuid: profile8Q},
	}
}

func vgpuVm(name, on, group, mdev string) *acliv1.Vm {
	v := vm(name, on, gib)
	d := &acliv1.VmDevice{Kind: acliv1.DeviceKind_kVirtualGpu, GroupUuid: group, Name: "Nvidia_Tesla_M60-2Q", MdevUuid: mdev}
	if group == profile8Q {
		d.Name = "Nvidia_Tesla_M60-8Q"
	}
	if on != "" {
		d.Address = "0000:3b:00.0"
	}
	v.Devices = []*acliv1.VmDevice{d}
	return v
}

// The vGPU rules hold at commit, whatever placement decided: a profile's
// count, one profile per GPU, and vGPUs and passthrough never on one GPU.
func TestVgpuRulesAtCommit(t *testing.T) {
	db := newDB(t)
	if err := commitAll(db, host("h2", "127.41.0.2", withSplitGPU)); err != nil {
		t.Fatal(err)
	}
	if err := commitAll(db, vgpuVm("x1", "h2", profile2Q, "m-1"), vgpuVm("x2", "h2", profile2Q, "m-2")); err != nil {
		t.Fatal(err)
	}
	violation(t, commitAll(db, vgpuVm("x3", "h2", profile2Q, "m-3")), state.RuleDevice,
		"the GPU at 0000:3b:00.0 on host h2 (127.41.0.2) would serve Nvidia_Tesla_M60-2Q to 3 VMs; its most is 2 (vm.off one first)")
	violation(t, commitAll(db, vgpuVm("x3", "h2", profile8Q, "m-3")), state.RuleDevice,
		"the GPU at 0000:3b:00.0 on host h2 (127.41.0.2) serves another vGPU profile to vm x1: one profile per GPU at a time")
	violation(t, commitAll(db, gpuVm("g", "h2", "0000:3b:00.0")), state.RuleDevice,
		"the GPU at 0000:3b:00.0 on host h2 (127.41.0.2) serves vGPUs: it cannot be passed through to vm g too")
	violation(t, commitAll(db, vgpuVm("x1", "h2", profile2Q, "")), state.RuleDevice,
		"vm x1 cannot run its vGPU Nvidia_Tesla_M60-2Q without a mediated device UUID")
	violation(t, commitAll(db, vgpuVm("x3", "h3", profile2Q, "m-3")), state.RuleDevice,
		"host h3 (127.41.0.3) has no GPU at 0000:3b:00.0 offering vGPU Nvidia_Tesla_M60-2Q for vm x3")

	// Placement sees the same: no room for a 2Q, no GPU for passthrough;
	// host.get lists the holders under their profile.
	db.View(func(tx *state.Tx) {
		if _, err := tx.BindDevices(vgpuVm("x3", "", profile2Q, ""), "uuid-h2"); err == nil || err.Error() != "host h2 (127.41.0.2) has no GPU with room for a vGPU Nvidia_Tesla_M60-2Q" {
			t.Errorf("bind a third 2Q: %v", err)
		}
		if _, err := tx.BindDevices(gpuVm("g", "", ""), "uuid-h2"); err == nil || err.Error() != "host h2 (127.41.0.2) has no free GPU Nvidia_Tesla_M60" {
			t.Errorf("bind passthrough: %v", err)
		}
		d := tx.WithHolders(tx.Host("uuid-h2"))[0]
		if d.HeldByVmName != "" || len(d.VgpuProfiles) != 2 || len(d.VgpuProfiles[0].HeldByVmNames) != 2 || len(d.VgpuProfiles[1].HeldByVmNames) != 0 {
			t.Errorf("holders %v", d)
		}
	})
	// Off, they free the GPU: passthrough, then no vGPU beside it.
	if err := commitAll(db, vgpuVm("x1", "", profile2Q, ""), vgpuVm("x2", "", profile2Q, ""), gpuVm("g", "h2", "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	violation(t, commitAll(db, vgpuVm("x1", "h2", profile2Q, "m-1")), state.RuleDevice,
		"the GPU at 0000:3b:00.0 on host h2 (127.41.0.2) is passed through to vm g: it serves no vGPU Nvidia_Tesla_M60-2Q (vm.off g first)")
	var bound []*acliv1.VmDevice
	var err error
	db.View(func(tx *state.Tx) { bound, err = tx.BindDevices(vgpuVm("x1", "", profile2Q, ""), "uuid-h2") })
	if err == nil {
		t.Fatalf("bound a vGPU on a GPU passed through: %v", bound)
	}
}

// HA's guarantee judges devices as the DEVICE rule does: a GPU serving
// vGPUs is no restart target for a GPU VM, and a vGPU VM needs a GPU with
// room for its profile on a host left.
func TestHAReservesVgpus(t *testing.T) {
	db := newDB(t) // 3 x 8 GiB; a (4 GiB) on h1
	guarantee := &acliv1.Cluster{Name: "c", RedundancyFactor: 2, Ha: &acliv1.HaConfig{FailoverEnabled: true, NumHostFailuresToTolerate: 1,
		ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}}
	if err := commitAll(db, host("h1", "127.41.0.1", withSplitGPU), host("h2", "127.41.0.2", withSplitGPU), guarantee,
		gpuVm("g1", "h1", "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	violation(t, commitAll(db, vgpuVm("x1", "h2", profile2Q, "m-1")), state.RuleHAReservation,
		"the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.41.0.1) fails, vm g1 needs a GPU Nvidia_Tesla_M60 and none of the hosts left has one free")
	// With g1 off, x1 may take h2's GPU, and a second 2Q VM on h1 restarts
	// beside it there; an 8Q VM on h1 would not.
	if err := commitAll(db, gpuVm("g1", "", ""), vgpuVm("x1", "h2", profile2Q, "m-1"), vgpuVm("x2", "h1", profile2Q, "m-2")); err != nil {
		t.Fatal(err)
	}
	violation(t, commitAll(db, vgpuVm("x2", "", profile2Q, ""), vgpuVm("y", "h1", profile8Q, "m-3")), state.RuleHAReservation,
		"the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.41.0.1) fails, vm y needs a vGPU Nvidia_Tesla_M60-8Q and none of the hosts left has one free")
}

// A profile's most per host is that of the host with the most, whatever
// the order hosts are read in (the last host's count won).
func TestDeviceGroupResolvesProfiles(t *testing.T) {
	db := newDB(t)
	twoGPUs := func(h *acliv1.Host) {
		withSplitGPU(h)
		second := proto.Clone(h.Devices[0]).(*acliv1.HostDevice)
		second.Address = "0000:3c:00.0"
		h.Devices = append(h.Devices, second)
	}
	if err := commitAll(db, host("h1", "127.41.0.1", twoGPUs), host("h2", "127.41.0.2", withSplitGPU)); err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *state.Tx) {
		g, err := tx.DeviceGroup(acliv1.DeviceKind_kGpuPassthrough, "nvidia:tesla_m60-2q")
		if err != nil || g.Kind != acliv1.DeviceKind_kVirtualGpu || g.UUID != profile2Q || g.Name != "Nvidia_Tesla_M60-2Q" || g.PerHost != 4 {
			t.Errorf("2Q: %+v %v", g, err)
		}
		if g, err = tx.DeviceGroup(acliv1.DeviceKind_kGpuPassthrough, "Nvidia_Tesla_M60"); err != nil || g.PerHost != 2 || g.Kind != acliv1.DeviceKind_kGpuPassthrough {
			t.Errorf("M60: %+v %v", g, err)
		}
		if _, err = tx.DeviceGroup(acliv1.DeviceKind_kVirtualGpu, "Nvidia_Tesla_M60"); err == nil || err.Error() != `rpc error: code = NotFound desc = vgpu profile "Nvidia_Tesla_M60" not found (did you mean "Nvidia_Tesla_M60-2Q"?)` {
			t.Errorf("M60 as a profile: %v", err)
		}
	})
}
