package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// sizedDriver reports a container's capacity (an error when unset).
type sizedDriver struct {
	fakeDriver
	capacity int64
}

func (d *sizedDriver) ContainerCapacity(container string) (int64, error) {
	if d.capacity == 0 {
		return 0, errors.New("no such pool")
	}
	return d.capacity, nil
}

// TestContainersShowCommittedUse: the one container answers by name or
// UUID with the use of the committed records and the driver's capacity
// (unbounded without one); another name is not found with the valid one
// named; Fits refuses what the committed use leaves no room for.
func TestContainersShowCommittedUse(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	d := &sizedDriver{capacity: 10 * gib}
	c := &storage.Containers{DB: f.db, Driver: d, DriverName: "fake"}
	f.db.SetCapacity(c.Capacity)
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.ImageKey("uuid-img"), &acliv1.Image{Uuid: "uuid-img", Name: "img", Container: state.DefaultContainer, VmdiskUuid: "uuid-img", SizeBytes: 2 * gib}, 0)
		web := proto.Clone(tx.Vm("uuid-web")).(*acliv1.Vm)
		web.Disks = []*acliv1.Disk{{Uuid: "uuid-d0", Bus: "scsi", SizeBytes: 3 * gib, Container: state.DefaultContainer}}
		tx.Put(state.VmKey(web.Uuid), web, tx.Rev(state.VmKey(web.Uuid)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l, err := c.ListContainers(bg, &acliv1.ListContainersRequest{})
	if err != nil || len(l.Containers) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	got := l.Containers[0]
	if got.Name != state.DefaultContainer || got.CapacityBytes != 10*gib || got.UsedBytes != 5*gib || got.NumVdisks != 1 || got.NumImages != 1 || got.Uuid == "" {
		t.Fatalf("container %v", got)
	}
	for _, ref := range []string{got.Name, got.Uuid} {
		if g, err := c.GetContainer(bg, &acliv1.GetContainerRequest{Container: ref}); err != nil || g.Uuid != got.Uuid {
			t.Fatalf("get %s: %v %v", ref, g, err)
		}
	}
	if _, err := c.GetContainer(bg, &acliv1.GetContainerRequest{Container: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get nosuch: %v", err)
	}
	if n, err := c.Container(""); err != nil || n != state.DefaultContainer {
		t.Fatalf(`Container(""): %q %v`, n, err)
	}
	if _, err := c.Container("other"); status.Code(err) != codes.NotFound {
		t.Fatalf("Container(other): %v", err)
	}
	if err := c.Fits(state.DefaultContainer, 5*gib, "disk of vm web"); err != nil {
		t.Fatalf("5G into 5G free: %v", err)
	}
	err = c.Fits(state.DefaultContainer, 5*gib+1, "disk of vm web")
	if err == nil || !strings.Contains(err.Error(), "disk of vm web") || !strings.Contains(err.Error(), "5 GiB free") {
		t.Fatalf("one byte over: %v", err)
	}

	d.capacity = 0
	if n := c.Capacity(state.DefaultContainer); n != 1<<50 {
		t.Fatalf("capacity the driver cannot tell: %d", n)
	}
	if n := (&storage.Containers{DB: f.db}).Capacity(state.DefaultContainer); n != 1<<50 {
		t.Fatalf("capacity without storage: %d", n)
	}
	if _, err := (&storage.Containers{DB: f.db, DriverName: "fake"}).Import(context.Background(), state.DefaultContainer, "x", "http://x", "", func(int64, int64) {}); err == nil || err.Error() != "driver fake keeps no images" {
		t.Fatalf("import without storage: %v", err)
	}
}
