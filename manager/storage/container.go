package storage

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
)

// Containers are the cluster's storage containers (one, default-container,
// sized by the driver) and the volumes in them that hold vDisks and images:
// imported, copied (a running VM paused while its vDisks are), grown and
// removed through the driver. Use is read from the committed state.
type Containers struct {
	DB *state.DB
	// Driver keeps the volumes (nil: the driver keeps none).
	Driver driver.Storage
	// Pauser pauses a running VM (nil: copies do not pause VMs).
	Pauser driver.Pauser
	// DriverName names the driver in errors.
	DriverName string
	Log        *slog.Logger
	// Changing is the task changing an entity (nil if none): a copy
	// source it changes is refused.
	Changing func(id string) *acliv1.Task

	mu     sync.Mutex
	paused map[string]*pauseRec // by VM UUID
}

// Container checks a container name ("" is the default container) and
// returns it.
func (c *Containers) Container(name string) (string, error) {
	name = cmp.Or(name, state.DefaultContainer)
	if name != state.DefaultContainer {
		return "", apierr.NotFound("container", name, []string{state.DefaultContainer})
	}
	return name, nil
}

// Capacity is a container's size as the driver reports it; unbounded
// (1 PiB) when the driver keeps no volumes or cannot tell.
func (c *Containers) Capacity(container string) int64 {
	if c.Driver != nil {
		if n, err := c.Driver.ContainerCapacity(container); err == nil {
			return n
		}
	}
	return 1 << 50
}

// Fits refuses early, naming what, adding bytes that do not fit a
// container as committed (CheckCapacity).
func (c *Containers) Fits(container string, add int64, what string) error {
	return CheckCapacity(c.DB, container, add, what)
}

// Import fetches url into a new volume id of container, reporting bytes
// read; on failure no volume remains.
func (c *Containers) Import(ctx context.Context, container, id, url, sha256 string, progress func(done, total int64)) (driver.Imported, error) {
	if c.Driver == nil {
		return driver.Imported{}, fmt.Errorf("driver %s keeps no images", c.DriverName)
	}
	return c.Driver.ImportImage(ctx, container, id, url, sha256, progress)
}

// info is a container as the API shows it.
func (c *Containers) info(name string) *acliv1.StorageContainer {
	var cluster string
	c.DB.View(func(tx *state.Tx) { cluster = tx.Cluster().GetUuid() })
	use := c.DB.ContainerUse(name)
	return &acliv1.StorageContainer{
		Uuid: uuid.NewSHA1(uuid.NameSpaceOID, []byte(cluster+"/"+name)).String(), Name: name,
		CapacityBytes: c.Capacity(name), UsedBytes: use.Bytes, NumVdisks: use.Vdisks, NumImages: use.Images,
	}
}

// ListContainers and GetContainer are the storage container feature
// behind manager/rpc's adapter.
func (c *Containers) ListContainers(ctx context.Context, _ *acliv1.ListContainersRequest) (*acliv1.ListContainersResponse, error) {
	return &acliv1.ListContainersResponse{Containers: []*acliv1.StorageContainer{c.info(state.DefaultContainer)}}, nil
}

func (c *Containers) GetContainer(ctx context.Context, req *acliv1.GetContainerRequest) (*acliv1.StorageContainer, error) {
	out := c.info(state.DefaultContainer)
	if req.Container != out.Name && req.Container != out.Uuid {
		return nil, apierr.NotFound("container", req.Container, []string{state.DefaultContainer})
	}
	return out, nil
}
