package manager

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/state"
)

// ---- ClusterService ----

// clusterFeature serves the cluster service: the record from clusterInfo,
// the HA and ADS settings from manager/ha.
type clusterFeature struct {
	clusterInfo
	*ha.Settings
}

// clusterInfo is the cluster record as clients read it, and the
// management plane's status (which clusterd knows; the manager does not).
type clusterInfo struct {
	db     *state.DB
	driver string
	status func(ctx context.Context) (*acliv1.ClusterStatus, error)
}

func (s clusterInfo) GetCluster(ctx context.Context, _ *acliv1.GetClusterRequest) (c *acliv1.Cluster, _ error) {
	s.db.View(func(tx *state.Tx) {
		c = proto.Clone(tx.Cluster()).(*acliv1.Cluster)
		c.NumHosts, c.NumVms = int32(tx.NumHosts()), int32(tx.NumVms())
	})
	c.Version, c.Driver = Version, s.driver
	return c, nil
}

func (s clusterInfo) GetClusterStatus(ctx context.Context, _ *acliv1.GetClusterStatusRequest) (*acliv1.ClusterStatus, error) {
	if s.status == nil {
		return nil, status.Error(codes.Unimplemented, "this clusterd does not report its management plane")
	}
	return s.status(ctx)
}

// ---- HostService and SimService ----

// hostFeature serves the host service: records from manager/hostsync,
// maintenance and cordons from manager/maintenance, membership from
// manager/hostsync.
type hostFeature struct {
	*hostsync.Hosts
	*maintenance.Service
	*hostsync.Members
}

// simFeature serves the sim service: faults from manager/hostsync, the
// guests' dirty rate from manager/vm.
type simFeature struct {
	*hostsync.Faults
	dirtyRate
}

type dirtyRate interface {
	SetDirtyRate(context.Context, *acliv1.SimDirtyRateRequest) (*acliv1.SimDirtyRateResponse, error)
}
