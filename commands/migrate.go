package commands

import (
	"context"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"google.golang.org/protobuf/proto"
)

// Live migration and host affinity.

func vmMigrateCommands() []*Command {
	return []*Command{
		{
			Name:    "vm.migrate",
			Summary: "Migrate VMs to a host or to the scheduler's choice",
			Description: "Without host= the scheduler picks the best other host; the VM always moves to a different host or the command " +
				"fails naming every candidate and why it was rejected. Live migration copies memory in rounds while the VM runs " +
				"(progress shows the round, the bytes left and the estimated pause); live=false powers the VM off, moves it and powers it on.",
			Args: []Arg{vmManyArg},
			Keys: []Key{
				{Name: "host", Type: TypeRef, Ref: KindHost, Help: "target host (default: the scheduler chooses)", Example: "127.20.0.22"},
				{Name: "live", Type: TypeBool, Default: "true", Help: "live migration (false: power off, move, power on)"},
				{Name: "bandwidth_mbps", Type: TypeInt, Min: 1, Max: 1000000, Help: "bandwidth cap of a live migration in Mb/s (default: the host link)", Example: "1000"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if inv.Set["bandwidth_mbps"] && !inv.Values["live"].Bool {
					return usageErrorf("vm.migrate: bandwidth_mbps= applies to live migration only; drop it or use live=true")
				}
				return nil
			},
			Examples: []string{"vm.migrate web01", "vm.migrate web01 host=h2", "vm.migrate web* live=false", "vm.migrate db01 host=127.20.0.23 bandwidth_mbps=2000"},
			Run:      runVMMigrate,
		},
		{
			Name:        "vm.affinity_set",
			Summary:     "Tie VMs to hosts (host affinity)",
			Description: "A must-rule: the VM runs only on the listed hosts, and maintenance of its host needs non_migratable_vm_action=acpi_shutdown when it has nowhere else to go. A running VM must already be on one of the hosts.",
			Args:        []Arg{vmManyArg},
			Keys: []Key{
				{Name: "host_list", Type: TypeList, Ref: KindHost, Required: true, Help: "hosts the VM may run on (names, UUIDs or hypervisor IPs)", Example: "h1,h2"},
			},
			Output:   OutputTask,
			Examples: []string{"vm.affinity_set db01 host_list=h1", "vm.affinity_set web* host_list=127.20.0.21,127.20.0.22"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.SetAffinity(ctx, &acliv1.SetAffinityRequest{Vm: t.ID, Hosts: r.List("host_list")})
				})
			},
		},
		{
			Name:     "vm.affinity_unset",
			Summary:  "Let VMs run on any host again",
			Args:     []Arg{vmManyArg},
			Output:   OutputTask,
			Examples: []string{"vm.affinity_unset db01"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.SetAffinity(ctx, &acliv1.SetAffinityRequest{Vm: t.ID})
				})
			},
		},
	}
}

func runVMMigrate(ctx context.Context, r *Req) error {
	chosen := "chosen by the scheduler"
	if r.Has("host") {
		chosen = "as asked"
	}
	r.Hooks = TaskHooks{
		Note: func(t *acliv1.Task, first bool) string {
			line := ""
			if first {
				line = migrationTarget(t, chosen)
			}
			if res := resultNote(t, first); res != "" {
				line = strings.TrimPrefix(line+"\n"+res, "\n")
			}
			return line
		},
	}
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.MigrateVmRequest{Vm: t.ID, Host: r.String("host"), Live: proto.Bool(r.Bool("live")), BandwidthMbps: r.Int("bandwidth_mbps")}
		return c.Vm.MigrateVm(ctx, req)
	})
}

// migrationTarget reads the move from a migration task's entities: the
// VM, its source host, then its target.
func migrationTarget(t *acliv1.Task, chosen string) string {
	ents := t.GetEntities()
	if len(ents) < 3 {
		return ""
	}
	return fmt.Sprintf("Migrating vm %s from %s to %s (%s).", ents[0].GetName(), ents[1].GetName(), ents[2].GetName(), chosen)
}
