package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Cluster is the cluster record and the management plane's status.
type Cluster interface {
	GetCluster(context.Context, *acliv1.GetClusterRequest) (*acliv1.Cluster, error)
	GetClusterStatus(context.Context, *acliv1.GetClusterStatusRequest) (*acliv1.ClusterStatus, error)
	GetHaConfig(context.Context, *acliv1.GetHaConfigRequest) (*acliv1.HaConfig, error)
	UpdateHaConfig(context.Context, *acliv1.UpdateHaConfigRequest) (*acliv1.Task, error)
	GetAdsConfig(context.Context, *acliv1.GetAdsConfigRequest) (*acliv1.AdsConfig, error)
	UpdateAdsConfig(context.Context, *acliv1.UpdateAdsConfigRequest) (*acliv1.Task, error)
}

type clusterServer struct {
	acliv1.UnsafeClusterServiceServer
	f Cluster
}

func registerCluster(s grpc.ServiceRegistrar, f Cluster) {
	acliv1.RegisterClusterServiceServer(s, clusterServer{f: f})
}

func (s clusterServer) GetCluster(ctx context.Context, req *acliv1.GetClusterRequest) (*acliv1.Cluster, error) {
	return reply(s.f.GetCluster(ctx, req))
}

func (s clusterServer) GetClusterStatus(ctx context.Context, req *acliv1.GetClusterStatusRequest) (*acliv1.ClusterStatus, error) {
	return reply(s.f.GetClusterStatus(ctx, req))
}

func (s clusterServer) GetHaConfig(ctx context.Context, req *acliv1.GetHaConfigRequest) (*acliv1.HaConfig, error) {
	return reply(s.f.GetHaConfig(ctx, req))
}

func (s clusterServer) UpdateHaConfig(ctx context.Context, req *acliv1.UpdateHaConfigRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateHaConfig(ctx, req))
}

func (s clusterServer) GetAdsConfig(ctx context.Context, req *acliv1.GetAdsConfigRequest) (*acliv1.AdsConfig, error) {
	return reply(s.f.GetAdsConfig(ctx, req))
}

func (s clusterServer) UpdateAdsConfig(ctx context.Context, req *acliv1.UpdateAdsConfigRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateAdsConfig(ctx, req))
}
