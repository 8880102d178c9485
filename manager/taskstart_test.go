package manager_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// blockingPowerOn is the sim whose power-ons wait until release is closed.
type blockingPowerOn struct {
	*sim.Driver
	release chan struct{}
}

func (d blockingPowerOn) PowerOn(ctx context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	select {
	case <-d.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return d.Driver.PowerOn(ctx, h, v)
}

// stopBefore stops the first task of op between its request's checks and
// its start commit: it returns a channel closed once there, and the func
// that lets it go on.
func stopBefore(m interface {
	BeforeStart(func(*acliv1.Task))
}, op acliv1.TaskOperation) (<-chan struct{}, func()) {
	there, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m.BeforeStart(func(pb *acliv1.Task) {
		if pb.Operation == op {
			once.Do(func() { close(there); <-resume })
		}
	})
	return there, func() { close(resume) }
}

type answer struct {
	pb  *acliv1.Task
	err error
}

// A task takes its entities in the commit of its start, the one place the
// busy rule is checked: a request checked but not started holds nothing,
// and when another task took its VM first, its start is refused with the
// answer a request gets when the VM is busy as it arrives, and no task.
func TestTaskTakesItsEntitiesWithItsStart(t *testing.T) {
	drv, err := sim.New(sim.ForHosts(3), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	conn, m := managertest.Start(t, managertest.Options{Driver: blockingPowerOn{drv, release}})
	c := newClients(conn)
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "v1", NumVcpus: 1, MemoryBytes: gib}))

	there, resume := stopBefore(m, acliv1.TaskOperation_kVmDelete)
	del := make(chan answer, 1)
	go func() {
		pb, err := c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "v1"})
		del <- answer{pb, err}
	}()
	<-there
	on, err := c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "v1", Transition: acliv1.PowerTransition_kPowerOn})
	if err != nil {
		t.Fatalf("power-on while a delete is checked, not started: %v; want it accepted", err)
	}
	_, arriving := c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "v1"})
	if status.Code(arriving) != codes.Aborted || !strings.Contains(arriving.Error(), "vm v1 is busy with task "+on.Uuid) {
		t.Fatalf("delete arriving while the power-on runs: %v; want busy with %s", arriving, on.Uuid)
	}
	resume()
	got := <-del
	if got.err == nil || got.err.Error() != arriving.Error() || status.Code(got.err) != codes.Aborted {
		t.Fatalf("delete refused at its start: %v, %v; want the arriving answer %q", got.pb, got.err, arriving)
	}
	list, err := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Limit: 100,
		OperationTypes: []acliv1.TaskOperation{acliv1.TaskOperation_kVmDelete}})
	if err != nil || len(list.GetTasks()) != 0 {
		t.Fatalf("delete tasks %v (%v); want none recorded", list.GetTasks(), err)
	}
	release <- struct{}{}
	succeed(t, c)(on, nil)
}

// A task starts on what its request read: a VM changed between the
// request's checks and the task's start refuses the start, and nothing is
// done with the old record.
func TestTaskStartsOnWhatItsRequestRead(t *testing.T) {
	conn, m := managertest.Start(t, managertest.Options{})
	c := newClients(conn)
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "v1", NumVcpus: 1, MemoryBytes: gib}))

	there, resume := stopBefore(m, acliv1.TaskOperation_kVmPowerOn)
	on := make(chan answer, 1)
	go func() {
		pb, err := c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "v1", Transition: acliv1.PowerTransition_kPowerOn})
		on <- answer{pb, err}
	}()
	<-there
	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "v1", MemoryBytes: proto.Int64(2 * gib)}))
	resume()
	got := <-on
	if status.Code(got.err) != codes.Aborted || status.Convert(got.err).Message() != "vm v1 changed while the request was checked; retry it" {
		t.Fatalf("power-on of a VM changed since its checks: %v, %v; want refused as changed", got.pb, got.err)
	}
	v, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "v1"})
	if err != nil || v.PowerState != acliv1.PowerState_kOff || v.MemoryBytes != 2*gib {
		t.Fatalf("v1 %v, %v; want off with 2 GiB", v, err)
	}
	list, err := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Limit: 100,
		OperationTypes: []acliv1.TaskOperation{acliv1.TaskOperation_kVmPowerOn}})
	if err != nil || len(list.GetTasks()) != 0 {
		t.Fatalf("power-on tasks %v (%v); want none recorded", list.GetTasks(), err)
	}
}
