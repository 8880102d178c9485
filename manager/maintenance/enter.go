package maintenance

import (
	"context"
	"fmt"
	"strings"

	"github.com/acli-dev/acli/manager/scheduler"
)

// Enter is a host's evacuation for maintenance: the plan written to the
// task, the drain, the wait for VMs still arriving, then what is left.
type Enter struct {
	Drain
	Label string // "h1 (127.20.0.21)"
	// Log keeps a line in the task's messages.
	Log func(line string)
	// AwaitArrivals waits until no VM is on its way to the host (a
	// power-on or HA restart there that started before it closed).
	AwaitArrivals func(ctx context.Context) error
	// Plan plans the host's evacuation as it is now, reserving nothing.
	Plan func() (*scheduler.Plan, error)
}

// Run carries out plan. It returns what still keeps the host from
// EnteredMaintenanceMode (nothing: the caller records it), or ctx's error
// when ctx ends first.
func (e *Enter) Run(ctx context.Context, plan *scheduler.Plan) ([]Blocker, error) {
	for _, line := range PlanLines(plan) {
		e.Log(line)
	}
	if err := e.Drain.Run(ctx, plan); err != nil {
		return nil, err
	}
	if err := e.AwaitArrivals(ctx); err != nil {
		return nil, err
	}
	final, err := e.Plan()
	if err != nil {
		return nil, err
	}
	left := e.Remaining(final, e.Label)
	for _, b := range left {
		e.Log("blocked: " + b.String())
	}
	return left, nil
}

// PlanLines renders a plan for the task log.
func PlanLines(p *scheduler.Plan) []string {
	var out []string
	for _, s := range p.Steps {
		switch s.Action {
		case scheduler.ActionMigrate:
			line := fmt.Sprintf("plan: migrate vm %s to %s", s.VM, s.Target)
			if len(s.Notes) > 0 {
				line += " (" + strings.Join(s.Notes, "; ") + ")"
			}
			out = append(out, line)
		case scheduler.ActionShutdown:
			out = append(out, fmt.Sprintf("plan: shut down vm %s (%s)", s.VM, s.Reason))
		case scheduler.ActionBlocked:
			out = append(out, fmt.Sprintf("plan: vm %s cannot leave: %s", s.VM, s.Reason))
		}
	}
	return out
}
