package state_test

import (
	"context"
	"errors"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

const gpuGroup = "group-m60"

func withGPU(h *acliv1.Host) {
	h.Devices = append(h.Devices, &acliv1.HostDevice{Address: "0000:3b:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough, Vendor: "Nvidia", Model: "Tesla_M60", GroupUuid: gpuGroup})
}

func gpuVm(name, on, addr string) *acliv1.Vm {
	v := vm(name, on, gib)
	v.Devices = []*acliv1.VmDevice{{Kind: acliv1.DeviceKind_kGpuPassthrough, GroupUuid: gpuGroup, Name: "Nvidia_Tesla_M60", Address: addr}}
	return v
}

func commitAll(db *state.DB, msgs ...any) error {
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		for _, m := range msgs {
			switch r := m.(type) {
			case *acliv1.Host:
				put(tx, r)
			case *acliv1.Vm:
				put(tx, r)
			case *acliv1.Cluster:
				tx.Put(state.ClusterKey, r, state.AnyRev)
			}
		}
		return nil
	})
	return err
}

func violation(t *testing.T, err error, rule, desc string) {
	t.Helper()
	var ve *state.ViolationError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].Rule != rule || ve.Violations[0].Description != desc {
		t.Fatalf("want %s %q, got %v", rule, desc, err)
	}
}

// A device is held by one running VM at a time, on its own host, whoever
// commits; binding picks a free one and says when there is none.
func TestOneVmPerDevice(t *testing.T) {
	db := newDB(t)
	if err := commitAll(db, host("h2", "127.41.0.2", withGPU)); err != nil {
		t.Fatal(err)
	}
	var bound []*acliv1.VmDevice
	var err error
	db.View(func(tx *state.Tx) { bound, err = tx.BindDevices(gpuVm("g1", "", ""), "uuid-h2") })
	if err != nil || len(bound) != 1 || bound[0].Address != "0000:3b:00.0" {
		t.Fatalf("bind %v %v", bound, err)
	}
	if err := commitAll(db, gpuVm("g1", "h2", "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	violation(t, commitAll(db, gpuVm("g2", "h2", "0000:3b:00.0")), state.RuleDevice,
		"the GPU Nvidia_Tesla_M60 at 0000:3b:00.0 on host h2 (127.41.0.2) is held by vm g1 (vm.off g1 first)")
	violation(t, commitAll(db, gpuVm("g2", "h3", "0000:3b:00.0")), state.RuleDevice,
		"host h3 (127.41.0.3) has no GPU Nvidia_Tesla_M60 at 0000:3b:00.0 for vm g2")
	violation(t, commitAll(db, gpuVm("g2", "h2", "")), state.RuleDevice,
		"vm g2 cannot run without its GPU Nvidia_Tesla_M60 bound to a device of host h2 (127.41.0.2)")
	// Two VMs taking the one device in one commit: refused too.
	err = commitAll(db, gpuVm("g1", "", ""), gpuVm("g2", "h2", "0000:3b:00.0"), gpuVm("g3", "h2", "0000:3b:00.0"))
	if ve := (*state.ViolationError)(nil); !errors.As(err, &ve) || len(ve.Violations) != 2 || ve.Violations[0].Rule != state.RuleDevice ||
		err.Error() != "the GPU Nvidia_Tesla_M60 at 0000:3b:00.0 on host h2 (127.41.0.2) is held by vm g3 (vm.off g3 first); "+
			"the GPU Nvidia_Tesla_M60 at 0000:3b:00.0 on host h2 (127.41.0.2) is held by vm g2 (vm.off g2 first)" {
		t.Fatalf("two VMs on one device: %v", err)
	}
	db.View(func(tx *state.Tx) {
		_, err = tx.BindDevices(gpuVm("g2", "", ""), "uuid-h2")
		if d := tx.WithHolders(tx.Host("uuid-h2")); d[0].HeldByVmName != "g1" {
			t.Errorf("holders %v", d)
		}
	})
	if err == nil || err.Error() != "host h2 (127.41.0.2) has no free GPU Nvidia_Tesla_M60" {
		t.Fatalf("bind while held: %v", err)
	}
	// Off, g1 frees it (its stale binding holds nothing) and g2 takes it.
	if err := commitAll(db, gpuVm("g1", "", "0000:3b:00.0"), gpuVm("g2", "h2", "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	// A running VM keeps its devices: assigning one needs it off.
	on := gpuVm("g2", "h2", "0000:3b:00.0")
	on.Devices = nil
	violation(t, commitAll(db, on), state.RulePowerState, "vm g2 is on; passthrough devices change only while it is off (vm.off g2 first)")
}

// A memory_overcommit VM reserves half its memory on its host.
func TestOvercommitReservesLess(t *testing.T) {
	db := newDB(t) // h1: 8 GiB, a takes 4
	big := vm("c", "h1", 8*gib)
	violation(t, commitAll(db, big), state.RuleMemory,
		"host h1 (127.41.0.1) would be over-committed: VMs there take 12288 MiB and 0 MiB are held for VMs on their way, of 8192 MiB")
	big.MemoryOvercommit = true
	if err := commitAll(db, big); err != nil {
		t.Fatal(err)
	}
	if got := db.MemoryTaken("uuid-h1"); got != 8*gib {
		t.Fatalf("taken %d", got)
	}
	violation(t, commitAll(db, vm("d", "h1", gib)), state.RuleMemory,
		"host h1 (127.41.0.1) would be over-committed: VMs there take 9216 MiB and 0 MiB are held for VMs on their way, of 8192 MiB")
}

// A hold for a memory_overcommit VM on its way counts what its commit will:
// half its memory.
func TestHoldCountsOvercommitShare(t *testing.T) {
	db := newDB(t)
	oc := vm("c", "h2", 8*gib)
	oc.MemoryOvercommit = true
	id := db.Hold(oc, "uuid-h2")
	if got := db.Reserved("uuid-h2"); got != 4*gib {
		t.Fatalf("held %d MiB, want 4096", got>>20)
	}
	db.Depart(id)
	oc.MemoryOvercommit = false
	db.Hold(oc, "uuid-h2")
	if got := db.Reserved("uuid-h2"); got != 8*gib {
		t.Fatalf("held %d MiB, want 8192", got>>20)
	}
}

// HA's guarantee reserves per host segment: each VM of a failed host must
// fit whole in one surviving host's free memory, not in their total.
func TestHAReservesSegments(t *testing.T) {
	db := newDB(t) // 3 x 8 GiB; a (4 GiB) on h1
	guarantee := &acliv1.Cluster{Name: "c", RedundancyFactor: 2, Ha: &acliv1.HaConfig{FailoverEnabled: true, NumHostFailuresToTolerate: 1,
		ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}}
	if err := commitAll(db, guarantee, vm("e", "h2", 5*gib)); err != nil {
		t.Fatal(err)
	}
	var m state.HAMemory
	db.View(func(tx *state.Tx) { m = tx.HAMemory(nil, "") })
	if m.Reserved != 5*gib || len(m.Largest) != 1 || m.Largest[0].Name != "h2" || m.Short != "" || m.Free() != 10*gib {
		t.Fatalf("picture %+v", m)
	}
	// 14 of 24 GiB would run: 16 are left after any one failure, but h1's
	// 4 GiB VM then fits in neither h2's nor h3's 3 GiB.
	violation(t, commitAll(db, vm("f", "h3", 5*gib)), state.RuleHAReservation,
		"the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.41.0.1) fails, vm a (4096 MiB) fits in the free memory of none of the hosts left (the most any has is 3072 MiB)")
	// A VM HA never restarts reserves nothing; it still takes its memory.
	f := vm("f", "h3", 3*gib)
	f.HaPriority = -1
	if err := commitAll(db, f); err != nil {
		t.Fatal(err)
	}
	var why string
	db.View(func(tx *state.Tx) { why = tx.HAShortfall(vm("g", "", 2*gib), "uuid-h3") })
	if why == "" {
		t.Fatal("a power-on that breaks the guarantee passed")
	}
}

// HA's guarantee counts devices: a GPU VM restarts only on a host left with
// a free GPU of its group, whatever the memory there.
func TestHAReservesDevices(t *testing.T) {
	db := newDB(t) // 3 x 8 GiB; a (4 GiB) on h1
	guarantee := &acliv1.Cluster{Name: "c", RedundancyFactor: 2, Ha: &acliv1.HaConfig{FailoverEnabled: true, NumHostFailuresToTolerate: 1,
		ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}}
	if err := commitAll(db, host("h1", "127.41.0.1", withGPU), host("h2", "127.41.0.2", withGPU), guarantee, gpuVm("g1", "h1", "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	var m state.HAMemory
	db.View(func(tx *state.Tx) { m = tx.HAMemory(nil, "") })
	if m.Short != "" {
		t.Fatalf("g1 can restart on h2: %q", m.Short)
	}
	// g2 takes h2's GPU: if h1 fails, g1 has nowhere to go, though h3 has
	// the memory.
	want := "the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.41.0.1) fails, vm g1 needs a GPU Nvidia_Tesla_M60 and none of the hosts left has one free"
	violation(t, commitAll(db, gpuVm("g2", "h2", "0000:3b:00.0")), state.RuleHAReservation, want)
	db.View(func(tx *state.Tx) {
		if why := tx.HAShortfall(gpuVm("g2", "h2", "0000:3b:00.0"), "uuid-h2"); why != want {
			t.Fatalf("shortfall %q", why)
		}
	})
	// Best effort: nothing is refused, and the picture says who is not covered.
	if err := commitAll(db, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, gpuVm("g2", "h2", "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *state.Tx) { m = tx.HAMemory(nil, "") })
	if m.Short != "if host h1 (127.41.0.1) fails, vm g1 needs a GPU Nvidia_Tesla_M60 and none of the hosts left has one free" {
		t.Fatalf("best effort %q", m.Short)
	}
}
