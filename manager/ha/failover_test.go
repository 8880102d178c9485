package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
)

const gib = int64(1) << 30

// fakeManager is the rest of the manager as Failover sees it: a lock,
// tasks begun and launched at once, claims, arrivals and a log.
type fakeManager struct {
	db *state.DB

	mu       sync.Mutex
	n        int
	claimed  map[string]*tasks.Task
	moves    *migrate.Moves
	log      []string
	launched sync.WaitGroup
}

type fakeLocked struct{ *fakeManager }

func (f *fakeManager) Locked(fn func(l Locked) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(fakeLocked{f})
}

func (f *fakeManager) Launch(t *tasks.Task, w func(ctx context.Context) (string, error)) error {
	f.launched.Add(1)
	go func() {
		defer f.launched.Done()
		msg, err := w(context.Background())
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Release()
		f.log = append(f.log, fmt.Sprintf("ended %s: %q %v", t.PB().Operation, msg, err))
	}()
	return nil
}

func (f *fakeManager) Claim(_ context.Context, t *tasks.Task, id string) (v *acliv1.Vm, rev int64, err error) {
	f.mu.Lock()
	f.claimed[id] = t
	f.mu.Unlock()
	f.db.View(func(tx *state.Tx) { v, rev = tx.Vm(id), tx.Rev(state.VmKey(id)) })
	return v, rev, nil
}

func (f *fakeManager) Arrive(host string) (func(), error) { return f.moves.Arrive(host) }

func (f *fakeManager) WithDevicesOn(vm *acliv1.Vm, _ string) (*acliv1.Vm, error) { return vm, nil }

func (f *fakeManager) Record(ctx context.Context, next *acliv1.Vm, rev int64, done func()) error {
	_, err := f.db.Update(ctx, func(tx *state.Tx) error {
		tx.Put(state.VmKey(next.Uuid), next, rev)
		return nil
	})
	if err == nil {
		f.mu.Lock()
		done()
		f.mu.Unlock()
	}
	return err
}

func (f *fakeManager) Progress(*tasks.Task, int32, string, ...any) {}
func (f *fakeManager) Message(*tasks.Task, int32, string, ...any)  {}

func (f *fakeManager) Publish(t *tasks.Task, severity string, _ []*acliv1.EntityRef, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, severity+": "+fmt.Sprintf(format, args...))
}

func (l fakeLocked) Closing() bool { return false }

// Snapshot is production's view of the committed state.
func (l fakeLocked) Snapshot() (s *scheduler.Snapshot) {
	l.db.View(func(tx *state.Tx) { s = tx.Schedule(nil) })
	return s
}

func (l fakeLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef) *tasks.Task {
	l.n++
	l.log = append(l.log, "began "+op.String())
	return tasks.New(&acliv1.Task{Uuid: fmt.Sprintf("task-%d", l.n), Operation: op, Entities: refs})
}

func (l fakeLocked) LetGo(t *tasks.Task, id string) {
	if l.claimed[id] == t {
		delete(l.claimed, id)
	}
}

// newFailover is Failover over three 8 GiB hosts, h1 down with vm a (4
// GiB) recorded running there, and h2 holding 2 GiB more than h3.
func newFailover(t *testing.T, failover bool) (*Failover, *fakeManager) {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2, Ha: &acliv1.HaConfig{FailoverEnabled: failover, NumHostFailuresToTolerate: 1}}, 0)
		for i := 1; i <= 3; i++ {
			tx.Put(state.HostKey(fmt.Sprintf("uuid-h%d", i)), &acliv1.Host{Uuid: fmt.Sprintf("uuid-h%d", i), Name: fmt.Sprintf("h%d", i),
				HypervisorIp: fmt.Sprintf("127.42.0.%d", i), MemoryBytes: 8 * gib, Schedulable: true,
				NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}, 0)
		}
		tx.Put(state.VmKey("uuid-a"), &acliv1.Vm{Uuid: "uuid-a", Name: "a", MemoryBytes: 4 * gib, NumVcpus: 1, PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h1", HostName: "h1"}, 0)
		tx.Put(state.VmKey("uuid-b"), &acliv1.Vm{Uuid: "uuid-b", Name: "b", MemoryBytes: 2 * gib, NumVcpus: 1, PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h2", HostName: "h2"}, 0)
		return nil
	})
	if err == nil {
		_, err = db.Update(context.Background(), func(tx *state.Tx) error {
			h := tx.Host("uuid-h1")
			h.NodeState, h.CvmState = acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown
			tx.Put(state.HostKey(h.Uuid), h, state.AnyRev)
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeManager{db: db, claimed: map[string]*tasks.Task{}, moves: migrate.NewMoves(db, 2)}
	return &Failover{DB: db, M: f}, f
}

// arriving is 1 when a VM is on its way to host, else 0.
func arriving(f *fakeManager, host string) int {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f.moves.AwaitArrivals(ctx, host) != nil {
		return 1
	}
	return 0
}

// setHost commits edit to host's record.
func setHost(t *testing.T, db *state.DB, host string, edit func(*acliv1.Host)) {
	t.Helper()
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		h := proto.Clone(tx.Host(host)).(*acliv1.Host)
		edit(h)
		tx.Put(state.HostKey(host), h, tx.Rev(state.HostKey(host)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func downHost(f *Failover) (h *acliv1.Host) {
	f.DB.View(func(tx *state.Tx) { h = tx.Host("uuid-h1") })
	return h
}

// With failover off nothing starts and an event says why.
func TestFailoverOffStartsNothing(t *testing.T) {
	fo, f := newFailover(t, false)
	err := fo.Launch(downHost(fo), func(context.Context, Cluster, Report) (string, error) {
		t.Error("ran a restart with failover off")
		return "", nil
	})
	if !errors.Is(err, ErrFailoverDisabled) {
		t.Fatalf("got %v, want ErrFailoverDisabled", err)
	}
	if got := strings.Join(f.log, "\n"); got != "warning: host h1 (127.42.0.1) is down and its VMs are not restarted: "+ErrFailoverDisabled.Error() {
		t.Fatalf("told:\n%s", got)
	}
}

// A restart task reserves its plan's memory on the target; a target that
// closed is replaced (the reservation moves with the VM), the VM counts as
// arriving there until told, its record ends the reservation, and the
// task's end lets go of what is left.
func TestFailoverReservesAndReplans(t *testing.T) {
	fo, f := newFailover(t, true)
	var ran bool
	err := fo.Launch(downHost(fo), func(ctx context.Context, c Cluster, r Report) (string, error) {
		ran = true
		plan, err := c.Plan("uuid-h1")
		if err != nil || len(plan.Restarts) != 1 {
			t.Fatalf("plan %+v %v", plan, err)
		}
		planned := plan.Restarts[0].Target.UUID
		if got := fo.DB.Reserved(planned); got != 4*gib {
			t.Fatalf("reserved on the planned target %s: %d, want 4 GiB", planned, got)
		}
		vm, rev, err := c.Claim(ctx, "uuid-a")
		if err != nil || vm == nil {
			t.Fatalf("claim: %v %v", vm, err)
		}
		// Issue 12 defect 4: cordoned after the plan, before the restart
		// started toward it.
		setHost(t, fo.DB, planned, func(h *acliv1.Host) { h.Schedulable, h.SchedulableReason = false, "cordoned" })
		dst, arrived, why := c.Target(downHost(fo), vm, planned)
		if dst == nil || dst.Uuid == planned {
			t.Fatalf("target after %s closed: %v (%s)", planned, dst, why)
		}
		if fo.DB.Reserved(planned) != 0 || fo.DB.Reserved(dst.Uuid) != 4*gib {
			t.Fatalf("reserved: %d on the closed target, %d on %s; want 0 and 4 GiB", fo.DB.Reserved(planned), fo.DB.Reserved(dst.Uuid), dst.Name)
		}
		if arriving(f, dst.Uuid) != 1 || arriving(f, planned) != 0 {
			t.Fatalf("arriving on %s: %d, on the closed target: %d; want 1 and 0", dst.Name, arriving(f, dst.Uuid), arriving(f, planned))
		}
		next := &acliv1.Vm{Uuid: vm.Uuid, Name: vm.Name, MemoryBytes: vm.MemoryBytes, NumVcpus: 1, PowerState: acliv1.PowerState_kOn, HostUuid: dst.Uuid, HostName: dst.Name}
		if err := c.Record(ctx, next, rev); err != nil {
			t.Fatal(err)
		}
		arrived()
		if fo.DB.Reserved(dst.Uuid) != 0 || arriving(f, dst.Uuid) != 0 {
			t.Fatalf("after the record: %d reserved, %d arriving on %s", fo.DB.Reserved(dst.Uuid), arriving(f, dst.Uuid), dst.Name)
		}
		c.LetGo(vm.Uuid)
		if _, err := c.Plan("uuid-h1"); err != nil { // nothing left: nothing reserved
			t.Fatal(err)
		}
		// A second plan's reservation is let go with the task's end.
		c.(*taskCluster).reserve(vm, "uuid-h3")
		if !c.Down("uuid-h1") || c.Down("uuid-h2") {
			t.Error("Down does not read the records")
		}
		return "done", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.launched.Wait()
	if !ran {
		t.Fatal("the restart did not run")
	}
	if fo.DB.Reserved("uuid-h2")+fo.DB.Reserved("uuid-h3") != 0 || len(f.claimed) != 0 {
		t.Fatalf("after the task: reserved h2 %d h3 %d, claimed %v", fo.DB.Reserved("uuid-h2"), fo.DB.Reserved("uuid-h3"), f.claimed)
	}
	if got := strings.Join(f.log, "\n"); got != "began kHaFailover\nended kHaFailover: \"done\" <nil>" {
		t.Fatalf("told:\n%s", got)
	}
}

// Issue 12 defect 4: a restart not yet started toward a host cordoned
// since the plan does not start there, nor anywhere when no other host
// takes VMs; nothing counts as arriving.
func TestFailoverTargetClosedEverywhere(t *testing.T) {
	fo, f := newFailover(t, true)
	err := fo.Launch(downHost(fo), func(ctx context.Context, c Cluster, r Report) (string, error) {
		plan, err := c.Plan("uuid-h1")
		if err != nil || len(plan.Restarts) != 1 {
			t.Fatalf("plan %+v %v", plan, err)
		}
		planned := plan.Restarts[0].Target.UUID
		vm, _, err := c.Claim(ctx, "uuid-a")
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"uuid-h2", "uuid-h3"} {
			setHost(t, fo.DB, h, func(h *acliv1.Host) { h.Schedulable, h.SchedulableReason = false, "cordoned" })
		}
		dst, arrived, why := c.Target(downHost(fo), vm, planned)
		if dst != nil || arrived != nil || !strings.Contains(why, "host is not schedulable: cordoned, and no other host can take it now") {
			t.Fatalf("target %v, why %q", dst, why)
		}
		if arriving(f, "uuid-h2")+arriving(f, "uuid-h3") != 0 {
			t.Fatal("a refused restart counts as arriving")
		}
		c.LetGo(vm.Uuid)
		return "done", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.launched.Wait()
}

// A host recorded down with VMs still recorded there when clusterd
// started has its restart launched once the controller runs; a down host
// with none, and a host up, have none.
func TestControllerResumesDownHosts(t *testing.T) {
	fo, _ := newFailover(t, true)
	setHost(t, fo.DB, "uuid-h3", func(h *acliv1.Host) { h.NodeState = acliv1.NodeState_kNodeDown })
	launched := make(chan string, 3)
	ctl := &Controller{Clock: newFakeClock(), Timeout: time.Second, Beats: &Beats{}}
	ctl.Launch = func(h *acliv1.Host, _ func(context.Context, Cluster, Report) (string, error)) error {
		launched <- h.Name
		return nil
	}
	ctl.ResumeDown(fo.DB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	if got := <-launched; got != "h1" {
		t.Fatalf("launched the restart of %s, want h1", got)
	}
	cancel()
	<-done
	if len(launched) != 0 {
		t.Fatalf("launched %d more restart(s)", len(launched))
	}
}
