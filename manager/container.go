package manager

import (
	"cmp"
	"context"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// Storage containers. The cluster has one container, default-container,
// sized by the driver. Every vDisk and image is an independent volume
// (sparse copies, manager/storage/volume).
const defaultContainer = state.DefaultContainer

// storageDriver is the driver's storage, or nil when it keeps none.
func (m *Manager) storageDriver() driver.Storage {
	s, _ := m.drv.(driver.Storage)
	return s
}

// containerLocked checks a container name.
func (m *Manager) containerLocked(name string) (string, error) {
	name = cmp.Or(name, defaultContainer)
	if name != defaultContainer {
		return "", apierr.NotFound("container", name, []string{defaultContainer})
	}
	return name, nil
}

// checkCapacityLocked refuses early, with what the request names, adding
// bytes that do not fit the container as committed; the capacity rule
// (state.RuleCapacity) refuses the commit of whatever still does not fit.
func (m *Manager) checkCapacityLocked(container string, add int64, what string) error {
	return storage.CheckCapacity(m.db, container, add, what)
}

func (m *Manager) containerCapacity(container string) int64 {
	if s := m.storageDriver(); s != nil {
		if c, err := s.ContainerCapacity(container); err == nil {
			return c
		}
	}
	return 1 << 50
}

// ---- StorageContainerService ----

// containerService is the storage container feature behind manager/rpc's adapter.
type containerService struct {
	m *Manager
}

func (s containerService) container(name string) *acliv1.StorageContainer {
	m := s.m
	use := m.db.ContainerUse(name)
	return &acliv1.StorageContainer{
		Uuid: uuid.NewSHA1(uuid.NameSpaceOID, []byte(m.clusterRecord().Uuid+"/"+name)).String(), Name: name,
		CapacityBytes: m.containerCapacity(name), UsedBytes: use.Bytes, NumVdisks: use.Vdisks, NumImages: use.Images,
	}
}

func (s containerService) ListContainers(ctx context.Context, _ *acliv1.ListContainersRequest) (*acliv1.ListContainersResponse, error) {
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	return &acliv1.ListContainersResponse{Containers: []*acliv1.StorageContainer{s.container(defaultContainer)}}, nil
}

func (s containerService) GetContainer(ctx context.Context, req *acliv1.GetContainerRequest) (*acliv1.StorageContainer, error) {
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	c := s.container(defaultContainer)
	if req.Container != c.Name && req.Container != c.Uuid {
		return nil, apierr.NotFound("container", req.Container, []string{defaultContainer})
	}
	return c, nil
}
