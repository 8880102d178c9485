package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// A running VM's virtual hardware changes only while it is off, whoever
// commits the change; the rest of the record (name, memory) may change.
func TestRunningVmKeepsItsHardware(t *testing.T) {
	db := newDB(t)
	a := vm("a", "h1", 4*gib)
	commit := func(v *acliv1.Vm) error {
		_, err := db.Update(context.Background(), func(tx *state.Tx) error { put(tx, v); return nil })
		return err
	}
	err := commit(edit(a, func(v *acliv1.Vm) { v.UefiBoot, v.NumThreadsPerCore, v.Name = true, 2, "a2" }))
	var ve *state.ViolationError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].Rule != state.RulePowerState ||
		ve.Violations[0].Description != "vm a2 is on; uefi_boot, num_threads_per_core change only while it is off (vm.off a2 first)" {
		t.Fatalf("hardware change of a running VM: %v", err)
	}
	// Threads 0 and 1 are the same layout; a rename alone is fine.
	if err := commit(edit(a, func(v *acliv1.Vm) { v.NumThreadsPerCore, v.Name = 1, "a2" })); err != nil {
		t.Fatal(err)
	}
	// Off, the change commits, and powering on with it does too.
	b := vm("b", "", 2*gib)
	b = edit(b, func(v *acliv1.Vm) { v.CpuPassthrough, v.VirtualTpm, v.UefiBoot = true, true, true })
	if err := commit(b); err != nil {
		t.Fatal(err)
	}
	if err := commit(edit(b, func(v *acliv1.Vm) { v.PowerState, v.HostUuid = acliv1.PowerState_kOn, "uuid-h2" })); err != nil {
		t.Fatal(err)
	}
	if got := state.OffOnlyChanges(b, edit(b, func(v *acliv1.Vm) {
		v.MemoryOvercommit, v.VcpuHardPin, v.NumVnumaNodes, v.HardwareVirtualization = true, true, 2, true
	})); strings.Join(got, ",") !=
		"num_vnuma_nodes,hardware_virtualization,memory_overcommit,vcpu_hard_pin" {
		t.Fatalf("OffOnlyChanges: %v", got)
	}
}
