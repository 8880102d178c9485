package manager_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

func TestRestartKeepsModel(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", VlanId: 10}))
	createVm(t, c, "db", 8*gib)
	createVm(t, c, "web", 4*gib)
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "web", Network: "prod"}))
	succeed(t, c)(power(c, "db", acliv1.PowerTransition_kPowerOn))
	before, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	hostsBefore, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	evBefore, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{})
	h.Stop()

	h2 := managertest.New(t, managertest.Options{Hosts: 5, Dir: h.Dir}) // --sim 5 on an existing dir reuses the stored cluster
	c = newClients(h2.Conn)
	after, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	if len(after.Vms) != 2 {
		t.Fatalf("%d VMs after restart", len(after.Vms))
	}
	for i := range after.Vms {
		if !proto.Equal(before.Vms[i], after.Vms[i]) {
			t.Fatalf("vm changed across restart:\n%v\n%v", before.Vms[i], after.Vms[i])
		}
	}
	hostsAfter, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	if len(hostsAfter.Hosts) != 3 {
		t.Fatalf("%d hosts after restart with another --sim", len(hostsAfter.Hosts))
	}
	for i, hb := range hostsBefore.Hosts {
		ha := hostsAfter.Hosts[i]
		if ha.Uuid != hb.Uuid || ha.MemoryUsedBytes != hb.MemoryUsedBytes || ha.NumVms != hb.NumVms {
			t.Fatalf("host %s: before %v after %v", hb.Name, hb, ha)
		}
	}
	if n, _ := c.net.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"}); n.NumNics != 1 {
		t.Fatalf("network after restart: %v", n)
	}
	tasks, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true})
	if len(tasks.Tasks) != 5 || tasks.Tasks[0].Operation != acliv1.TaskOperation_kVmPowerOn {
		t.Fatalf("tasks after restart: %d, newest %v", len(tasks.Tasks), tasks.Tasks[0].Operation)
	}
	evAfter, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{})
	if len(evAfter.Events) != len(evBefore.Events) {
		t.Fatalf("%d events after restart, %d before", len(evAfter.Events), len(evBefore.Events))
	}
	// The restarted manager keeps working: the running VM powers off, numbering continues.
	succeed(t, c)(power(c, "db", acliv1.PowerTransition_kPowerOff))
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Limit: 1})
	if evs.Events[0].Seq <= evBefore.Events[len(evBefore.Events)-1].Seq {
		t.Fatalf("event seq restarted: %d", evs.Events[0].Seq)
	}
}

func TestStopDuringTaskFailsItCleanly(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Speed: 0.2}) // power-on takes 5 s
	c := newClients(h.Conn)
	createVm(t, c, "slow", gib)
	task, err := power(c, "slow", acliv1.PowerTransition_kPowerOn)
	if err != nil {
		t.Fatal(err)
	}
	h.Stop()
	h2 := managertest.New(t, managertest.Options{Dir: h.Dir})
	c = newClients(h2.Conn)
	got, err := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != acliv1.TaskStatus_kFailed || !strings.Contains(got.Error, "clusterd stopped while the task was running") {
		t.Fatalf("task after stop: %v %q", got.Status, got.Error)
	}
	v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "slow"})
	if v.PowerState != acliv1.PowerState_kOff || v.HostUuid != "" || v.BusyTaskUuid != "" {
		t.Fatalf("vm after interrupted power-on: %v", v)
	}
	// And a retry works.
	succeed(t, c)(power(c, "slow", acliv1.PowerTransition_kPowerOn))
}

// TestCrashLeavesNoRunningTask simulates a crash: a task recorded as
// running in the store (as a killed clusterd leaves it) must be failed at
// the next start, with the model as it was last committed.
func TestCrashLeavesNoRunningTask(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	vm := createVm(t, c, "victim", gib)
	succeed(t, c)(power(c, "victim", acliv1.PowerTransition_kPowerOn))
	h.Stop()

	st, err := bolt.Open(h.Dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	running := &acliv1.Task{
		Uuid: id, Operation: acliv1.TaskOperation_kVmPowerOff, Status: acliv1.TaskStatus_kRunning,
		Entities:   []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVm, Uuid: vm.Uuid, Name: vm.Name}},
		CreateTime: timestamppb.Now(), StartTime: timestamppb.Now(), Revision: 1,
	}
	b, _ := proto.Marshal(running)
	if _, err := store.Put(context.Background(), st, "/tasks/"+id, b); err != nil {
		t.Fatal(err)
	}
	st.Close()

	h2 := managertest.New(t, managertest.Options{Dir: h.Dir})
	c = newClients(h2.Conn)
	got, _ := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: id})
	if got.Status != acliv1.TaskStatus_kFailed || codes.Code(got.ErrorCode) != codes.Aborted ||
		!strings.Contains(got.Error, "clusterd restarted while the task was running") {
		t.Fatalf("crashed task: %v code=%d %q", got.Status, got.ErrorCode, got.Error)
	}
	v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm.Uuid})
	if v.PowerState != acliv1.PowerState_kOn || v.HostUuid == "" {
		t.Fatalf("vm after crash: %v", v)
	}
	// The sim adopted the running VM: it can be shut down (needs a running guest).
	succeed(t, c)(power(c, "victim", acliv1.PowerTransition_kShutdown))
	running2, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{})
	if len(running2.Tasks) != 0 {
		t.Fatalf("tasks still running: %v", running2.Tasks)
	}
}
