package maintenance_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
)

func step(vm string, a scheduler.Action) scheduler.Step {
	return scheduler.Step{VM: scheduler.VMRef{UUID: vm, Name: vm}, Action: a}
}

// fakeHost is a host being drained: the VMs still on it, and what each
// migration attempt does.
type fakeHost struct {
	mu       sync.Mutex
	on       []string // VMs on the host, in plan order
	shutdown map[string]bool
	outcome  map[string][]maintenance.Result // per attempt; Moved when exhausted
	order    []string
	running  atomic.Int32
	peak     atomic.Int32
}

func (f *fakeHost) plan() *scheduler.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &scheduler.Plan{}
	for _, vm := range f.on {
		a := scheduler.ActionMigrate
		if f.shutdown[vm] {
			a = scheduler.ActionShutdown
		}
		p.Steps = append(p.Steps, step(vm, a))
	}
	return p
}

func (f *fakeHost) do(_ context.Context, s scheduler.Step) (maintenance.Result, string) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, s.VM.UUID)
	res := maintenance.Moved
	if q := f.outcome[s.VM.UUID]; len(q) > 0 {
		res, f.outcome[s.VM.UUID] = q[0], q[1:]
	}
	if res == maintenance.Moved {
		f.on = slices.DeleteFunc(f.on, func(v string) bool { return v == s.VM.UUID })
	}
	if res == maintenance.Failed {
		return res, s.VM.UUID + " cannot move"
	}
	return res, ""
}

func (f *fakeHost) drain(limit int) *maintenance.Drain {
	return &maintenance.Drain{
		Limit: limit,
		Replan: func(_ context.Context, keep func(*scheduler.Plan) bool) (*scheduler.Plan, error) {
			p := f.plan()
			if !keep(p) {
				return nil, nil
			}
			return p, nil
		},
		Migrate: f.do, Shutdown: f.do,
	}
}

func TestDrain(t *testing.T) {
	tests := []struct {
		name         string
		on           []string
		shutdown     []string
		outcome      map[string][]maintenance.Result
		limit        int
		wantLeft     []string
		wantMigrated int
		wantShutdown int
		wantFailed   string
	}{
		{name: "migrations then shutdowns", on: []string{"a", "b", "c", "agent"}, shutdown: []string{"agent"}, limit: 2,
			wantMigrated: 3, wantShutdown: 1},
		{name: "a target went away: planned again", on: []string{"a", "b"}, limit: 1,
			outcome:      map[string][]maintenance.Result{"a": {maintenance.Retarget, maintenance.Retarget}},
			wantMigrated: 2},
		{name: "a failure keeps the VMs to shut down running", on: []string{"a", "b", "agent"}, shutdown: []string{"agent"}, limit: 2,
			outcome:  map[string][]maintenance.Result{"b": {maintenance.Failed}},
			wantLeft: []string{"b", "agent"}, wantMigrated: 1, wantFailed: "b"},
		{name: "targets that keep going away are given up", on: []string{"a"}, limit: 1,
			outcome:  map[string][]maintenance.Result{"a": slices.Repeat([]maintenance.Result{maintenance.Retarget}, 20)},
			wantLeft: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeHost{on: slices.Clone(tt.on), shutdown: map[string]bool{}, outcome: tt.outcome}
			for _, vm := range tt.shutdown {
				f.shutdown[vm] = true
			}
			d := f.drain(tt.limit)
			if err := d.Run(context.Background(), f.plan()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.on, tt.wantLeft) {
				t.Errorf("left on the host %v, want %v", f.on, tt.wantLeft)
			}
			if m, s := d.Moved(); m != tt.wantMigrated || s != tt.wantShutdown {
				t.Errorf("migrated %d, shut down %d; want %d, %d", m, s, tt.wantMigrated, tt.wantShutdown)
			}
			if tt.wantFailed != "" && d.Failure(tt.wantFailed) == "" {
				t.Errorf("no failure recorded for %s", tt.wantFailed)
			}
			if p := f.peak.Load(); int(p) > tt.limit {
				t.Errorf("%d steps at once, limit %d", p, tt.limit)
			}
			for i, vm := range f.order {
				if f.shutdown[vm] && slices.ContainsFunc(f.order[i+1:], func(v string) bool { return !f.shutdown[v] }) {
					t.Errorf("%s shut down before the migrations ended: %v", vm, f.order)
				}
			}
			if got := d.Percent(); got < 1 || got > 99 {
				t.Errorf("percent %d", got)
			}
		})
	}
}

func TestDrainStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeHost{on: []string{"a", "b", "c"}, shutdown: map[string]bool{}}
	d := f.drain(1)
	d.Migrate = func(ctx context.Context, s scheduler.Step) (maintenance.Result, string) {
		cancel()
		return maintenance.Gone, ""
	}
	if err := d.Run(ctx, f.plan()); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
