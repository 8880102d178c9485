// Package rulestest checks clusterd's rules from outside, through its gRPC
// API only, so that it holds whatever the manager's inside looks like: an
// invariant checker over the event stream and consistent reads, a soak that
// drives many concurrent clients with failures and manager restarts
// injected (Soak), and regression tests for the rule defects of issue 12.
// Rules the manager still breaks are listed in Known.
package rulestest

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Clients are the gRPC clients of one manager endpoint.
type Clients struct {
	Cluster acliv1.ClusterServiceClient
	Host    acliv1.HostServiceClient
	Vm      acliv1.VmServiceClient
	Vg      acliv1.VolumeGroupServiceClient
	Task    acliv1.TaskServiceClient
	Event   acliv1.EventServiceClient
	Sim     acliv1.SimServiceClient
	// Snapshot and Container serve the storage steps and checks (nil:
	// none).
	Snapshot  acliv1.SnapshotServiceClient
	Container acliv1.StorageContainerServiceClient
}

// NewClients returns the clients of conn.
func NewClients(conn grpc.ClientConnInterface) Clients {
	return Clients{
		Cluster: acliv1.NewClusterServiceClient(conn),
		Host:    acliv1.NewHostServiceClient(conn),
		Vm:      acliv1.NewVmServiceClient(conn),
		Vg:      acliv1.NewVolumeGroupServiceClient(conn),
		Task:    acliv1.NewTaskServiceClient(conn),
		Event:   acliv1.NewEventServiceClient(conn),
		Sim:     acliv1.NewSimServiceClient(conn),

		Snapshot:  acliv1.NewSnapshotServiceClient(conn),
		Container: acliv1.NewStorageContainerServiceClient(conn),
	}
}

// Finished reports whether a task status is terminal.
func Finished(s acliv1.TaskStatus) bool {
	return s == acliv1.TaskStatus_kSucceeded || s == acliv1.TaskStatus_kFailed || s == acliv1.TaskStatus_kAborted
}

// Wait follows a task until it ends and returns its last state. It polls
// GetTask rather than watching, so that it survives a manager restart: a
// task is persisted, so it must still be found afterwards.
func (c Clients) Wait(ctx context.Context, task *acliv1.Task) (*acliv1.Task, error) {
	if task == nil {
		return nil, fmt.Errorf("no task")
	}
	last := task
	for !Finished(last.Status) {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("task %s (%s) still %s: %w", task.Uuid, task.Operation, last.Status, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		t, err := c.Task.GetTask(ctx, &acliv1.GetTaskRequest{Uuid: task.Uuid})
		if err != nil {
			if ctx.Err() != nil {
				return last, err
			}
			continue // the manager may be restarting; the deadline bounds this
		}
		last = t
	}
	return last, nil
}

// Run calls a mutation and waits for its task; the error is the RPC's or,
// when the task did not succeed, one naming its status and error.
func (c Clients) Run(ctx context.Context, task *acliv1.Task, err error) (*acliv1.Task, error) {
	if err != nil {
		return nil, err
	}
	done, err := c.Wait(ctx, task)
	if err != nil {
		return done, err
	}
	if done.Status != acliv1.TaskStatus_kSucceeded {
		return done, fmt.Errorf("task %s %s: %s", done.Operation, done.Status, done.Error)
	}
	return done, nil
}

// Hosts lists the hosts by name.
func (c Clients) Hosts(ctx context.Context) (map[string]*acliv1.Host, error) {
	r, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil, err
	}
	out := map[string]*acliv1.Host{}
	for _, h := range r.Hosts {
		out[h.Name] = h
	}
	return out, nil
}
