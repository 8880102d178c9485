package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Containers are the storage containers and their use.
type Containers interface {
	ListContainers(context.Context, *acliv1.ListContainersRequest) (*acliv1.ListContainersResponse, error)
	GetContainer(context.Context, *acliv1.GetContainerRequest) (*acliv1.StorageContainer, error)
}

type containerServer struct {
	acliv1.UnsafeStorageContainerServiceServer
	f Containers
}

func registerContainers(s grpc.ServiceRegistrar, f Containers) {
	acliv1.RegisterStorageContainerServiceServer(s, containerServer{f: f})
}

func (s containerServer) ListContainers(ctx context.Context, req *acliv1.ListContainersRequest) (*acliv1.ListContainersResponse, error) {
	return reply(s.f.ListContainers(ctx, req))
}

func (s containerServer) GetContainer(ctx context.Context, req *acliv1.GetContainerRequest) (*acliv1.StorageContainer, error) {
	return reply(s.f.GetContainer(ctx, req))
}
