package maintenance_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
)

// Agents power on first, migrations back run at most Limit at a time, the
// other VMs power on last; failures are kept and the rest still return.
func TestReturnOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	var running, peak atomic.Int32
	record := func(s scheduler.Step) {
		mu.Lock()
		order = append(order, s.VM.UUID)
		mu.Unlock()
	}
	r := &maintenance.Return{
		Limit: 2,
		Agent: func(vm string) bool { return strings.HasPrefix(vm, "agent") },
		PowerOn: func(_ context.Context, s scheduler.Step) (maintenance.Result, string) {
			record(s)
			if s.VM.UUID == "off2" {
				return maintenance.Failed, "off2 did not power on"
			}
			return maintenance.Moved, ""
		},
		MigrateBack: func(_ context.Context, s scheduler.Step) (maintenance.Result, string) {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			record(s)
			if s.VM.UUID == "m4" {
				return maintenance.Gone, ""
			}
			return maintenance.Moved, ""
		},
		Stay: func(_ context.Context, s scheduler.Step) string { record(s); return "" },
	}
	plan := &scheduler.Plan{Steps: []scheduler.Step{
		step("off1", scheduler.ActionRestart), step("m1", scheduler.ActionMigrate), step("agent1", scheduler.ActionRestart),
		step("m2", scheduler.ActionMigrate), step("stays", scheduler.ActionNone), step("m3", scheduler.ActionMigrate),
		step("off2", scheduler.ActionRestart), step("m4", scheduler.ActionMigrate),
	}}
	if err := r.Run(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	if order[0] != "stays" || order[1] != "agent1" || !slices.Equal(order[6:], []string{"off1", "off2"}) {
		t.Fatalf("order %v", order)
	}
	mig := slices.Clone(order[2:6])
	slices.Sort(mig)
	if !slices.Equal(mig, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("migrations %v", order[2:6])
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d migrations at once, limit 2", p)
	}
	back, on, failures := r.Tally()
	if back != 3 || on != 2 || len(failures) != 1 || failures[0] != "off2 did not power on" || r.Percent() != 99 {
		t.Fatalf("back %d on %d failures %q percent %d", back, on, failures, r.Percent())
	}
}

// A cancelled return starts nothing more.
func TestReturnCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	r := &maintenance.Return{
		Agent: func(string) bool { return false },
		PowerOn: func(context.Context, scheduler.Step) (maintenance.Result, string) {
			calls++
			return maintenance.Moved, ""
		},
		MigrateBack: func(context.Context, scheduler.Step) (maintenance.Result, string) {
			cancel()
			return maintenance.Gone, ""
		},
		Stay: func(context.Context, scheduler.Step) string { return "" },
	}
	plan := &scheduler.Plan{Steps: []scheduler.Step{step("m1", scheduler.ActionMigrate), step("off1", scheduler.ActionRestart)}}
	if err := r.Run(ctx, plan); err != context.Canceled || calls != 0 {
		t.Fatalf("err %v, %d power-ons after the cancel", err, calls)
	}
}
