package tasks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
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
