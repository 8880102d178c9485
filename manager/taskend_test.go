package manager_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// failingPowerOn is the sim whose power-ons fail.
type failingPowerOn struct{ *sim.Driver }

func (failingPowerOn) PowerOn(context.Context, *acliv1.Host, *acliv1.Vm) error {
	return errors.New("the hypervisor refused")
}

// heldFailures holds the store transaction that records a failed task
// until released.
type heldFailures struct {
	store.Store
	held    chan struct{} // closed when a failure's commit arrives
	release chan struct{}
}

func (s *heldFailures) Txn(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	for _, op := range ops {
		var pb acliv1.Task
		if !strings.HasPrefix(op.Key, "/tasks/") || proto.Unmarshal(op.Value, &pb) != nil || pb.Status != acliv1.TaskStatus_kFailed {
			continue
		}
		select {
		case <-s.held:
		default:
			close(s.held)
		}
		<-s.release
	}
	return s.Store.Txn(ctx, conds, ops)
}

// A failed task holds its VM until its end is committed. Released before,
// a delete was accepted and could be committed first; a manager killed in
// between left both running in the store, and the next leader ended them
// together, one seemingly over the other (the shared soak's conflict).
func TestFailedTaskHoldsItsVmUntilItsEndIsCommitted(t *testing.T) {
	dir := t.TempDir()
	bst, err := bolt.Open(dir, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	st := &heldFailures{Store: bst, held: make(chan struct{}), release: make(chan struct{})}
	drv, err := sim.New(sim.ForHosts(3), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer close(st.release)
	c := start(t, managertest.Options{Dir: dir, Store: st, Driver: failingPowerOn{drv}})
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "v1", NumVcpus: 1, MemoryBytes: gib}))
	on, err := c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "v1", Transition: acliv1.PowerTransition_kPowerOn})
	if err != nil {
		t.Fatal(err)
	}
	<-st.held
	// Unfixed, the delete is accepted and waits for its commit behind
	// the held one: the deadline ends that wait.
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	del, err := c.vm.DeleteVm(ctx, &acliv1.DeleteVmRequest{Vm: "v1"})
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), on.Uuid) {
		t.Fatalf("delete while the power-on's failure is not committed: %v, %v; want busy with task %s", del, err, on.Uuid)
	}
	got, err := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: on.Uuid})
	if err != nil || got.Status != acliv1.TaskStatus_kRunning {
		t.Fatalf("power-on shown %v (%v) before its end is committed; want running", got.GetStatus(), err)
	}
}
