package migrate_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
)

// fakeManager is the manager as migrate.Service sees it: a lock table,
// placement over the committed records, reservations, and moves that
// record the VM on its target.
type fakeManager struct {
	db *state.DB

	moves *migrate.Moves

	mu      sync.Mutex
	held    map[string]*tasks.Task
	log     []string
	running sync.WaitGroup
}

type fakeLocked struct{ *fakeManager }

func (f *fakeManager) Locked(fn func(l migrate.Locked) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(fakeLocked{f})
}

func (f *fakeManager) Launch(ctx context.Context, t *tasks.Task, w func(ctx context.Context) (string, error)) (*acliv1.Task, error) {
	f.running.Add(1)
	go func() {
		defer f.running.Done()
		msg, err := w(ctx)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil {
			msg = "failed: " + err.Error()
		}
		f.log = append(f.log, "end: "+msg)
		for _, id := range t.Locks {
			delete(f.held, id)
		}
		t.Release()
	}()
	return t.PB(), nil
}

func (f *fakeManager) Log(_ *tasks.Task, _ int32, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, line)
}

func (f *fakeManager) move(ctx context.Context, mv migrate.Move, reservation func()) error {
	f.Log(nil, 0, fmt.Sprintf("%d GiB reserved on %s, a target of %d task(s)", f.db.Reserved(mv.Dst.Uuid)>>30, mv.Dst.Name, len(f.moves.Targets(mv.Dst.Uuid))))
	next := proto.Clone(mv.VM).(*acliv1.Vm)
	next.HostUuid, next.HostName = mv.Dst.Uuid, mv.Dst.Name
	if _, err := f.db.Update(ctx, func(tx *state.Tx) error { tx.Put(state.VmKey(next.Uuid), next, mv.Rev); return nil }); err != nil {
		return err
	}
	reservation()
	f.Log(nil, 0, fmt.Sprintf("released: %d GiB reserved on %s", f.db.Reserved(mv.Dst.Uuid)>>30, mv.Dst.Name))
	return nil
}

func (f *fakeManager) Live(ctx context.Context, _ *tasks.Task, mv migrate.Move, reservation func()) (migrate.Result, error) {
	return migrate.Result{Rounds: 1}, f.move(ctx, mv, reservation)
}

func (f *fakeManager) Offline(ctx context.Context, _ *tasks.Task, mv migrate.Move, reservation func()) error {
	return f.move(ctx, mv, reservation)
}

func (l fakeLocked) Holder(id string) *tasks.Task { return l.held[id] }

// Snapshot is production's view of the committed state.
func (l fakeLocked) Snapshot() (s *scheduler.Snapshot) {
	l.db.View(func(tx *state.Tx) { s = tx.Schedule(nil) })
	return s
}

func (l fakeLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task {
	t := tasks.New(&acliv1.Task{Uuid: "task-" + refs[0].Name, Operation: op, Entities: refs}, locks...)
	for _, id := range locks {
		l.held[id] = t
	}
	return t
}

// newService: hosts h1-h3 (127.42.0.1-3, h3 down), VMs a and b on h1,
// agent ag on h1, off VM c.
func newService(t *testing.T) (*migrate.Service, *fakeManager) {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		for i := 1; i <= 3; i++ {
			h := &acliv1.Host{Uuid: fmt.Sprintf("uuid-h%d", i), Name: fmt.Sprintf("h%d", i), HypervisorIp: fmt.Sprintf("127.42.0.%d", i),
				MemoryBytes: 8 << 30, Schedulable: true, NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}
			if i == 3 {
				h.NodeState, h.CvmState = acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown
			}
			tx.Put(state.HostKey(h.Uuid), h, 0)
		}
		for _, v := range []*acliv1.Vm{{Name: "a", HostUuid: "uuid-h1"}, {Name: "b", HostUuid: "uuid-h1"}, {Name: "ag", HostUuid: "uuid-h1", AgentVm: true}, {Name: "c"}} {
			v.Uuid, v.MemoryBytes = "uuid-"+v.Name, 1<<30
			if v.HostUuid != "" {
				v.PowerState, v.HostName = acliv1.PowerState_kOn, "h1"
			}
			tx.Put(state.VmKey(v.Uuid), v, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeManager{db: db, moves: migrate.NewMoves(db, 2), held: map[string]*tasks.Task{}}
	return &migrate.Service{DB: db, Moves: f.moves, M: f}, f
}

func wantCode(t *testing.T, err error, code codes.Code, sub string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), sub) {
		t.Fatalf("got %v, want %s containing %q", err, code, sub)
	}
}

func TestServiceMigrateVm(t *testing.T) {
	s, f := newService(t)
	ctx := context.Background()
	no := false
	req := func(vm, host string) *acliv1.MigrateVmRequest { return &acliv1.MigrateVmRequest{Vm: vm, Host: host} }
	_, err := s.MigrateVm(ctx, req("c", ""))
	wantCode(t, err, codes.FailedPrecondition, "vm c is off and has no host to move from")
	_, err = s.MigrateVm(ctx, req("ag", ""))
	wantCode(t, err, codes.FailedPrecondition, "vm ag is an agent VM and stays on its host")
	_, err = s.MigrateVm(ctx, req("a", "h9"))
	wantCode(t, err, codes.NotFound, `host "h9" not found`)
	_, err = s.MigrateVm(ctx, req("a", "h3"))
	wantCode(t, err, codes.FailedPrecondition, "h3")
	_, err = s.MigrateVm(ctx, &acliv1.MigrateVmRequest{Vm: "a", BandwidthMbps: -1})
	wantCode(t, err, codes.InvalidArgument, "bandwidth_mbps -1 must not be negative")
	f.held["uuid-a"] = tasks.New(&acliv1.Task{Uuid: "task-other", Operation: acliv1.TaskOperation_kVmUpdate})
	_, err = s.MigrateVm(ctx, req("a", ""))
	wantCode(t, err, codes.Aborted, "vm a is busy with task task-other (kVmUpdate)")
	delete(f.held, "uuid-a")
	// The scheduler's choice: h2, the only host up besides h1.
	if _, err := s.MigrateVm(ctx, req("a", "")); err != nil {
		t.Fatal(err)
	}
	f.running.Wait()
	if _, err := s.MigrateVm(ctx, &acliv1.MigrateVmRequest{Vm: "b", Host: "127.42.0.2", Live: &no}); err != nil {
		t.Fatal(err)
	}
	f.running.Wait()
	s.DB.View(func(tx *state.Tx) {
		for _, id := range []string{"uuid-a", "uuid-b"} {
			if v := tx.Vm(id); v.HostUuid != "uuid-h2" {
				t.Fatalf("vm %s on %s", v.Name, v.HostName)
			}
		}
	})
	want := []string{
		"live-migrating vm a from h1 (127.42.0.1) to h2 (127.42.0.2)",
		"1 GiB reserved on h2, a target of 1 task(s)",
		"released: 0 GiB reserved on h2",
		"end: vm a migrated from h1 (127.42.0.1) to h2 (127.42.0.2) in " + migrate.Result{Rounds: 1}.String(),
		"moving (offline) vm b from h1 (127.42.0.1) to h2 (127.42.0.2)",
		"1 GiB reserved on h2, a target of 1 task(s)",
		"released: 0 GiB reserved on h2",
		"end: vm b moved from h1 (127.42.0.1) to h2 (127.42.0.2) (offline)",
	}
	if got := strings.Join(f.log, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("log:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(f.held) != 0 || s.DB.Reserved("uuid-h2") != 0 || len(f.moves.Targets("uuid-h2")) != 0 {
		t.Fatalf("left held %v, reserved %d, targets %v", f.held, s.DB.Reserved("uuid-h2"), f.moves.Targets("uuid-h2"))
	}
}
