package tasks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/auth"
)

func TestCancel(t *testing.T) {
	tb := NewTable(10)
	task := tb.Begin(acliv1.TaskOperation_kVmMigrate, []*acliv1.EntityRef{{Name: "web1"}})
	if _, err := task.Cancel("ann", ""); err == nil || !strings.Contains(err.Error(), "cannot stop safely now") {
		t.Fatalf("a task without Stop: %v", err)
	}
	ctx, stop := context.WithCancelCause(context.Background())
	task.Stop = stop
	task.PB.Cancellable = true
	pb, err := task.Cancel("ann", "wrong host")
	if err != nil {
		t.Fatal(err)
	}
	if pb.ProgressMessage != "stopping: cancelled by ann (wrong host)" || task.Stop != nil {
		t.Fatalf("after cancel: %q, stop %v", pb.ProgressMessage, task.Stop != nil)
	}
	if _, err := task.Cancel("bob", ""); err == nil || !strings.Contains(err.Error(), "already being cancelled") {
		t.Fatalf("cancelled twice: %v", err)
	}
	// The work's error becomes the cancellation, with its own words.
	res := CancelledResult(ctx, errors.New("migration stopped at round 2"))
	var c *Cancelled
	if !errors.As(res, &c) || res.Error() != "cancelled by ann (wrong host): migration stopped at round 2" || status.Code(res) != codes.Canceled {
		t.Fatalf("result %v (%s)", res, status.Code(res))
	}
	if CancelledResult(ctx, nil) != nil {
		t.Fatal("work that finished anyway is not a success")
	}
	if other := errors.New("x"); CancelledResult(context.Background(), other) != other {
		t.Fatal("an error without a cancellation changed")
	}
	task.PB = Succeeded(task.PB, "done")
	if _, err := task.Cancel("ann", ""); err == nil || !strings.Contains(err.Error(), "has already ended") {
		t.Fatalf("a finished task: %v", err)
	}
}

func TestPastReturn(t *testing.T) {
	task := NewTable(10).Begin(acliv1.TaskOperation_kVmMigrate, nil)
	_, stop := context.WithCancelCause(context.Background())
	task.Stop, task.PB.Cancellable = stop, true
	task.PastReturn()
	if task.Stop != nil || task.PB.Cancellable {
		t.Fatal("still cancellable after the switch-over")
	}
	if _, err := task.Cancel("", ""); err == nil || !strings.Contains(err.Error(), "cannot stop safely now") {
		t.Fatalf("cancel after the switch-over: %v", err)
	}
}

// task.cancel finds the task by UUID in any case, under the owner's lock,
// names the caller in the line it records and logs the cancellation; an
// unknown UUID is not found, and a refusal changes nothing.
func TestCancellerCancelTask(t *testing.T) {
	tb := NewTable(10)
	var log bytes.Buffer
	lock := &countingLock{}
	c := &Canceller{Lock: lock, Table: tb, Log: slog.New(slog.NewTextHandler(&log, nil))}
	task := tb.Begin(acliv1.TaskOperation_kVmMigrate, []*acliv1.EntityRef{{Name: "web1"}})
	wctx, stop := context.WithCancelCause(context.Background())
	task.Stop, task.PB.Cancellable = stop, true
	ctx := auth.NewContext(context.Background(), auth.Principal{User: "ann"})

	if _, err := c.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: "nosuch"}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `task "nosuch" not found`) {
		t.Fatalf("an unknown task: %v (%s)", err, status.Code(err))
	}
	pb, err := c.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: strings.ToUpper(task.PB.Uuid), Reason: "wrong host"})
	if err != nil {
		t.Fatal(err)
	}
	if pb.ProgressMessage != "stopping: cancelled by ann (wrong host)" || task.PB != pb {
		t.Fatalf("after cancel: %q", pb.ProgressMessage)
	}
	var tc *Cancelled
	if !errors.As(context.Cause(wctx), &tc) || tc.Reason != "cancelled by ann (wrong host)" {
		t.Fatalf("the work's context: %v", context.Cause(wctx))
	}
	if !strings.Contains(log.String(), "task cancelled") || !strings.Contains(log.String(), pb.Uuid) {
		t.Fatalf("log: %q", log.String())
	}
	rev := task.PB.Revision
	if _, err := c.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: task.PB.Uuid}); status.Code(err) != codes.FailedPrecondition || task.PB.Revision != rev {
		t.Fatalf("cancelled twice: %v (%s), revision %d -> %d", err, status.Code(err), rev, task.PB.Revision)
	}
	if lock.held || lock.taken != 3 {
		t.Fatalf("the owner's lock: taken %d times, still held %v", lock.taken, lock.held)
	}
}

// countingLock is the owner's lock; Cancel must run under it.
type countingLock struct {
	held  bool
	taken int
}

func (l *countingLock) Lock() {
	if l.held {
		panic("locked twice")
	}
	l.held = true
	l.taken++
}
func (l *countingLock) Unlock() { l.held = false }
