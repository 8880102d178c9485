package manager_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

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
	h := managertest.New(t, managertest.Options{Hosts: 3, Speed: 2}) // an 8 GiB migration takes ~4.5 s
	c := newClients(h.Conn)
	// Busy guests: pre-copy takes a few rounds, so there is time to cancel after round 1.
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
	succeed(t, c)(maint, nil)
	wantCode(t, errOf(c.task.CancelTask(bg, &acliv1.CancelTaskRequest{Uuid: "nope"})), codes.NotFound, "nope")

	// The target's reservation went with the cancelled task: h2 takes the VM now.
	if final := succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "slow", Host: "h2"})); final.Cancellable {
		t.Fatalf("a finished migration is not cancellable")
	}
	checkInvariants(t, h)
}
