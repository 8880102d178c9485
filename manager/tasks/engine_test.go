package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/tasks"
)

// owner is tasks.Owner over a real state.DB: commits through DB.Update,
// and a log of the events and let-gos.
type owner struct {
	db *state.DB

	mu     sync.Mutex
	events []*acliv1.Event
	letGo  []string
}

func (o *owner) Commit(ctx context.Context, ws []state.Write, holds func(tx *state.Tx) error) (int64, error) {
	return o.db.Update(ctx, func(tx *state.Tx) error {
		for _, w := range ws {
			if w.Msg == nil {
				tx.Delete(w.Key, w.Rev)
			} else {
				tx.Put(w.Key, w.Msg, w.Rev)
			}
		}
		if holds != nil {
			return holds(tx)
		}
		return nil
	})
}

func (o *owner) Publish(ev *acliv1.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func (o *owner) LetGo(ids []string, release func()) {
	o.mu.Lock()
	o.letGo = append(o.letGo, ids...)
	o.mu.Unlock()
	if release != nil {
		release()
	}
}

type rig struct {
	e   *tasks.Engine
	o   *owner
	db  *state.DB
	st  store.Store
	dir string
}

var bg = context.Background()

// newRig is an engine over the store in dir (a new one if ""), loaded,
// holding cluster c and vm a (off) when the store is new.
func newRig(t *testing.T, dir string, retention int) *rig {
	t.Helper()
	fresh := dir == ""
	if fresh {
		dir = t.TempDir()
	}
	db, st := statetest.OpenDir(t, dir)
	ctx, cancel := context.WithCancel(bg)
	o := &owner{db: db}
	e := tasks.NewEngine(tasks.Config{DB: db, Store: st, Owner: o, Retention: retention, Ctx: ctx})
	t.Cleanup(func() { e.Close(); cancel(); e.Wait(5 * time.Second) })
	if err := e.Load(bg); err != nil {
		t.Fatal(err)
	}
	r := &rig{e: e, o: o, db: db, st: st, dir: dir}
	if fresh {
		if _, err := db.Update(bg, func(tx *state.Tx) error {
			tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
			tx.Put(state.VmKey("uuid-a"), vmA(1024), 0)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func vmA(mem int64) *acliv1.Vm {
	return &acliv1.Vm{Uuid: "uuid-a", Name: "a", MemoryBytes: mem, NumVcpus: 1}
}

var refA = []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVm, Uuid: "uuid-a", Name: "a"}}

func (r *rig) vm() (*acliv1.Vm, int64) {
	var v *acliv1.Vm
	var rev int64
	r.db.View(func(tx *state.Tx) { v, rev = tx.Vm("uuid-a"), tx.Rev(state.VmKey("uuid-a")) })
	return v, rev
}

// stored is the task record in the store, nil if none.
func (r *rig) stored(t *testing.T, id string) *acliv1.Task {
	t.Helper()
	kv, err := r.st.Get(bg, tasks.Key(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	pb := &acliv1.Task{}
	if err := proto.Unmarshal(kv.Value, pb); err != nil {
		t.Fatal(err)
	}
	return pb
}

// resize is work setting vm a's memory, on the revision its request read.
func resize(mem int64, rev int64) tasks.Work {
	return func(context.Context, *tasks.Task) (tasks.Outcome, error) {
		return tasks.Outcome{Writes: []state.Write{{Key: state.VmKey("uuid-a"), Msg: vmA(mem), Rev: rev}}, Message: fmt.Sprintf("vm a has %d bytes", mem)}, nil
	}
}

// waitEnd waits for a task to reach a final status.
func waitEnd(t *testing.T, task *tasks.Task) *acliv1.Task {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		pb, changed := task.Watch()
		if tasks.Finished(pb.Status) {
			return pb
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("task %s still %s", pb.Uuid, pb.Status)
		}
	}
}

// A launched task is persisted running by its start commit, which takes
// its entities; its work's writes and its success are one commit, which
// lets them go; its event names who started it.
func TestLaunchThenComplete(t *testing.T) {
	r := newRig(t, "", 100)
	_, rev := r.vm()
	task := r.e.Prepare(acliv1.TaskOperation_kVmUpdate, refA, "uuid-a")
	release := make(chan struct{})
	ran := make(chan struct{})
	task.Release = func() { close(ran) }
	ctx := auth.NewContext(bg, auth.Principal{User: "ann"})
	pb, err := r.e.Launch(ctx, task, func(ctx context.Context, task *tasks.Task) (tasks.Outcome, error) {
		<-release
		r.e.Message(task, 50, "resizing")
		return resize(2048, rev)(ctx, task)
	})
	if err != nil {
		t.Fatal(err)
	}
	if pb.Principal != "ann" || pb.Status != acliv1.TaskStatus_kRunning {
		t.Fatalf("launched as %v", pb)
	}
	if s := r.stored(t, pb.Uuid); s == nil || s.Status != acliv1.TaskStatus_kRunning {
		t.Fatalf("not stored running at its start: %v", s)
	}
	if h := r.db.Holder("uuid-a"); h != pb.Uuid {
		t.Fatalf("vm a held by %q, want the task", h)
	}
	close(release)
	end := waitEnd(t, task)
	<-ran
	if end.Status != acliv1.TaskStatus_kSucceeded || !slices.Equal(end.Messages, []string{"resizing", "vm a has 2048 bytes"}) {
		t.Fatalf("ended as %v", end)
	}
	if s := r.stored(t, pb.Uuid); s == nil || s.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("stored as %v", s)
	}
	if v, _ := r.vm(); v.MemoryBytes != 2048 {
		t.Fatalf("vm a has %d bytes", v.MemoryBytes)
	}
	if h := r.db.Holder("uuid-a"); h != "" {
		t.Fatalf("vm a still held by %s", h)
	}
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	if len(r.o.events) != 1 || r.o.events[0].Principal != "ann" || r.o.events[0].TaskUuid != pb.Uuid || !slices.Equal(r.o.letGo, []string{"uuid-a"}) {
		t.Fatalf("events %v, let go %v", r.o.events, r.o.letGo)
	}
}

// A start refused because another task holds an entity answers as a busy
// entity does (exit 5: Aborted, naming the holder), and leaves no task.
func TestStartRefusedWhenBusy(t *testing.T) {
	r := newRig(t, "", 100)
	first := r.e.Prepare(acliv1.TaskOperation_kVmPowerOn, refA, "uuid-a")
	block := make(chan struct{})
	defer close(block)
	pb1, err := r.e.Launch(bg, first, func(context.Context, *tasks.Task) (tasks.Outcome, error) {
		<-block
		return tasks.Outcome{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []func(*tasks.Task) error{
		func(task *tasks.Task) error { _, err := r.e.Launch(bg, task, resize(1, 0)); return err },
		func(task *tasks.Task) error { _, err := r.e.Quick(bg, task, resize(1, 0)); return err },
	} {
		second := r.e.Prepare(acliv1.TaskOperation_kVmUpdate, refA, "uuid-a")
		err := start(second)
		want := fmt.Sprintf("vm a is busy with task %s (kVmPowerOn)", pb1.Uuid)
		if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), want) {
			t.Fatalf("second start: %v (%s), want %q", err, status.Code(err), want)
		}
		id := second.PB().Uuid
		if r.e.Get(id) != nil || r.stored(t, id) != nil {
			t.Fatal("a refused start left its task")
		}
	}
	if h := r.db.Holder("uuid-a"); h != pb1.Uuid {
		t.Fatalf("vm a held by %q", h)
	}
}

// A task starts on the records its request read: one changed in between
// refuses its start (apierr.Changed), with no task left.
func TestStartRefusedWhenReadChanged(t *testing.T) {
	r := newRig(t, "", 100)
	_, rev := r.vm()
	task := r.e.Prepare(acliv1.TaskOperation_kVmUpdate, refA, "uuid-a")
	if _, err := r.o.Commit(bg, []state.Write{{Key: state.VmKey("uuid-a"), Msg: vmA(4096), Rev: rev}}, nil); err != nil {
		t.Fatal(err)
	}
	ran := false
	_, err := r.e.Quick(bg, task, func(context.Context, *tasks.Task) (tasks.Outcome, error) { ran = true; return tasks.Outcome{}, nil })
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "vm a changed while the request was checked; retry it") || ran {
		t.Fatalf("start on a changed record: %v (%s), work ran %v", err, status.Code(err), ran)
	}
	if r.e.Get(task.PB().Uuid) != nil || r.db.Holder("uuid-a") != "" {
		t.Fatal("the refused task stayed or holds vm a")
	}
}

// An end commit the store refuses: a quick task is forgotten (the request
// fails, nothing changed, its holds let go); a launched one ends kFailed,
// recorded, its holds let go and its work's undo run.
func TestRefusedEndCommit(t *testing.T) {
	r := newRig(t, "", 100)
	_, rev := r.vm()
	quick := r.e.Prepare(acliv1.TaskOperation_kVmUpdate, refA, "uuid-a")
	_, err := r.e.Quick(bg, quick, resize(2048, rev+100))
	if err == nil || r.e.Get(quick.PB().Uuid) != nil || r.stored(t, quick.PB().Uuid) != nil || r.db.Holder("uuid-a") != "" {
		t.Fatalf("quick task with a refused end: %v; still known %v", err, r.e.Get(quick.PB().Uuid) != nil)
	}
	if v, _ := r.vm(); v.MemoryBytes != 1024 {
		t.Fatal("a refused end changed vm a")
	}

	launched := r.e.Prepare(acliv1.TaskOperation_kVmUpdate, refA, "uuid-a")
	undone := false
	pb, err := r.e.Launch(bg, launched, func(ctx context.Context, task *tasks.Task) (tasks.Outcome, error) {
		out, err := resize(2048, rev+100)(ctx, task)
		out.Undo = func() { undone = true }
		return out, err
	})
	if err != nil {
		t.Fatal(err)
	}
	end := waitEnd(t, launched)
	if end.Status != acliv1.TaskStatus_kFailed || !strings.HasPrefix(end.Error, "could not record the result") || !undone {
		t.Fatalf("ended as %v (undone %v)", end, undone)
	}
	if s := r.stored(t, pb.Uuid); s == nil || s.Status != acliv1.TaskStatus_kFailed {
		t.Fatalf("stored as %v", s)
	}
	if h := r.db.Holder("uuid-a"); h != "" {
		t.Fatalf("vm a still held by %s", h)
	}
}

// A task a stopped manager left running is ended kFailed by the next
// one's Recover, in memory and in the store, unless it is to be resumed.
func TestRecoverAfterRestart(t *testing.T) {
	r := newRig(t, "", 100)
	block := make(chan struct{})
	var ids []string
	for _, op := range []acliv1.TaskOperation{acliv1.TaskOperation_kVmPowerOn, acliv1.TaskOperation_kHostEnterMaintenanceMode} {
		task := r.e.Prepare(op, refA)
		pb, err := r.e.Launch(bg, task, func(context.Context, *tasks.Task) (tasks.Outcome, error) {
			<-block
			return tasks.Outcome{}, errors.New("gone")
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pb.Uuid)
	}
	r.st.Close() // the manager stops with the tasks running
	close(block)
	r.e.Close()
	r.e.Wait(5 * time.Second)

	r2 := newRig(t, r.dir, 100)
	if err := r2.e.Recover(bg, func(pb *acliv1.Task) string {
		if pb.Operation == acliv1.TaskOperation_kHostEnterMaintenanceMode {
			return ""
		}
		return "restarted; retry it"
	}); err != nil {
		t.Fatal(err)
	}
	failed, resumed := r2.e.Get(ids[0]).PB(), r2.e.Get(ids[1]).PB()
	if failed.Status != acliv1.TaskStatus_kFailed || failed.Error != "restarted; retry it" || failed.ErrorCode != int32(codes.Aborted) {
		t.Fatalf("recovered as %v", failed)
	}
	if s := r2.stored(t, ids[0]); s == nil || s.Status != acliv1.TaskStatus_kFailed {
		t.Fatalf("stored as %v", s)
	}
	if resumed.Status != acliv1.TaskStatus_kRunning || r2.stored(t, ids[1]).Status != acliv1.TaskStatus_kRunning {
		t.Fatalf("the task to resume ended: %v", resumed)
	}
}

// Finished tasks beyond the retention are dropped, oldest first, from
// memory and from the store; running ones stay.
func TestPruneByRetention(t *testing.T) {
	r := newRig(t, "", 10)
	running := r.e.Prepare(acliv1.TaskOperation_kVmPowerOn, refA)
	block := make(chan struct{})
	if _, err := r.e.Launch(bg, running, func(context.Context, *tasks.Task) (tasks.Outcome, error) {
		<-block
		return tasks.Outcome{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 12 {
		_, rev := r.vm()
		task := r.e.Prepare(acliv1.TaskOperation_kVmUpdate, refA, "uuid-a")
		pb, err := r.e.Quick(bg, task, resize(int64(2048+i), rev))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pb.Uuid)
	}
	all := r.e.Newest(100, func(*acliv1.Task) bool { return true })
	if len(all) != 11 || all[len(all)-1].Uuid != running.PB().Uuid {
		t.Fatalf("kept %d tasks, oldest %s", len(all), all[len(all)-1].Uuid)
	}
	close(block)
	r.e.Close()
	if !r.e.Wait(5 * time.Second) { // the deletes run in the background
		t.Fatal("the engine's work did not end")
	}
	for i, id := range ids {
		if kept := r.e.Get(id) != nil; kept != (i >= 2) || (r.stored(t, id) != nil) != kept {
			t.Fatalf("task %d: kept %v, stored %v", i, kept, r.stored(t, id) != nil)
		}
	}
}
