// Package maintenance empties a host for maintenance, the way kubectl's
// drain helper empties a node: the caller supplies what a step does
// (migrate a VM, shut one down) and how to plan again, and Drain orders the
// passes, bounds the migrations running at once, and keeps the tally (what
// moved, what failed and why, the progress).
package maintenance

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/acli-dev/acli/manager/scheduler"
)

// Result is how one step ended.
type Result int

const (
	// Moved: the VM left the host (migrated or shut down).
	Moved Result = iota
	// Gone: the VM was no longer on the host; nothing to do.
	Gone
	// Retarget: its target stopped taking VMs before it moved; the next
	// pass plans it again.
	Retarget
	// Failed: it cannot leave; the reason is kept for the final report.
	Failed
)

// MaxReplans bounds the extra migration passes of a drain whose targets
// keep going away.
const MaxReplans = 5

// Drain is one host's evacuation.
type Drain struct {
	// Limit bounds the migrations running at once (at least 1).
	Limit int
	// Replan plans again what is still on the host, once the VMs arriving
	// there have landed. keep filters the plan and says whether to carry
	// it out; the caller reserves a kept plan's targets in the same
	// critical section as the planning. A nil plan ends the passes.
	Replan func(ctx context.Context, keep func(*scheduler.Plan) bool) (*scheduler.Plan, error)
	// Migrate and Shutdown carry out one step and say how it ended (why,
	// for Failed).
	Migrate  func(ctx context.Context, s scheduler.Step) (Result, string)
	Shutdown func(ctx context.Context, s scheduler.Step) (Result, string)

	total, done atomic.Int32
	replan      atomic.Int32
	mu          sync.Mutex
	migrated    int
	shutdown    int
	failed      map[string]string // VM UUID -> why it did not leave
}

// Run carries out plan: migrations first (at most Limit at a time); a
// second pass plans whatever is still on the host (e.g. a VM powered on
// there just before it became unschedulable), again while targets went
// away (MaxReplans). Only when every other VM has left are the VMs to shut
// down (agent VMs, acpi_shutdown) shut down, so a blocked drain does not
// stop them for nothing. It returns ctx's error when ctx ends first.
func (d *Drain) Run(ctx context.Context, plan *scheduler.Plan) error {
	replans := 0
	for pass := 0; pass < 3; pass++ {
		if pass > 0 {
			final := pass == 2
			var err error
			plan, err = d.Replan(ctx, func(p *scheduler.Plan) bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				p.Steps = slices.DeleteFunc(p.Steps, func(s scheduler.Step) bool {
					_, failed := d.failed[s.VM.UUID]
					return failed
				})
				return !final || len(p.Blockers) == 0 && len(d.failed) == 0
			})
			if err != nil {
				return err
			}
			if plan == nil {
				break
			}
		}
		want := scheduler.ActionMigrate
		if pass == 2 {
			want = scheduler.ActionShutdown
		}
		var steps []scheduler.Step
		for _, s := range plan.Steps {
			if s.Action == want {
				steps = append(steps, s)
			}
		}
		d.execute(ctx, steps)
		if err := ctx.Err(); err != nil {
			return err
		}
		if pass == 1 && d.replan.Swap(0) > 0 && replans < MaxReplans {
			replans++
			pass-- // another migration pass for the VMs whose target went away
		}
	}
	return nil
}

// execute runs migrations in parallel (Limit) and shutdowns in order.
func (d *Drain) execute(ctx context.Context, steps []scheduler.Step) {
	d.total.Add(int32(len(steps)))
	var migrations []scheduler.Step
	for _, s := range steps {
		if s.Action == scheduler.ActionMigrate {
			migrations = append(migrations, s)
		}
	}
	parallel(ctx, d.Limit, migrations, func(s scheduler.Step) { d.step(ctx, s, d.Migrate) })
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if s.Action == scheduler.ActionShutdown {
			d.step(ctx, s, d.Shutdown)
		}
	}
}

// parallel runs do on each step, at most limit at a time, and returns once
// all have ended; the steps not yet started when ctx ends are skipped.
func parallel(ctx context.Context, limit int, steps []scheduler.Step, do func(scheduler.Step)) {
	work := make(chan scheduler.Step)
	var wg sync.WaitGroup
	for range min(max(limit, 1), len(steps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				do(s)
			}
		}()
	}
	for _, s := range steps {
		select {
		case work <- s:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

func (d *Drain) step(ctx context.Context, s scheduler.Step, do func(context.Context, scheduler.Step) (Result, string)) {
	defer d.done.Add(1)
	res, why := do(ctx, s)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch res {
	case Moved:
		if s.Action == scheduler.ActionMigrate {
			d.migrated++
		} else {
			d.shutdown++
		}
	case Retarget:
		d.replan.Add(1)
	case Failed:
		if d.failed == nil {
			d.failed = map[string]string{}
		}
		d.failed[s.VM.UUID] = why
	}
}

// Percent is the progress so far, 1 to 99 (the end is the caller's).
func (d *Drain) Percent() int32 {
	total := d.total.Load()
	if total == 0 {
		return 99
	}
	return min(99, 1+98*d.done.Load()/total)
}

// Moved counts the VMs migrated and shut down so far.
func (d *Drain) Moved() (migrated, shutdown int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.migrated, d.shutdown
}

// Failure is why a VM did not leave ("" if it did not fail).
func (d *Drain) Failure(vm string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed[vm]
}
