package hostsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/store"
)

// fakeBeats records what the applier tells the heartbeat table.
type fakeBeats struct {
	mu          sync.Mutex
	back        bool // Receive's answer
	markingDown []string
	seen        []string
}

func (b *fakeBeats) Receive(string, time.Time, time.Time) bool { return b.back }
func (b *fakeBeats) MarkingDown(host string, _ time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.markingDown = append(b.markingDown, host)
}

// Consume drops the heartbeats Receive takes, as ha.Beats does, and
// applies the rest in order on this goroutine.
func (b *fakeBeats) Consume(ch <-chan driver.HostEvent, now func() time.Time, apply func(driver.HostEvent)) {
	for ev := range ch {
		if ev.Kind == driver.Heartbeat && !b.Receive(ev.HostUUID, ev.Time, now()) {
			continue
		}
		apply(ev)
	}
}

func (b *fakeBeats) Seen(host string, _ time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, host)
}

type eventsFixture struct {
	db      *state.DB
	ev      *Events
	beats   *fakeBeats
	commits int
	// before, when set, runs before each commit (a concurrent writer).
	before    func()
	published []Change
	changed   []Change
}

func newEvents(t *testing.T, h *acliv1.Host) *eventsFixture {
	t.Helper()
	f := &eventsFixture{db: statetest.Open(t), beats: &fakeBeats{}}
	_, err := f.db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
		tx.Put(state.HostKey(h.Uuid), h, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.ev = &Events{
		DB: f.db, Beats: f.beats, Now: time.Now,
		Commit: func(ctx context.Context, next *acliv1.Host, rev int64) error {
			if f.before != nil {
				f.before()
				f.before = nil
			}
			f.commits++
			_, err := f.db.Update(ctx, func(tx *state.Tx) error {
				tx.Put(state.HostKey(next.Uuid), next, rev)
				return nil
			})
			return err
		},
		VmStates: func(context.Context, driver.HostEvent) error { return nil },
		Publish:  func(c Change) { f.published = append(f.published, c) },
		Changed:  func(c Change) { f.changed = append(f.changed, c) },
	}
	return f
}

func (f *eventsFixture) host(t *testing.T, id string) *acliv1.Host {
	t.Helper()
	var h *acliv1.Host
	f.db.View(func(tx *state.Tx) { h = tx.Host(id) })
	return h
}

func (f *eventsFixture) apply(t *testing.T, kind driver.EventKind, at time.Time) {
	t.Helper()
	if err := f.ev.Apply(context.Background(), driver.HostEvent{Kind: kind, HostUUID: "uuid-h1", Time: at, Reason: "test"}); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

func normalHost() *acliv1.Host {
	return &acliv1.Host{Uuid: "uuid-h1", Name: "h1", HypervisorIp: "127.42.0.1", CvmIp: "127.42.1.1", Schedulable: true,
		NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}
}

// The driver's reports, in order, and the host state each leaves: every
// change goes through state.TransitionHost, and maintenance survives a
// failure and a recovery.
func TestEventsTransitionTable(t *testing.T) {
	inMaint := normalHost()
	inMaint.NodeState, inMaint.MaintenanceRequested = acliv1.NodeState_EnteredMaintenanceMode, true
	cvmMaint := normalHost()
	cvmMaint.CvmState, cvmMaint.CvmMaintenanceRequested = acliv1.CvmState_kCvmMaintenance, true
	type want struct {
		node acliv1.NodeState
		cvm  acliv1.CvmState
	}
	tests := []struct {
		name  string
		start *acliv1.Host
		kinds []driver.EventKind
		want  []want // after each report
	}{
		{"fail and recover", normalHost(), []driver.EventKind{driver.HostDown, driver.HostUp}, []want{
			{acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown},
			{acliv1.NodeState_AcropolisNormal, acliv1.CvmState_kCvmUp}}},
		{"maintenance survives", inMaint, []driver.EventKind{driver.HostDown, driver.HostUp}, []want{
			{acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown},
			{acliv1.NodeState_EnteredMaintenanceMode, acliv1.CvmState_kCvmUp}}},
		{"cvm maintenance survives", cvmMaint, []driver.EventKind{driver.CvmDown, driver.CvmUp, driver.HostDown, driver.HostUp}, []want{
			{acliv1.NodeState_AcropolisNormal, acliv1.CvmState_kCvmDown},
			{acliv1.NodeState_AcropolisNormal, acliv1.CvmState_kCvmMaintenance},
			{acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown},
			{acliv1.NodeState_AcropolisNormal, acliv1.CvmState_kCvmMaintenance}}},
		{"cvm reports on a down host change nothing", normalHost(), []driver.EventKind{driver.HostDown, driver.CvmUp, driver.CvmDown}, []want{
			{acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown},
			{acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown},
			{acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEvents(t, tt.start)
			at := time.Unix(1000, 0)
			for i, k := range tt.kinds {
				at = at.Add(time.Second)
				f.apply(t, k, at)
				h := f.host(t, "uuid-h1")
				if h.NodeState != tt.want[i].node || h.CvmState != tt.want[i].cvm {
					t.Fatalf("after %v: %s/%s, want %s/%s", tt.kinds[:i+1], h.NodeState, h.CvmState, tt.want[i].node, tt.want[i].cvm)
				}
			}
			if len(f.published) != len(f.changed) || len(f.published) != f.commits {
				t.Fatalf("%d commits, %d published, %d changed: each commit is told once", f.commits, len(f.published), len(f.changed))
			}
		})
	}
}

func TestEventsPublishAndHeartbeatBookkeeping(t *testing.T) {
	f := newEvents(t, normalHost())
	at := time.Unix(1000, 0)
	f.apply(t, driver.HostDown, at)
	f.apply(t, driver.HostDown, at.Add(time.Second)) // idempotent
	if f.commits != 1 || len(f.published) != 1 {
		t.Fatalf("a repeated report committed %d times, published %d", f.commits, len(f.published))
	}
	c := f.published[0]
	if c.Type != "host" || c.Severity != "error" || c.Message != "host h1 (127.42.0.1) is down: test" {
		t.Fatalf("published %+v", c)
	}
	if c.Prev.NodeState != acliv1.NodeState_AcropolisNormal || c.Next.NodeState != acliv1.NodeState_kNodeDown {
		t.Fatalf("change %s -> %s", c.Prev.NodeState, c.Next.NodeState)
	}
	if len(f.beats.markingDown) != 1 || len(f.beats.seen) != 0 {
		t.Fatalf("beats: marking down %v, seen %v", f.beats.markingDown, f.beats.seen)
	}
	// A heartbeat the table says was sent after the host was marked down
	// brings it back.
	f.beats.back = true
	f.apply(t, driver.Heartbeat, at.Add(2*time.Second))
	if h := f.host(t, "uuid-h1"); h.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("after a late heartbeat: %s", h.NodeState)
	}
	last := f.published[len(f.published)-1]
	if !strings.HasSuffix(last.Message, "is up: heartbeats resumed") || last.Event.Kind != driver.HostUp {
		t.Fatalf("published %+v", last)
	}
	if len(f.beats.seen) != 1 {
		t.Fatalf("a host back up is not counted as heard from: %v", f.beats.seen)
	}
	// A heartbeat of a host that is up changes nothing.
	f.beats.back = false
	n := f.commits
	f.apply(t, driver.Heartbeat, at.Add(3*time.Second))
	if f.commits != n {
		t.Fatal("a heartbeat of a live host committed")
	}
}

// The sim applies a fault at once and the driver reports it later: a
// report older than the last change applied to the host is dropped, so a
// quick fail and recover is not undone.
func TestEventsDropOlderReports(t *testing.T) {
	f := newEvents(t, normalHost())
	at := time.Unix(1000, 0)
	f.apply(t, driver.HostDown, at.Add(2*time.Second))
	f.apply(t, driver.HostUp, at.Add(3*time.Second))
	f.apply(t, driver.HostDown, at.Add(2500*time.Millisecond)) // the driver's late report
	if h := f.host(t, "uuid-h1"); h.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("a late report undid the recovery: %s", h.NodeState)
	}
}

// A task committing the host between the read and the commit: the change
// is computed again on the new record, never written over it.
func TestEventsRecomputeOnConflict(t *testing.T) {
	f := newEvents(t, normalHost())
	f.before = func() {
		var cur *acliv1.Host
		var rev int64
		f.db.View(func(tx *state.Tx) { cur, rev = tx.Host("uuid-h1"), tx.Rev(state.HostKey("uuid-h1")) })
		next, err := state.TransitionHost(cur, state.EnterMaintenance)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := f.db.Update(context.Background(), func(tx *state.Tx) error {
			tx.Put(state.HostKey(next.Uuid), next, rev)
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	f.apply(t, driver.HostDown, time.Unix(1000, 0))
	h := f.host(t, "uuid-h1")
	if h.NodeState != acliv1.NodeState_kNodeDown || !h.MaintenanceRequested {
		t.Fatalf("after a racing enter-maintenance and a failure: %s requested=%v", h.NodeState, h.MaintenanceRequested)
	}
	if f.commits != 2 || len(f.published) != 1 {
		t.Fatalf("%d commits (want 2: refused, then recomputed), %d published", f.commits, len(f.published))
	}
	f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.HostUp, HostUUID: "uuid-h1", Time: time.Unix(1001, 0)})
	if h := f.host(t, "uuid-h1"); h.NodeState != acliv1.NodeState_EnteredMaintenanceMode {
		t.Fatalf("the operator's intent was lost: %s", h.NodeState)
	}
}

// rename commits a concurrent change of the host's record (a task's).
func (f *eventsFixture) rename(t *testing.T, name string) {
	t.Helper()
	var cur *acliv1.Host
	var rev int64
	f.db.View(func(tx *state.Tx) { cur, rev = tx.Host("uuid-h1"), tx.Rev(state.HostKey("uuid-h1")) })
	next := proto.Clone(cur).(*acliv1.Host)
	next.Name = name
	if _, err := f.db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.HostKey(next.Uuid), next, rev)
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// Concurrent commits between each read and commit: every refused commit
// is computed again from the record the concurrent one left and sent at
// once, each attempt one commit (no waiting between them: a View already
// shows a commit that is accepted but not yet durable).
func TestEventsReapplyAtOnceAfterConflicts(t *testing.T) {
	f := newEvents(t, normalHost())
	commit := f.ev.Commit
	racing := 3
	f.ev.Commit = func(ctx context.Context, next *acliv1.Host, rev int64) error {
		if f.commits < racing {
			f.rename(t, fmt.Sprintf("h1-%d", f.commits))
		}
		return commit(ctx, next, rev)
	}
	f.apply(t, driver.HostDown, time.Unix(1000, 0))
	h := f.host(t, "uuid-h1")
	if h.NodeState != acliv1.NodeState_kNodeDown || h.Name != "h1-2" {
		t.Fatalf("after %d racing commits: %s %q, want kNodeDown over the last rename", racing, h.NodeState, h.Name)
	}
	if f.commits != racing+1 || len(f.published) != 1 {
		t.Fatalf("%d commits (want %d: each refused one sent again at once), %d published", f.commits, racing+1, len(f.published))
	}
	if got := f.published[0].Prev.Name; got != "h1-2" {
		t.Fatalf("the change was computed on %q, not on the record the last concurrent commit left", got)
	}

	// A record that changes before every commit: the report gives up after
	// commitAttempts, with the conflict.
	racing = 1 << 30
	n := f.commits
	err := f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.HostUp, HostUUID: "uuid-h1", Time: time.Unix(1001, 0)})
	if !store.IsConflict(err) || f.commits-n != commitAttempts {
		t.Fatalf("always racing: %v after %d commits, want a conflict after %d", err, f.commits-n, commitAttempts)
	}
	if h := f.host(t, "uuid-h1"); h.NodeState != acliv1.NodeState_kNodeDown || len(f.published) != 1 {
		t.Fatalf("a report that never committed changed the host (%s) or was published", h.NodeState)
	}
}

// Consume applies the stream in order until it closes; a report that
// cannot be applied is logged and the next one still applied.
func TestEventsConsume(t *testing.T) {
	f := newEvents(t, normalHost())
	var log bytes.Buffer
	f.ev.Log = slog.New(slog.NewTextHandler(&log, nil))
	f.ev.VmStates = func(context.Context, driver.HostEvent) error { return errors.New("vm report refused") }
	ch := make(chan driver.HostEvent, 4)
	ch <- driver.HostEvent{Kind: driver.VmStates, HostUUID: "uuid-h1", Time: time.Unix(1000, 0)}
	ch <- driver.HostEvent{Kind: driver.Heartbeat, HostUUID: "uuid-h1", Time: time.Unix(1001, 0)}
	ch <- driver.HostEvent{Kind: driver.HostDown, HostUUID: "uuid-h1", Time: time.Unix(1002, 0), Reason: "test"}
	close(ch)
	f.ev.Consume(ch)
	if h := f.host(t, "uuid-h1"); h.NodeState != acliv1.NodeState_kNodeDown || f.commits != 1 {
		t.Fatalf("after the stream: %s, %d commits", h.NodeState, f.commits)
	}
	if !strings.Contains(log.String(), "applying host event") || !strings.Contains(log.String(), "vm report refused") {
		t.Fatalf("log: %q", log.String())
	}
}

func TestEventsUnknownHost(t *testing.T) {
	f := newEvents(t, normalHost())
	if err := f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.HostDown, HostUUID: "nosuch", Time: time.Unix(1, 0)}); err != nil || f.commits != 0 {
		t.Fatalf("a report of an unknown host: err %v, %d commits", err, f.commits)
	}
}

// The driver's report and a fault RPC's of one fault race: the one that
// finds the change already applied returns only once the change's
// consequences (Changed: the iSCSI failover) are done, so the RPC's answer
// and the reads after it see them committed.
func TestEventsSecondReportWaitsForChanged(t *testing.T) {
	f := newEvents(t, normalHost())
	inChanged, release := make(chan struct{}), make(chan struct{})
	f.ev.Changed = func(Change) { close(inChanged); <-release }
	at := time.Now()
	first := make(chan error, 1)
	go func() {
		first <- f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.CvmDown, HostUUID: "uuid-h1", Time: at, Reason: "driver"})
	}()
	<-inChanged
	second := make(chan error, 1)
	go func() {
		second <- f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.CvmDown, HostUUID: "uuid-h1", Time: at, Reason: "rpc"})
	}()
	select {
	case err := <-second:
		t.Fatalf("the second report returned (%v) while the first's Changed ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if f.commits != 1 {
		t.Fatalf("%d commits, want 1", f.commits)
	}

	// A report whose caller gives up stops waiting.
	inChanged, release = make(chan struct{}), make(chan struct{})
	go func() {
		first <- f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.CvmUp, HostUUID: "uuid-h1", Time: at.Add(time.Second), Reason: "driver"})
	}()
	<-inChanged
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.ev.Apply(ctx, driver.HostEvent{Kind: driver.CvmUp, HostUUID: "uuid-h1", Time: at.Add(time.Second), Reason: "rpc"}); err != context.DeadlineExceeded {
		t.Fatalf("waiting past the caller's deadline: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// A host whose maintenance was asked comes back from a failure in
// maintenance only when nothing runs there: a VM HA left recorded on it
// keeps it entering, its evacuation to finish.
func TestRecoveryWithVmsLeftKeepsEntering(t *testing.T) {
	h := normalHost()
	h.MemoryBytes = 8 << 30
	f := newEvents(t, h)
	entering, err := state.TransitionHost(h, state.EnterMaintenance)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.VmKey("uuid-v1"), &acliv1.Vm{Uuid: "uuid-v1", Name: "v1", MemoryBytes: 1 << 30, NumVcpus: 1,
			PowerState: acliv1.PowerState_kOn, HostUuid: h.Uuid, HostName: h.Name}, 0)
		return nil
	})
	if err == nil {
		_, err = f.db.Update(context.Background(), func(tx *state.Tx) error {
			tx.Put(state.HostKey(h.Uuid), entering, state.AnyRev)
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	f.apply(t, driver.HostDown, time.Unix(1001, 0))
	f.apply(t, driver.HostUp, time.Unix(1002, 0))
	if got := f.host(t, h.Uuid); got.NodeState != acliv1.NodeState_EnteringMaintenanceMode || !got.MaintenanceRequested {
		t.Fatalf("recovered with v1 recorded there: %s requested=%v; want EnteringMaintenanceMode, requested", got.NodeState, got.MaintenanceRequested)
	}
}
