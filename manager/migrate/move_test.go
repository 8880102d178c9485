package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

var errRefused = errors.New("refused by the rules")

// fake is the cluster, the task and the driver of one move; it logs each
// action in order.
type fake struct {
	driver.Driver
	mu       sync.Mutex
	log      []string
	rounds   []*acliv1.MigrationProgress // what Migrate reports
	migrate  func(ctx context.Context, src, dst string) error
	target   error // Start's and Arrive's answer
	bind     error // WithDevicesOn's answer
	refuse   map[string]bool
	rev      int64
	progress []string
	events   []string
}

func (f *fake) logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fake) StartLive(_ context.Context, src, dst string) (func(), error) {
	f.logf("start %s %s", src, dst)
	return f.started()
}
func (f *fake) Arrive(dst string) (func(), error) {
	f.logf("arrive %s", dst)
	return f.started()
}
func (f *fake) started() (func(), error) {
	if f.target != nil {
		return nil, f.target
	}
	return func() { f.logf("ended") }, nil
}
func (f *fake) Record(_ context.Context, next *acliv1.Vm, rev int64) (int64, error) {
	where := next.HostUuid
	if where == "" {
		where = "off"
	}
	if rev != f.rev {
		return 0, fmt.Errorf("rev %d, want %d", rev, f.rev)
	}
	if f.refuse[where] {
		f.logf("record %s refused", where)
		return 0, errRefused
	}
	f.rev++
	f.logf("record %s", where)
	return f.rev, nil
}
func (f *fake) WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error) {
	f.logf("bind %s", host)
	return vm, f.bind
}
func (f *fake) Refused(err error) bool { return errors.Is(err, errRefused) }
func (f *fake) RecordObserved(_ context.Context, vm *acliv1.Vm, _ int64) error {
	f.logf("observed %s", vm.HostUuid)
	return nil
}
func (f *fake) Progress(percent int32, line string, p *acliv1.MigrationProgress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress = append(f.progress, fmt.Sprintf("%d %s", percent, line))
}
func (f *fake) Event(severity, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, severity+": "+fmt.Sprintf(format, args...))
}
func (f *fake) PastReturn() { f.logf("past return") }

func (f *fake) Migrate(ctx context.Context, _ *acliv1.Vm, src, dst *acliv1.Host, _ driver.MigrateOptions, progress func(*acliv1.MigrationProgress)) error {
	f.logf("migrate %s %s", src.Uuid, dst.Uuid)
	if f.migrate != nil {
		if err := f.migrate(ctx, src.Uuid, dst.Uuid); err != nil {
			return err
		}
	}
	for _, p := range f.rounds {
		progress(p)
	}
	return nil
}
func (f *fake) PowerOn(_ context.Context, h *acliv1.Host, _ *acliv1.Vm) error {
	f.logf("power-on %s", h.Uuid)
	return nil
}
func (f *fake) PowerOff(_ context.Context, h *acliv1.Host, _ *acliv1.Vm) error {
	f.logf("power-off %s", h.Uuid)
	return nil
}

func (f *fake) trace() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.log, "\n")
}

func want(t *testing.T, f *fake, lines ...string) {
	t.Helper()
	if got := f.trace(); got != strings.Join(lines, "\n") {
		t.Fatalf("actions:\n%s\nwant:\n%s", got, strings.Join(lines, "\n"))
	}
}

func aMove() Move {
	return Move{VM: &acliv1.Vm{Uuid: "v", Name: "v", HostUuid: "h1", PowerState: acliv1.PowerState_kOn},
		Rev: 0, Src: &acliv1.Host{Uuid: "h1", Name: "h1", HypervisorIp: "127.42.0.1"},
		Dst: &acliv1.Host{Uuid: "h2", Name: "h2", HypervisorIp: "127.42.0.2"}}
}

func TestLiveRecordsAtSwitchOver(t *testing.T) {
	f := &fake{rounds: []*acliv1.MigrationProgress{
		{Round: 1, TransferredBytes: 100, RemainingBytes: 300, DirtyRateBytesPerSec: 50, BandwidthBytesPerSec: 100},
		{Round: 2, TransferredBytes: 350, RemainingBytes: 50, EstimatedDowntimeMs: 12},
	}}
	res, err := Live(context.Background(), f, f, f, aMove())
	if err != nil {
		t.Fatal(err)
	}
	want(t, f, "start h1 h2", "migrate h1 h2", "past return", "record h2", "ended")
	if res.Rounds != 2 || res.DowntimeMs != 12 {
		t.Fatalf("result %v", res)
	}
	if len(f.progress) != 3 || f.progress[1] != "25 migrating vm v to h2 (127.42.0.2): round 1, 300 B remaining, est. downtime 0 ms" ||
		!strings.HasPrefix(f.progress[2], "87 ") {
		t.Fatalf("progress %q", f.progress)
	}
}

// A guest dirtying memory as fast as the stream sends it: one warning
// event, and every later progress line carries it.
func TestLiveWarnsOnceWhenNotConverging(t *testing.T) {
	f := &fake{rounds: []*acliv1.MigrationProgress{
		{Round: 1, RemainingBytes: 300, DirtyRateBytesPerSec: 200, BandwidthBytesPerSec: 100},
		{Round: 2, RemainingBytes: 300, DirtyRateBytesPerSec: 200, BandwidthBytesPerSec: 100},
	}}
	if _, err := Live(context.Background(), f, f, f, aMove()); err != nil {
		t.Fatal(err)
	}
	warnings := 0
	for _, e := range f.events {
		if strings.HasPrefix(e, "warning: migration of vm v to h2 (127.42.0.2) is not converging") {
			warnings++
		}
	}
	if warnings != 1 || !strings.Contains(f.progress[2], "not converging") {
		t.Fatalf("events %q progress %q", f.events, f.progress)
	}
}

// A target that no longer takes VMs when the move starts: nothing moves.
func TestLiveTargetClosedBeforeStart(t *testing.T) {
	f := &fake{target: errors.New("target h2 can no longer take it: unschedulable")}
	if _, err := Live(context.Background(), f, f, f, aMove()); err == nil || !strings.Contains(err.Error(), "unschedulable") {
		t.Fatalf("err %v", err)
	}
	want(t, f, "start h1 h2")
}

// Cancelled before the switch-over: the VM stays on its source, nothing is
// recorded and the move was never past return.
func TestLiveCancelledBeforeSwitchOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fake{migrate: func(ctx context.Context, _, _ string) error { cancel(); <-ctx.Done(); return ctx.Err() }}
	if _, err := Live(ctx, f, f, f, aMove()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	want(t, f, "start h1 h2", "migrate h1 h2", "ended")
	if len(f.events) != 2 || !strings.HasPrefix(f.events[1], "error: migration of vm v from h1 (127.42.0.1) to h2 (127.42.0.2) failed") {
		t.Fatalf("events %q", f.events)
	}
}

// The target closed while the VM moved: the commit is refused and the VM
// goes back to its source; when that fails too, it is recorded where it
// runs.
func TestLiveRefusedAtCommitGoesBack(t *testing.T) {
	f := &fake{refuse: map[string]bool{"h2": true}}
	_, err := Live(context.Background(), f, f, f, aMove())
	if err == nil || !strings.Contains(err.Error(), "vm v moved back to h1 (127.42.0.1)") {
		t.Fatalf("err %v", err)
	}
	want(t, f, "start h1 h2", "migrate h1 h2", "past return", "record h2 refused", "migrate h2 h1", "ended")

	f = &fake{refuse: map[string]bool{"h2": true}}
	f.migrate = func(_ context.Context, src, _ string) error {
		if src == "h2" {
			return errors.New("connection lost")
		}
		return nil
	}
	_, err = Live(context.Background(), f, f, f, aMove())
	if err == nil || !strings.Contains(err.Error(), "moving it back failed: connection lost") {
		t.Fatalf("err %v", err)
	}
	want(t, f, "start h1 h2", "migrate h1 h2", "past return", "record h2 refused", "migrate h2 h1", "observed h2", "ended")
}

func TestOffline(t *testing.T) {
	f := &fake{}
	if err := Offline(context.Background(), f, f, f, aMove()); err != nil {
		t.Fatal(err)
	}
	want(t, f, "arrive h2", "bind h2", "power-off h1", "record off", "power-on h2", "record h2", "ended")

	// No free device of the VM's on the target: refused before it stops.
	f = &fake{bind: errRefused}
	if err := Offline(context.Background(), f, f, f, aMove()); !errors.Is(err, errRefused) {
		t.Fatalf("err %v", err)
	}
	want(t, f, "arrive h2", "bind h2", "ended")

	// Refused on the target: powered off there again, recorded off.
	f = &fake{refuse: map[string]bool{"h2": true}}
	if err := Offline(context.Background(), f, f, f, aMove()); !errors.Is(err, errRefused) {
		t.Fatalf("err %v", err)
	}
	want(t, f, "arrive h2", "bind h2", "power-off h1", "record off", "power-on h2", "record h2 refused", "power-off h2", "ended")

	// A target that no longer takes VMs when the move starts: the VM is
	// not stopped.
	f = &fake{target: &TargetGoneError{Host: "h2", Why: "host is not schedulable"}}
	if err := Offline(context.Background(), f, f, f, aMove()); !TargetGone(err) {
		t.Fatalf("err %v", err)
	}
	want(t, f, "arrive h2")
}
