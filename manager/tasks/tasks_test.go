package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/tasks"
)

func end(tb *tasks.Table, t *tasks.Task) {
	t.Update(func(pb *acliv1.Task) { pb.Status = acliv1.TaskStatus_kSucceeded })
	tb.Ended()
}

func TestUpdateWakesWatchersAndCountsRevisions(t *testing.T) {
	tb := tasks.NewTable(10)
	task := tb.Begin(acliv1.TaskOperation_kVmPowerOn, nil, "vm-1")
	if task.PB().Status != acliv1.TaskStatus_kRunning || task.PB().Revision != 1 || task.Locks[0] != "vm-1" {
		t.Fatalf("begun as %v", task.PB())
	}
	ch := task.Changed()
	first := task.PB()
	pb := task.Update(func(pb *acliv1.Task) { pb.Percent = 50 })
	select {
	case <-ch:
	default:
		t.Fatal("a watcher was not woken by an update")
	}
	if pb.Revision != 2 || pb.Percent != 50 || first.Percent != 0 {
		t.Errorf("after update: %v; the earlier snapshot became %v (snapshots are immutable)", pb, first)
	}
	if tb.Get(pb.Uuid) != task {
		t.Error("Get does not find the task")
	}
}

func TestForgetRemovesAndWakes(t *testing.T) {
	tb := tasks.NewTable(10)
	task := tb.Begin(acliv1.TaskOperation_kVmCreate, nil)
	ch := task.Changed()
	tb.Forget(task)
	select {
	case <-ch:
	default:
		t.Fatal("a watcher of a forgotten task was not woken")
	}
	if tb.Get(task.PB().Uuid) != nil || len(tb.Newest(10, func(*acliv1.Task) bool { return true })) != 0 {
		t.Error("a forgotten task is still listed")
	}
}

func TestPruneKeepsRetentionInBatches(t *testing.T) {
	tb := tasks.NewTable(10)
	running := tb.Begin(acliv1.TaskOperation_kHostEnterMaintenanceMode, nil)
	var ended []string
	for i := range 11 {
		task := tb.Begin(acliv1.TaskOperation_kVmUpdate, nil)
		end(tb, task)
		ended = append(ended, task.PB().Uuid)
		if got := tb.Prune(); len(got) != 0 {
			t.Fatalf("pruned %d at %d finished; the batch is a tenth of the retention", len(got), i+1)
		}
	}
	end(tb, tb.Begin(acliv1.TaskOperation_kVmUpdate, nil))
	got := tb.Prune()
	if fmt.Sprint(got) != fmt.Sprint(ended[:2]) {
		t.Errorf("pruned %v, want the two oldest finished %v", got, ended[:2])
	}
	if tb.Get(running.PB().Uuid) == nil {
		t.Error("a running task was pruned")
	}
	all := tb.Newest(100, func(*acliv1.Task) bool { return true })
	if len(all) != 11 || all[len(all)-1] != running.PB() {
		t.Errorf("%d kept, oldest %v; want 11 with the running task oldest", len(all), all[len(all)-1].Operation)
	}
}

func TestInterruptedEndsRunningTasks(t *testing.T) {
	tb := tasks.NewTable(10)
	tb.Load(&acliv1.Task{Uuid: "a", Status: acliv1.TaskStatus_kRunning, Revision: 3}, 7)
	tb.Load(&acliv1.Task{Uuid: "b", Status: acliv1.TaskStatus_kSucceeded, Revision: 2}, 8)
	tb.Load(&acliv1.Task{Uuid: "c", Status: acliv1.TaskStatus_kRunning, Revision: 1}, 9)
	tb.SortLoaded()
	ended := tb.Interrupted(int32(codes.Aborted), func(pb *acliv1.Task) string {
		if pb.Uuid == "c" {
			return "" // resumed by its owner
		}
		return "restarted during " + pb.Uuid
	})
	if len(ended) != 1 {
		t.Fatalf("%d ended, want 1", len(ended))
	}
	if c := tb.Get("c").PB(); c.Status != acliv1.TaskStatus_kRunning {
		t.Errorf("the resumed task is %s, want still running", c.Status)
	}
	pb := ended[0].PB()
	if pb.Status != acliv1.TaskStatus_kFailed || pb.Error != "restarted during a" || pb.ErrorCode != int32(codes.Aborted) ||
		pb.Revision != 4 || ended[0].Rev != 7 || pb.CompleteTime == nil {
		t.Errorf("ended as %v (rev %d)", pb, ended[0].Rev)
	}
}

func TestFailureRecords(t *testing.T) {
	pre := apierr.FailedPrecondition("cannot", apierr.Violation{Type: "PLACEMENT", Subject: "host:h1", Description: "h1 is cordoned"})
	tests := []struct {
		err   error
		code  codes.Code
		text  string
		types []string
	}{
		{pre, codes.FailedPrecondition, "cannot: h1 is cordoned", []string{"PLACEMENT"}},
		{fmt.Errorf("moving back: %w", pre), codes.FailedPrecondition, "", []string{"PLACEMENT"}},
		{&store.ConflictError{}, codes.Aborted, "", nil},
		{store.ErrUnavailable, codes.Unavailable, "store unavailable", nil},
		{errors.New("boom"), codes.Unknown, "boom", nil},
		{status.Error(codes.NotFound, "gone"), codes.NotFound, "gone", nil},
	}
	for _, tt := range tests {
		if got := tasks.ErrorCode(tt.err); got != tt.code {
			t.Errorf("ErrorCode(%v) = %v, want %v", tt.err, got, tt.code)
		}
		if tt.text != "" && tasks.ErrorText(tt.err) != tt.text {
			t.Errorf("ErrorText(%v) = %q, want %q", tt.err, tasks.ErrorText(tt.err), tt.text)
		}
		var types []string
		for _, v := range tasks.Violations(tt.err) {
			types = append(types, v.Type)
		}
		if fmt.Sprint(types) != fmt.Sprint(tt.types) {
			t.Errorf("Violations(%v) = %v, want %v", tt.err, types, tt.types)
		}
	}
}

func TestFollowSendsUntilTheEnd(t *testing.T) {
	tb := tasks.NewTable(10)
	task := tb.Begin(acliv1.TaskOperation_kVmMigrate, nil)
	var mu sync.Mutex // the owner's lock
	read := func() (*acliv1.Task, <-chan struct{}, error) {
		mu.Lock()
		defer mu.Unlock()
		if tb.Get(task.PB().Uuid) == nil {
			return nil, nil, errors.New("not found")
		}
		return task.PB(), task.Changed(), nil
	}
	var got []*acliv1.Task
	done := make(chan error)
	go func() {
		done <- tasks.Follow(context.Background(), read, func(pb *acliv1.Task) error { got = append(got, pb); return nil })
	}()
	for _, p := range []int32{30, 60} {
		mu.Lock()
		task.Update(func(pb *acliv1.Task) { pb.Percent = p })
		mu.Unlock()
	}
	mu.Lock()
	task.Replace(tasks.Succeeded(task.PB(), "moved"))
	mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if last.Status != acliv1.TaskStatus_kSucceeded || last.Percent != 100 || last.Messages[len(last.Messages)-1] != "moved" {
		t.Errorf("last sent %v", last)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Revision <= got[i-1].Revision {
			t.Errorf("revisions sent out of order: %d after %d", got[i].Revision, got[i-1].Revision)
		}
	}

	// A task forgotten after it was sent: abandoned.
	forgotten := tb.Begin(acliv1.TaskOperation_kVmCreate, nil)
	task = forgotten
	sent := make(chan struct{}, 1)
	go func() {
		done <- tasks.Follow(context.Background(), read, func(*acliv1.Task) error { sent <- struct{}{}; return nil })
	}()
	<-sent
	mu.Lock()
	tb.Forget(forgotten)
	mu.Unlock()
	if err := <-done; err != tasks.ErrAbandoned {
		t.Errorf("watch of a forgotten task ended with %v, want ErrAbandoned", err)
	}

	// A watch stopped early returns the cause.
	running := tb.Begin(acliv1.TaskOperation_kVmCreate, nil)
	task = running
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("shutting down")
	go func() { done <- tasks.Follow(ctx, read, func(*acliv1.Task) error { return nil }) }()
	cancel(stop)
	if err := <-done; err != stop {
		t.Errorf("stopped watch ended with %v, want its cause", err)
	}
}

func TestFailRecordsAbortOrFailure(t *testing.T) {
	tb := tasks.NewTable(10)
	task := tb.Begin(acliv1.TaskOperation_kVmPowerOn, nil)
	pre := apierr.Precondition("PLACEMENT", "host:h2", "h2 is cordoned")
	pb := task.Update(func(pb *acliv1.Task) { tasks.Fail(pb, pre, false) })
	if pb.Status != acliv1.TaskStatus_kFailed || pb.ErrorCode != int32(codes.FailedPrecondition) || len(pb.Violations) != 1 ||
		pb.Messages[len(pb.Messages)-1] != "failed: h2 is cordoned" {
		t.Errorf("failed as %v", pb)
	}
	pb = task.Update(func(pb *acliv1.Task) { tasks.Fail(pb, errors.New("cancelled by admin"), true) })
	if pb.Status != acliv1.TaskStatus_kAborted || pb.Messages[len(pb.Messages)-1] != "aborted: cancelled by admin" {
		t.Errorf("aborted as %v", pb)
	}
}

func TestEventOfAFinishedTask(t *testing.T) {
	refs := []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVolumeGroup, Name: "vg1"}}
	for _, c := range []struct {
		pb                  *acliv1.Task
		message             string
		typ, severity, text string
	}{
		{&acliv1.Task{Operation: acliv1.TaskOperation_kVmCreate, Status: acliv1.TaskStatus_kSucceeded}, "", "task", "info", "kVmCreate succeeded"},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kVmCreate, Status: acliv1.TaskStatus_kSucceeded, Entities: refs}, "done", "vg", "info", "done"},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kVmCreate, Status: acliv1.TaskStatus_kFailed, Entities: refs, Error: "boom"}, "done", "vg", "error", "kVmCreate of vg1 failed: boom"},
	} {
		typ, severity, text := tasks.Event(c.pb, c.message)
		if typ != c.typ || severity != c.severity || text != c.text {
			t.Errorf("Event(%v, %q) = %q, %q, %q; want %q, %q, %q", c.pb, c.message, typ, severity, text, c.typ, c.severity, c.text)
		}
	}
}
