package commands

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
)

// Controller VM maintenance: storage maintenance of a host's CVM, apart
// from host maintenance but counted against the same redundancy budget.

func cvmCommands() []*Command {
	cvm := func(name, summary, desc string, rpc func(context.Context, *client.Client, string) (*acliv1.Task, error)) *Command {
		return &Command{
			Name: name, Summary: summary, Description: desc,
			Args:     []Arg{{Name: "host", Kind: KindHost, Help: "the CVM's host: name, UUID or hypervisor IP"}},
			Output:   OutputTask,
			Examples: []string{name + " h1", name + " 127.20.0.21"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return rpc(ctx, c, t.ID)
				})
			},
		}
	}
	return []*Command{
		cvm("cvm.enter_maintenance_mode", "Take a host's CVM out of storage service",
			"The CVM stops serving storage and iSCSI (its sessions move to other CVMs); the host's VMs keep running. With RF2 at most one host or CVM may be out at a time.",
			func(ctx context.Context, c *client.Client, host string) (*acliv1.Task, error) {
				return c.Host.EnterCvmMaintenanceMode(ctx, &acliv1.CvmMaintenanceRequest{Host: host})
			}),
		cvm("cvm.exit_maintenance_mode", "Return a host's CVM to storage service", "",
			func(ctx context.Context, c *client.Client, host string) (*acliv1.Task, error) {
				return c.Host.ExitCvmMaintenanceMode(ctx, &acliv1.CvmMaintenanceRequest{Host: host})
			}),
	}
}
