package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fault injection into a simulated cluster. Only clusterd's sim driver
// serves it; against any other driver every sim.* command fails with exit
// 5 (refused: the cluster is not simulated) and changes nothing.

type simRPC func(acliv1.SimServiceClient, context.Context, *acliv1.SimHostRequest, ...grpc.CallOption) (*acliv1.SimResponse, error)

func simCommands() []*Command {
	fault := func(name, summary, desc string, rpc simRPC, keys ...Key) *Command {
		return &Command{
			Name: name, Summary: summary,
			Description: desc + " Works only when clusterd runs the sim driver (otherwise exit 5).",
			Args:        []Arg{{Name: "host", Kind: KindHost, Help: "host name, UUID or hypervisor IP"}},
			Keys:        keys,
			Output:      OutputText,
			Examples:    []string{name + " h1"},
			Run:         func(ctx context.Context, r *Req) error { return runSimFault(ctx, r, rpc) },
		}
	}
	return []*Command{
		fault("sim.fail_host", "Fail a simulated host: heartbeats stop and its VMs are lost",
			"The host goes kNodeDown at once and HA restarts its VMs on the other hosts by HA priority; with wait=true (the default) the command follows that restart to its end.",
			acliv1.SimServiceClient.FailHost,
			Key{Name: "wait", Type: TypeBool, Default: "true", Help: "wait for the HA restart of the host's VMs"}),
		fault("sim.recover_host", "Bring a failed simulated host back (empty; it is usable again)",
			"The host returns AcropolisNormal with its CVM up; the VMs HA restarted elsewhere stay where they are.",
			acliv1.SimServiceClient.RecoverHost),
		fault("sim.fail_cvm", "Fail the CVM of a simulated host",
			"The CVM stops serving storage and iSCSI; its sessions move to healthy CVMs. The host's VMs keep running.",
			acliv1.SimServiceClient.FailCvm),
		fault("sim.recover_cvm", "Bring the failed CVM of a simulated host back",
			"The CVM serves again and the iSCSI sessions that prefer it return.",
			acliv1.SimServiceClient.RecoverCvm),
		simDirtyRateCommand(),
	}
}

func runSimFault(ctx context.Context, r *Req, rpc simRPC) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	failHost := r.Cmd.Name == "sim.fail_host"
	var before *acliv1.Host
	var berr error
	var seen map[string]bool
	if failHost {
		// Whether it was already down, to know if an HA restart follows,
		// and the HA tasks it already had, to find the new one.
		before, berr = c.Host.GetHost(ctx, &acliv1.GetHostRequest{Host: r.Arg(0)})
		if berr == nil {
			seen, berr = haTasks(ctx, c, before.GetUuid())
		}
	}
	resp, err := rpc(c.Sim, ctx, &acliv1.SimHostRequest{Host: r.Arg(0)})
	if err != nil {
		return simErr(r.Cmd.Name, err) // a driver without faults says so before any lookup
	}
	if berr != nil {
		return berr
	}
	wasDown := before.GetNodeState() == acliv1.NodeState_kNodeDown
	h := resp.GetHost()
	data := map[string]any{"host": h}
	line := fmt.Sprintf("Host %s (%s): node state %s, CVM state %s.", h.GetName(), h.GetHypervisorIp(), h.GetNodeState(), h.GetCvmState())
	if failHost && wasDown {
		line += " It was already down."
	}
	if r.Printer.Human() {
		if err := r.Print(render.Doc{Text: line}); err != nil {
			return err
		}
	}
	var herr error
	if failHost && !wasDown && r.Bool("wait") {
		var ha *acliv1.Task
		if ha, err = newHaTask(ctx, c, h.GetUuid(), seen); err != nil {
			return err
		}
		if ha != nil {
			r.Hooks = TaskHooks{Note: resultNote}
			var done []*acliv1.Task
			done, herr = r.follow(ctx, c, []Target{{ID: ha.GetUuid(), Name: h.GetName()}}, []*acliv1.Task{ha}, make([]error, 1))
			if len(done) == 1 {
				data["ha_task"] = done[0]
			}
		}
	}
	if !r.Printer.Human() {
		if err := r.Print(render.Doc{Data: data, Text: line}); err != nil {
			return err
		}
	}
	return herr
}

// haTask finds the HA restart the host's failure started: clusterd
// launches it before the fault call returns, so it is the newest one.
func haTasks(ctx context.Context, c *client.Client, host string) (map[string]bool, error) {
	resp, err := c.Task.ListTasks(ctx, &acliv1.ListTasksRequest{Entity: host, IncludeCompleted: true, Limit: 20})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range resp.GetTasks() {
		if t.GetOperation() == acliv1.TaskOperation_kHaFailover {
			out[t.GetUuid()] = true
		}
	}
	return out, nil
}

// newHaTask waits for the HA task of a host just failed: clusterd starts
// it right after marking the host down, and none comes while failover is
// off. It gives up after haTaskWait.
func newHaTask(ctx context.Context, c *client.Client, host string, seen map[string]bool) (*acliv1.Task, error) {
	deadline := time.Now().Add(haTaskWait)
	for {
		resp, err := c.Task.ListTasks(ctx, &acliv1.ListTasksRequest{Entity: host, IncludeCompleted: true, Limit: 20})
		if err != nil {
			return nil, err
		}
		for _, t := range resp.GetTasks() {
			if t.GetOperation() == acliv1.TaskOperation_kHaFailover && !seen[t.GetUuid()] {
				return t, nil
			}
		}
		if cfg, err := c.Cluster.GetHaConfig(ctx, &acliv1.GetHaConfigRequest{}); err == nil && !cfg.GetFailoverEnabled() {
			return nil, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// haTaskWait bounds the wait for a failed host's HA task to appear.
const haTaskWait = 10 * time.Second

// simErr says plainly that the cluster is not simulated.
func simErr(cmd string, err error) error {
	if status.Code(err) != codes.Unimplemented {
		return err
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "sim driver") {
		msg = "fault injection needs clusterd's sim driver, and this clusterd does not serve it (" + msg + ")"
	}
	return client.Errorf(client.ExitRefused, "%s: %s", cmd, msg)
}
