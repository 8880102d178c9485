package manager_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

// manager/vm's launched tasks start on the revision their request read
// (Begin's seen), not on the one committed when they are registered: a VM
// changed in between refuses the start as changed, nothing runs and no
// task is recorded; read anew, the same task starts.
func TestVmTaskStartsOnTheRevisionItsRequestRead(t *testing.T) {
	conn, m := managertest.Start(t, managertest.Options{})
	c := newClients(conn)
	v := createVm(t, c, "v1", gib)
	rev := func() (r int64) {
		m.DB().View(func(tx *state.Tx) { r = tx.Rev(state.VmKey(v.Uuid)) })
		return r
	}
	read := rev()
	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "v1", HaPriority: proto.Int32(3)}))

	cl := m.VmCluster()
	ran := 0
	work := func(context.Context, *tasks.Task) (vm.Outcome, error) { ran++; return vm.Outcome{Message: "done"}, nil }
	refs := []*acliv1.EntityRef{state.VmRef(v)}
	task, err := cl.Begin(bg, "vm", acliv1.TaskOperation_kVmReset, refs, state.Seen{v.Uuid: read}, v.Uuid)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Launch(bg, task, work)
	if status.Code(err) != codes.Aborted || status.Convert(err).Message() != "vm v1 changed while the request was checked; retry it" || ran != 0 {
		t.Fatalf("start on a stale read: %v, work ran %d times; want refused as changed", err, ran)
	}
	list, err := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Limit: 100,
		OperationTypes: []acliv1.TaskOperation{acliv1.TaskOperation_kVmReset}})
	if err != nil || len(list.GetTasks()) != 0 || m.DB().Holder(v.Uuid) != "" {
		t.Fatalf("reset tasks %v (%v), holder %q; want none", list.GetTasks(), err, m.DB().Holder(v.Uuid))
	}

	if task, err = cl.Begin(bg, "vm", acliv1.TaskOperation_kVmReset, refs, state.Seen{v.Uuid: rev()}, v.Uuid); err != nil {
		t.Fatal(err)
	}
	succeed(t, c)(cl.Launch(bg, task, work))
	if ran != 1 {
		t.Fatalf("work ran %d times, want once", ran)
	}
}
