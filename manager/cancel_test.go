package manager_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// migrationGate holds the live migrations of the VMs it names before their
// second step (so after round 1's progress is reported) until the test
// releases the VM: the test then acts on a migration it knows is running,
// however slow or fast the machine.
type migrationGate struct {
	mu    sync.Mutex
	steps map[string]int
	open  map[string]chan struct{}
}

func newMigrationGate(vms ...string) *migrationGate {
	g := &migrationGate{steps: map[string]int{}, open: map[string]chan struct{}{}}
	for _, vm := range vms {
		g.open[vm] = make(chan struct{})
	}
	return g
}

func (g *migrationGate) options() sim.Options { return sim.Options{BeforeRound: g.beforeRound} }

func (g *migrationGate) beforeRound(ctx context.Context, vm *acliv1.Vm, _ int) error {
	g.mu.Lock()
	g.steps[vm.Name]++
	step, open := g.steps[vm.Name], g.open[vm.Name]
	g.mu.Unlock()
	if open == nil || step < 2 {
		return nil
	}
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release lets the VM's migrations run freely from now on.
func (g *migrationGate) release(vm string) { close(g.open[vm]) }

// waitProgress polls a task until its progress line holds want.
func waitProgress(t *testing.T, c clients, uuid, want string) *acliv1.Task {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: uuid})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got.ProgressMessage, want) {
			return got
		}
		if time.Now().After(deadline) || got.Status != acliv1.TaskStatus_kRunning {
			t.Fatalf("task %s: no %q in progress: %v %q", uuid, want, got.Status, got.ProgressMessage)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCancelTask: a live migration stopped before its switch-over ends
// kAborted with the reason, the VM stays on its source and the target's
// reservation is freed; tasks that cannot stop, and ended ones, are refused.
func TestCancelTask(t *testing.T) {
	gate := newMigrationGate("slow", "other")
	h := managertest.New(t, managertest.Options{Hosts: 3, Speed: 20, SimOptions: gate.options()})
	c := newClients(h.Conn)
	// Busy guests: pre-copy takes a few rounds; the gate holds each after round 1.
	busy := func(r *acliv1.CreateVmRequest) { r.DirtyRateMbps = 300 }
	vmOn(t, c, "slow", 8*gib, "h1", busy)
	vmOn(t, c, "other", 8*gib, "h3", busy)

	task, err := c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "slow", Host: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	if !task.Cancellable {
		t.Fatalf("a live migration is cancellable: %v", task)
	}
	waitProgress(t, c, task.Uuid, "round 1")
	got, err := c.task.CancelTask(bg, &acliv1.CancelTaskRequest{Uuid: task.Uuid, Reason: "wrong host"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != acliv1.TaskStatus_kRunning || !strings.Contains(got.ProgressMessage, "stopping: cancelled (wrong host)") {
		t.Fatalf("cancel answer: %v %q", got.Status, got.ProgressMessage)
	}
	final := wait(t, c, task, nil)
	if final.Status != acliv1.TaskStatus_kAborted || final.Cancellable || codes.Code(final.ErrorCode) != codes.Canceled ||
		!strings.HasPrefix(final.Error, "cancelled (wrong host): migration of vm slow aborted") {
		t.Fatalf("cancelled migration ended %v cancellable=%v code=%d %q", final.Status, final.Cancellable, final.ErrorCode, final.Error)
	}
	if msgs := messages(final); !strings.Contains(msgs, "aborted: cancelled (wrong host)") {
		t.Fatalf("messages %q", msgs)
	}
	gate.release("slow")
	if v := getVm(t, c, "slow"); v.HostName != "h1" || v.PowerState != acliv1.PowerState_kOn {
		t.Fatalf("cancelled migration left the vm on %q (%v)", v.HostName, v.PowerState)
	}
	checkInvariants(t, h)
	wantCode(t, errOf(c.task.CancelTask(bg, &acliv1.CancelTaskRequest{Uuid: task.Uuid})), codes.FailedPrecondition,
		"task "+task.Uuid+" (kVmMigrate) has already ended (kAborted)")

	// Maintenance evacuates by migrations it must finish: it cannot stop.
	maint, err := enter(c, "h3", 0)
	if err != nil {
		t.Fatal(err)
	}
	if maint.Cancellable {
		t.Fatalf("maintenance is not cancellable: %v", maint)
	}
	waitProgress(t, c, maint.Uuid, "round 1")
	wantCode(t, errOf(c.task.CancelTask(bg, &acliv1.CancelTaskRequest{Uuid: maint.Uuid})), codes.FailedPrecondition,
		"(kHostEnterMaintenanceMode) cannot stop safely now")
	gate.release("other")
	succeed(t, c)(maint, nil)
	wantCode(t, errOf(c.task.CancelTask(bg, &acliv1.CancelTaskRequest{Uuid: "nope"})), codes.NotFound, "nope")

	// The target's reservation went with the cancelled task: h2 takes the VM now.
	if final := succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "slow", Host: "h2"})); final.Cancellable {
		t.Fatalf("a finished migration is not cancellable")
	}
	checkInvariants(t, h)
}
