package commands

import (
	"context"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Host maintenance: the preflight check, enter and exit, and the
// schedulability switch. The manager plans and does the work; these
// commands print its plan, its progress and its verdict.

var nonMigratableActions = []EnumValue{
	{Name: "kBlock", Aliases: []string{"block"}, Value: int32(acliv1.NonMigratableVmAction_kBlock)},
	{Name: "kAcpiShutdown", Aliases: []string{"acpi_shutdown", "shutdown"}, Value: int32(acliv1.NonMigratableVmAction_kAcpiShutdown)},
}

var (
	hostArg = Arg{Name: "host", Kind: KindHost, Help: "host name, UUID or hypervisor IP"}
	nmKey   = Key{Name: "non_migratable_vm_action", Type: TypeEnum, Enum: nonMigratableActions, Default: "block",
		Help: "VMs that cannot live-migrate (host affinity, passthrough): block the operation, or ACPI-shut them down (they power on again on exit)"}
)

func hostMaintCommands() []*Command {
	return []*Command{
		{
			Name:    "host.enter_maintenance_mode_check",
			Summary: "Check whether a host can enter maintenance mode and show the evacuation plan",
			Description: "Changes nothing. Prints \"Ok to enter maintenance mode.\" or every blocker with the argument that overrides it, " +
				"then what maintenance would do with each VM (migrate to which host, shut down, leave alone). Exits 0 when ok, 5 when blocked.",
			Args:     []Arg{hostArg},
			Keys:     []Key{nmKey, maintModeKey},
			Output:   OutputText,
			Examples: []string{"host.enter_maintenance_mode_check h1", "host.enter_maintenance_mode_check 127.20.0.21 non_migratable_vm_action=acpi_shutdown", "-o json host.enter_maintenance_mode_check h1"},
			Run:      runHostMaintCheck,
		},
		{
			Name:    "host.enter_maintenance_mode",
			Summary: "Evacuate a host and take it out of service",
			Description: "The host becomes unschedulable (EnteringMaintenanceMode); its VMs live-migrate by the plan the check shows; " +
				"agent VMs are shut down; VMs that cannot move block the operation (exit 5, the host stays EnteringMaintenanceMode) " +
				"or, with non_migratable_vm_action=acpi_shutdown, are shut down. Then the host is EnteredMaintenanceMode. " +
				"At most RF-1 hosts may be out at once. Entering a host already in maintenance succeeds and says so.",
			Args: []Arg{hostArg},
			Keys: []Key{
				nmKey,
				maintModeKey,
				{Name: "timeout", Type: TypeInt, Default: "0", Min: 0, Max: 7 * 24 * 3600, Help: "overall deadline in seconds, enforced by clusterd (0: none)", Example: "600"},
				{Name: "max_concurrent_migrations", Type: TypeInt, Min: 1, Max: 64, Help: "live migrations off the host at a time (default: clusterd's limit, 2)", Example: "1"},
			},
			Output:   OutputTask,
			Examples: []string{"host.enter_maintenance_mode h1", "host.enter_maintenance_mode 127.20.0.21 non_migratable_vm_action=acpi_shutdown", "host.enter_maintenance_mode h1 wait=false", "host.enter_maintenance_mode h1 mode=power_off"},
			Run:      runHostEnterMaint,
		},
		{
			Name:        "host.exit_maintenance_mode",
			Summary:     "Return a host to service and bring its VMs back",
			Description: "The host is AcropolisNormal and schedulable again; the VMs that left it live-migrate back and the VMs that were shut down for it power on again.",
			Args:        []Arg{hostArg},
			Output:      OutputTask,
			Examples:    []string{"host.exit_maintenance_mode h1"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Host.ExitMaintenanceMode(ctx, &acliv1.ExitMaintenanceModeRequest{Host: t.ID})
				})
			},
		},
		{
			Name:        "host.update",
			Summary:     "Make hosts schedulable or not (with a reason)",
			Description: "schedulable=false keeps new VMs (placement, migration, HA) off the host without moving the VMs it runs; the reason shows in host.list.",
			Args:        []Arg{{Name: "host", Kind: KindHost, Many: true, Help: "host name, UUID or hypervisor IP"}},
			Keys: []Key{
				{Name: "schedulable", Type: TypeBool, Required: true, Help: "whether new VMs may be placed on the host"},
				{Name: "reason", Type: TypeString, Help: "why the host is not schedulable (with schedulable=false)", Example: `"disk replacement"`},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if inv.Set["reason"] && inv.Values["schedulable"].Bool {
					return usageErrorf("host.update: reason= is recorded only with schedulable=false")
				}
				return nil
			},
			Examples: []string{`host.update h1 schedulable=false reason="disk replacement"`, "host.update h1 schedulable=true"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Host.UpdateHost(ctx, &acliv1.UpdateHostRequest{Host: t.ID, Schedulable: proto.Bool(r.Bool("schedulable")), Reason: r.String("reason")})
				})
			},
		},
	}
}

func runHostMaintCheck(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	chk, err := c.Host.EnterMaintenanceModeCheck(ctx, &acliv1.EnterMaintenanceModeRequest{
		Host: r.Arg(0), NonMigratableVmAction: acliv1.NonMigratableVmAction(r.Int("non_migratable_vm_action")),
		Mode: acliv1.MaintenanceMode(r.Int("mode")),
	})
	if err != nil {
		return err
	}
	name := chk.GetHost().GetName()
	if name == "" {
		name = r.Arg(0)
	}
	var verdict error
	if !chk.GetOk() {
		verdict = client.Errorf(client.ExitRefused, "host %s cannot enter maintenance mode: %s", name, plural(len(chk.GetBlockers()), "blocker"))
	}
	if !r.Printer.Human() {
		if err := r.Print(render.Doc{Data: chk, Table: planTable(chk.GetPlan()), Report: true}); err != nil {
			return err
		}
		return verdict
	}
	if err := r.Print(render.Doc{Text: checkText(chk, name)}); err != nil {
		return err
	}
	if len(chk.GetPlan()) > 0 {
		if err := r.Print(render.Doc{Table: planTable(chk.GetPlan())}); err != nil {
			return err
		}
	}
	return verdict
}

// checkText is the verdict, every blocker on its own line, and the title
// of the plan that follows.
func checkText(chk *acliv1.MaintenanceCheck, host string) string {
	var sb strings.Builder
	switch {
	case chk.GetAlreadyInMaintenance():
		fmt.Fprintf(&sb, "Ok to enter maintenance mode.\nHost %s is already in maintenance mode; entering again changes nothing.\n", host)
		return sb.String()
	case chk.GetOk():
		sb.WriteString("Ok to enter maintenance mode.\n")
	default:
		fmt.Fprintf(&sb, "Not ok to enter maintenance mode: %s.\n", plural(len(chk.GetBlockers()), "blocker"))
		for _, b := range chk.GetBlockers() {
			sb.WriteString(blockerText(b) + "\n")
		}
	}
	if len(chk.GetPlan()) == 0 {
		fmt.Fprintf(&sb, "\nEvacuation plan for %s: no VMs on the host.\n", host)
	} else {
		fmt.Fprintf(&sb, "\nEvacuation plan for %s:\n", host)
	}
	return sb.String()
}

func blockerText(b *acliv1.Blocker) string {
	if b.GetOverride() == "" {
		return b.GetReason()
	}
	return b.GetReason() + " (use " + b.GetOverride() + ")"
}

func planTable(steps []*acliv1.PlanStep) *render.TableData {
	t := &render.TableData{Headers: []string{"VM name", "Action", "Target host", "Reason"}}
	t.Rows = make([][]string, 0, len(steps))
	for _, s := range steps {
		// "vm db01 has host affinity ..." reads "has host affinity ..." in db01's row.
		why := strings.TrimPrefix(s.GetReason(), "vm "+s.GetVm().GetName()+" ")
		if len(s.GetNotes()) > 0 {
			why = strings.TrimPrefix(why+"; "+strings.Join(s.GetNotes(), "; "), "; ")
		}
		t.Rows = append(t.Rows, []string{s.GetVm().GetName(), s.GetAction(), s.GetTargetHost().GetName(), why})
	}
	return t
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func runHostEnterMaint(ctx context.Context, r *Req) error {
	r.Hooks = TaskHooks{Note: resultNote, Err: blockersErr}
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Host.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{
			Host:                    t.ID,
			NonMigratableVmAction:   acliv1.NonMigratableVmAction(r.Int("non_migratable_vm_action")),
			TimeoutSeconds:          r.Int32("timeout"),
			MaxConcurrentMigrations: r.Int32("max_concurrent_migrations"),
			Mode:                    acliv1.MaintenanceMode(r.Int("mode")),
		})
	})
}

// resultNote prints what a task reports it did (its last message) before
// its closing line: "host h1 (127.20.0.21) entered maintenance mode: 4
// VM(s) migrated, 1 shut down", or that there was nothing to do.
func resultNote(t *acliv1.Task, _ bool) string {
	if t.GetStatus() != acliv1.TaskStatus_kSucceeded || len(t.GetMessages()) == 0 {
		return ""
	}
	return t.GetMessages()[len(t.GetMessages())-1]
}

// blockersErr shows a refused or blocked evacuation as the task records
// it, typed: its headline (error_summary), then every blocker (the task's
// violations: a VM that cannot leave, the host down or busy, a migration
// target, the redundancy budget), one per line.
func blockersErr(t *acliv1.Task, err *client.Error) *client.Error {
	vs := t.GetViolations()
	if codes.Code(t.GetErrorCode()) != codes.FailedPrecondition || len(vs) == 0 {
		return err
	}
	head := t.GetErrorSummary()
	if head == "" {
		// The only blocker is the whole message.
		head, vs = vs[0].GetDescription(), vs[1:]
	}
	out := *err
	out.Msg = render.OpName(t.GetOperation()) + ": " + head
	for _, v := range vs {
		out.Details = append(out.Details, v.GetDescription())
	}
	return &out
}

// maintModeKey is acli's mode= of host.enter_maintenance_mode.
var maintModeKey = Key{Name: "mode", Type: TypeEnum, Default: "live", Enum: []EnumValue{
	{Name: "live", Aliases: []string{"kMaintenanceLive"}, Value: int32(acliv1.MaintenanceMode_kMaintenanceLive)},
	{Name: "cold", Aliases: []string{"kMaintenanceCold"}, Value: int32(acliv1.MaintenanceMode_kMaintenanceCold)},
	{Name: "power_off", Aliases: []string{"kMaintenancePowerOff"}, Value: int32(acliv1.MaintenanceMode_kMaintenancePowerOff)},
}, Help: "how VMs leave the host: live (migrate; VMs that cannot follow non_migratable_vm_action), cold (off here, on again on their target) or power_off (all shut down, on again here on exit)"}
