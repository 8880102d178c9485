package hostsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
)

// joinDriver is a driver whose hosts join and leave: joined hosts get
// the UUID uuid-<name>.
type joinDriver struct {
	driver.Driver // only Name and HostJoiner are called
	mu            sync.Mutex
	joined        []string
	left          []string
}

func (d *joinDriver) Name() string { return "libvirt" }
func (d *joinDriver) CheckHost(h *acliv1.Host) error {
	if !strings.HasPrefix(h.LibvirtUri, "qemu+tcp://") {
		return errors.New("libvirt_uri must be qemu+tcp://")
	}
	return nil
}
func (d *joinDriver) JoinHost(_ context.Context, h *acliv1.Host) (*acliv1.Host, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.joined = append(d.joined, h.Name)
	return &acliv1.Host{Uuid: "uuid-" + h.Name, Name: h.Name, HypervisorIp: h.HypervisorIp, CvmIp: h.CvmIp, LibvirtUri: h.LibvirtUri,
		CpuCores: 8, MemoryBytes: 16 << 30, NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp, Schedulable: true}, nil
}
func (d *joinDriver) LeaveHost(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.left = append(d.left, id)
	return nil
}

// membersManager is a lock table and a task engine committing to DB.
type membersManager struct {
	db      *state.DB
	mu      sync.Mutex
	held    map[string]*tasks.Task
	n       int
	ended   []string
	running sync.WaitGroup
}

type membersLocked struct{ *membersManager }

func (f *membersManager) Locked(fn func(l MembersLocked) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(membersLocked{f})
}

func (f *membersManager) Launch(ctx context.Context, t *tasks.Task, w func(ctx context.Context) (Done, error)) (*acliv1.Task, error) {
	f.running.Add(1)
	go func() {
		defer f.running.Done()
		d, err := w(ctx)
		if err == nil {
			_, err = f.db.Update(ctx, func(tx *state.Tx) error {
				for _, w := range d.Writes {
					if w.Msg == nil {
						tx.Delete(w.Key, w.Rev)
					} else {
						tx.Put(w.Key, w.Msg, w.Rev)
					}
				}
				return nil
			})
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		msg := d.Message
		if err != nil {
			msg = "failed: " + err.Error()
		} else if d.Committed != nil {
			d.Committed()
		}
		f.ended = append(f.ended, t.PB().Operation.String()+" "+t.PB().Entities[0].Uuid+": "+msg)
		for _, id := range t.Locks {
			delete(f.held, id)
		}
	}()
	return t.PB(), nil
}

func (f *membersManager) Progress(*tasks.Task, int32, string) {}
func (f *membersManager) Update(t *tasks.Task, fn func(*acliv1.Task)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(t.PB())
}

func (l membersLocked) Holder(id string) *tasks.Task { return l.held[id] }
func (l membersLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task {
	l.n++
	t := tasks.New(&acliv1.Task{Uuid: fmt.Sprintf("task-%d", l.n), Operation: op, Entities: refs}, locks...)
	for _, id := range locks {
		l.held[id] = t
	}
	return t
}

type memberBeats struct {
	mu   sync.Mutex
	told []string
}

func (b *memberBeats) Seen(host string, _ time.Time) {
	b.mu.Lock()
	b.told = append(b.told, "seen "+host)
	b.mu.Unlock()
}
func (b *memberBeats) Forget(host string) {
	b.mu.Lock()
	b.told = append(b.told, "forget "+host)
	b.mu.Unlock()
}

func wantMembersCode(t *testing.T, err error, code codes.Code, sub string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), sub) {
		t.Fatalf("got %v, want %s containing %q", err, code, sub)
	}
}

func TestMembersAddAndRemove(t *testing.T) {
	db := statetest.Open(t)
	ctx := context.Background()
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		tx.Put(state.HostKey("uuid-h1"), &acliv1.Host{Uuid: "uuid-h1", Name: "h1", HypervisorIp: "127.42.0.1", MemoryBytes: 8 << 30,
			NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp, Schedulable: true}, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	drv, beats := &joinDriver{}, &memberBeats{}
	f := &membersManager{db: db, held: map[string]*tasks.Task{}}
	s := &Members{DB: db, M: f, Driver: drv, Beats: beats, Now: time.Now}
	add := func(name, ip, uri string) error {
		_, err := s.AddHost(ctx, &acliv1.AddHostRequest{Name: name, HypervisorIp: ip, LibvirtUri: uri})
		f.running.Wait()
		return err
	}
	wantMembersCode(t, add("h2", "127.42.0.2", "qemu:///system"), codes.InvalidArgument, "libvirt_uri must be qemu+tcp://")
	wantMembersCode(t, add("h1", "127.42.0.9", "qemu+tcp://127.42.0.9/system"), codes.AlreadyExists, "h1")
	f.held["host-ip:127.42.0.2"] = tasks.New(&acliv1.Task{Uuid: "task-x", Operation: acliv1.TaskOperation_kHostAdd})
	wantMembersCode(t, add("h2", "127.42.0.2", "qemu+tcp://127.42.0.2/system"), codes.Aborted, "host h2 is busy with task task-x (kHostAdd)")
	delete(f.held, "host-ip:127.42.0.2")
	if err := add("h2", "127.42.0.2", "qemu+tcp://127.42.0.2/system"); err != nil {
		t.Fatal(err)
	}
	var h2 *acliv1.Host
	db.View(func(tx *state.Tx) { h2 = tx.Host("uuid-h2") })
	if h2 == nil || h2.Name != "h2" || h2.CpuCores != 8 {
		t.Fatalf("h2 recorded as %v", h2)
	}
	// A host with a VM on it cannot leave.
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		tx.Put(state.VmKey("uuid-a"), &acliv1.Vm{Uuid: "uuid-a", Name: "a", MemoryBytes: 1 << 30, PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h2", HostName: "h2"}, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.RemoveHost(ctx, &acliv1.RemoveHostRequest{Host: "h2"})
	wantMembersCode(t, err, codes.FailedPrecondition, "a")
	if _, err := db.Update(ctx, func(tx *state.Tx) error { tx.Delete(state.VmKey("uuid-a"), state.AnyRev); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveHost(ctx, &acliv1.RemoveHostRequest{Host: "127.42.0.2"}); err != nil {
		t.Fatal(err)
	}
	f.running.Wait()
	db.View(func(tx *state.Tx) { h2 = tx.Host("uuid-h2") })
	if h2 != nil {
		t.Fatalf("h2 still recorded: %v", h2)
	}
	_, err = s.RemoveHost(ctx, &acliv1.RemoveHostRequest{Host: "h2"})
	wantMembersCode(t, err, codes.NotFound, `host "h2" not found`)
	want := []string{
		"kHostAdd uuid-h2: host h2 (127.42.0.2) added: 8 cores, 16 GiB, uuid uuid-h2",
		"kHostRemove uuid-h2: host h2 (127.42.0.2) removed from the cluster",
	}
	if got := strings.Join(f.ended, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("tasks ended:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if got := strings.Join(beats.told, ","); got != "seen uuid-h2,forget uuid-h2" {
		t.Fatalf("beats told %s", got)
	}
	if got := fmt.Sprint(drv.joined, drv.left); got != "[h2] [uuid-h2]" {
		t.Fatalf("driver: %s", got)
	}
	if len(f.held) != 0 {
		t.Fatalf("left held %v", f.held)
	}
	// The sim's hosts come from its configuration.
	s.Driver = simDriver{}
	_, err = s.RemoveHost(ctx, &acliv1.RemoveHostRequest{Host: "h1"})
	wantMembersCode(t, err, codes.FailedPrecondition, "host.remove needs clusterd --driver libvirt")
}

type simDriver struct{ driver.Driver }

func (simDriver) Name() string { return "sim" }
