package manager_test

import (
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

func overcommit(r *acliv1.CreateVmRequest) { r.MemoryOvercommit = true }

// A memory_overcommit VM on its way to a host holds there what the commit
// will count (half its memory), not all of it: the rest of the host stays
// free for others meanwhile.
func TestMigrationHoldsOvercommitShare(t *testing.T) {
	gate := newMigrationGate("oc")
	h := managertest.New(t, managertest.Options{Hosts: 3, Speed: 5, SimOptions: gate.options()}) // 3 x 256 GiB
	c := newClients(h.Conn)
	vmOn(t, c, "oc", 8*gib, "h1", overcommit)
	vmOn(t, c, "fill", 248*gib, "h2")
	task, err := c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "oc", Host: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, c, task.Uuid, "round 1")
	if used := getHost(t, c, "h2").MemoryUsedBytes; used != 252*gib {
		t.Fatalf("h2 uses %d GiB while oc arrives, want 248 + 4", used/gib)
	}
	// The 4 GiB the hold leaves free take a VM while oc moves.
	vmOn(t, c, "small", 4*gib, "h2")
	gate.release("oc")
	succeed(t, c)(task, nil)
	if v := getVm(t, c, "oc"); v.HostName != "h2" || getHost(t, c, "h2").MemoryUsedBytes != 256*gib {
		t.Fatalf("oc on %s, h2 uses %d", v.HostName, getHost(t, c, "h2").MemoryUsedBytes)
	}
	checkInvariants(t, h)
}
