package manager_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

func checkSorted(t *testing.T, c clients, want int) []*acliv1.Vm {
	t.Helper()
	list, err := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Vms) != want {
		t.Fatalf("%d VMs listed, want %d", len(list.Vms), want)
	}
	if !slices.IsSortedFunc(list.Vms, func(a, b *acliv1.Vm) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
	}) {
		t.Fatal("ListVms not ordered by name then UUID")
	}
	for _, v := range list.Vms {
		got, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: v.Uuid})
		if !proto.Equal(got, v) {
			t.Fatalf("listed VM differs from GetVm:\n%v\n%v", v, got)
		}
	}
	return list.Vms
}

func TestListOrderSurvivesRenamesDeletesAndRestart(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 60; i++ {
		// Repeated names on purpose: order falls back to the UUID.
		succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: fmt.Sprint("vm", rng.IntN(20)), MemoryBytes: gib}))
	}
	vms := checkSorted(t, c, 60)
	for i, v := range vms {
		switch i % 3 {
		case 0:
			succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: v.Uuid, Name: proto.String(fmt.Sprint("r", rng.IntN(50)))}))
		case 1:
			succeed(t, c)(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: v.Uuid}))
		}
	}
	checkSorted(t, c, 40)
	h.Stop()
	h2 := managertest.New(t, managertest.Options{Dir: h.Dir})
	checkSorted(t, newClients(h2.Conn), 40)
}

func TestListShowsBusyTask(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3, Speed: 2})
	createVm(t, c, "idle", gib)
	createVm(t, c, "busy", gib)
	task, err := power(c, "busy", acliv1.PowerTransition_kPowerOn)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	if list.Vms[0].Name != "busy" || list.Vms[0].BusyTaskUuid != task.Uuid || list.Vms[0].MemoryBytes != gib || list.Vms[1].BusyTaskUuid != "" {
		t.Fatalf("list %v", list.Vms)
	}
	succeed(t, c)(task, nil)
	list, _ = c.vm.ListVms(bg, &acliv1.ListVmsRequest{PowerState: acliv1.PowerState_kOn})
	if len(list.Vms) != 1 || list.Vms[0].BusyTaskUuid != "" || list.Vms[0].HostUuid == "" {
		t.Fatalf("after power-on: %v", list.Vms)
	}
}
