package maintenance

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/acli-dev/acli/manager/scheduler"
)

// Return brings a host's VMs back when it exits maintenance: agent VMs
// power on first (they serve the host's other VMs), then the VMs running
// elsewhere live-migrate back (at most Limit at a time), then the other
// VMs that were shut down power on. A VM that cannot come back (an
// ActionNone step) stays where it is and forgets the host. The caller
// supplies each step; Return orders them and keeps the tally.
type Return struct {
	// Limit bounds the migrations running at once (at least 1).
	Limit int
	// Agent reports whether a VM is an agent VM.
	Agent func(vm string) bool
	// PowerOn and MigrateBack carry out one step: Moved when the VM came
	// back, Gone when there was nothing to do, Failed with why. Stay
	// records that a VM stays where it is, or says why it could not.
	PowerOn     func(ctx context.Context, s scheduler.Step) (Result, string)
	MigrateBack func(ctx context.Context, s scheduler.Step) (Result, string)
	Stay        func(ctx context.Context, s scheduler.Step) string

	total, done atomic.Int32
	mu          sync.Mutex
	back, on    int
	failures    []string
}

// Run carries out plan; it returns ctx's error when ctx ends first.
func (r *Return) Run(ctx context.Context, plan *scheduler.Plan) error {
	r.total.Store(int32(len(plan.Steps)))
	var agents, migrations, rest []scheduler.Step
	for _, s := range plan.Steps {
		switch s.Action {
		case scheduler.ActionMigrate:
			migrations = append(migrations, s)
		case scheduler.ActionRestart:
			if r.Agent(s.VM.UUID) {
				agents = append(agents, s)
			} else {
				rest = append(rest, s)
			}
		case scheduler.ActionNone:
			if why := r.Stay(ctx, s); why != "" {
				r.mu.Lock()
				r.failures = append(r.failures, why)
				r.mu.Unlock()
			}
			r.done.Add(1)
		}
	}
	for _, s := range agents {
		r.step(ctx, s, r.PowerOn)
	}
	parallel(ctx, r.Limit, migrations, func(s scheduler.Step) { r.step(ctx, s, r.MigrateBack) })
	for _, s := range rest {
		if ctx.Err() != nil {
			break
		}
		r.step(ctx, s, r.PowerOn)
	}
	return ctx.Err()
}

func (r *Return) step(ctx context.Context, s scheduler.Step, do func(context.Context, scheduler.Step) (Result, string)) {
	defer r.done.Add(1)
	res, why := do(ctx, s)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case res == Failed:
		r.failures = append(r.failures, why)
	case res == Moved && s.Action == scheduler.ActionMigrate:
		r.back++
	case res == Moved:
		r.on++
	}
}

// Percent is the progress so far, 1 to 99 (the end is the caller's).
func (r *Return) Percent() int32 {
	return min(99, 1+98*r.done.Load()/max(r.total.Load(), 1))
}

// Tally is what came back: migrated back, powered on, and why the others
// did not.
func (r *Return) Tally() (back, on int, failures []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.back, r.on, append([]string(nil), r.failures...)
}
