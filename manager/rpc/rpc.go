// Package rpc holds clusterd's gRPC adapters, one per service (the etcd
// v3rpc shape): each decodes and checks a request on its own, calls a
// feature through a narrow interface and maps the feature's error to a
// status. Adapters keep no state and take no locks; the rules live in the
// features and in manager/state, where commits are checked.
//
// Each adapter embeds its service's Unsafe interface rather than the
// Unimplemented struct, so an RPC added to a .proto file fails to compile
// here until its adapter is written.
package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/store"
)

// Features are what the adapters call, one interface per service.
type Features struct {
	Cluster      Cluster
	Hosts        Hosts
	Tasks        Tasks
	Events       Events
	Sim          Sim
	Vms          Vms
	Nics         Nics
	VmGroups     VmGroups
	Networks     Networks
	VolumeGroups VolumeGroups
	Images       Images
	Snapshots    Snapshots
	Containers   Containers
}

// Register serves every service of the acli API on s.
func Register(s grpc.ServiceRegistrar, f Features) {
	registerCluster(s, f.Cluster)
	registerHosts(s, f.Hosts)
	registerTasks(s, f.Tasks)
	registerEvents(s, f.Events)
	registerSim(s, f.Sim)
	registerVms(s, f.Vms, f.Nics, f.VmGroups)
	registerNetworks(s, f.Networks)
	registerVolumeGroups(s, f.VolumeGroups)
	registerImages(s, f.Images)
	registerSnapshots(s, f.Snapshots)
	registerContainers(s, f.Containers)
}

// Status maps a feature's error to the status a client sees: a status
// error passes unchanged, store and context failures get their own codes,
// anything else is Internal.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case store.IsConflict(err):
		return status.Errorf(codes.Aborted, "the entity changed concurrently; retry (%v)", err)
	case errors.Is(err, store.ErrClosed):
		return status.Error(codes.Unavailable, "clusterd is shutting down")
	case errors.Is(err, store.ErrNotLeader):
		return status.Errorf(codes.Unavailable, "the change was not recorded: %v", err)
	case errors.Is(err, store.ErrUnavailable):
		return status.Errorf(codes.Unavailable, "the store did not confirm the change (it may or may not be recorded): %v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return apierr.Internal("clusterd could not record the change", err)
}

// reply passes a feature's answer on, its error mapped by Status.
func reply[T any](v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, Status(err)
	}
	return v, nil
}
