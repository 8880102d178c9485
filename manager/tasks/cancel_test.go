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
	task.SetCancellable(true)
	task.SetStop(stop)
	pb, err := task.Cancel("ann", "wrong host")
	if err != nil {
		t.Fatal(err)
	}
	if pb.ProgressMessage != "stopping: cancelled by ann (wrong host)" || task.stop != nil {
		t.Fatalf("after cancel: %q, stop %v", pb.ProgressMessage, task.stop != nil)
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
	task.Replace(Succeeded(task.PB(), "done"))
	if _, err := task.Cancel("ann", ""); err == nil || !strings.Contains(err.Error(), "has already ended") {
		t.Fatalf("a finished task: %v", err)
	}
}

func TestPastReturn(t *testing.T) {
	task := NewTable(10).Begin(acliv1.TaskOperation_kVmMigrate, nil)
	_, stop := context.WithCancelCause(context.Background())
	task.SetCancellable(true)
	task.SetStop(stop)
	task.PastReturn()
	if task.stop != nil || task.PB().Cancellable {
		t.Fatal("still cancellable after the switch-over")
	}
	if _, err := task.Cancel("", ""); err == nil || !strings.Contains(err.Error(), "cannot stop safely now") {
		t.Fatalf("cancel after the switch-over: %v", err)
	}
}

// task.cancel finds the task by UUID in any case, names the caller in the
// line it records and logs the cancellation; an unknown UUID is not found,
// and a refusal changes nothing.
func TestEngineCancelTask(t *testing.T) {
	var log bytes.Buffer
	c := NewEngine(Config{Log: slog.New(slog.NewTextHandler(&log, nil))})
	task := c.tab.Begin(acliv1.TaskOperation_kVmMigrate, []*acliv1.EntityRef{{Name: "web1"}})
	wctx, stop := context.WithCancelCause(context.Background())
	task.SetCancellable(true)
	task.SetStop(stop)
	ctx := auth.NewContext(context.Background(), auth.Principal{User: "ann"})

	if _, err := c.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: "nosuch"}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `task "nosuch" not found`) {
		t.Fatalf("an unknown task: %v (%s)", err, status.Code(err))
	}
	pb, err := c.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: strings.ToUpper(task.PB().Uuid), Reason: "wrong host"})
	if err != nil {
		t.Fatal(err)
	}
	if pb.ProgressMessage != "stopping: cancelled by ann (wrong host)" || task.PB() != pb {
		t.Fatalf("after cancel: %q", pb.ProgressMessage)
	}
	var tc *Cancelled
	if !errors.As(context.Cause(wctx), &tc) || tc.Reason != "cancelled by ann (wrong host)" {
		t.Fatalf("the work's context: %v", context.Cause(wctx))
	}
	if !strings.Contains(log.String(), "task cancelled") || !strings.Contains(log.String(), pb.Uuid) {
		t.Fatalf("log: %q", log.String())
	}
	rev := task.PB().Revision
	if _, err := c.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: task.PB().Uuid}); status.Code(err) != codes.FailedPrecondition || task.PB().Revision != rev {
		t.Fatalf("cancelled twice: %v (%s), revision %d -> %d", err, status.Code(err), rev, task.PB().Revision)
	}
}
