package manager_test

import (
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// The capacity rule holds at commit: disks requested at once, each of
// which fits the container alone, never over-commit it together. The sim
// container of 3 hosts at RF2 holds 12 TiB; 16 disks of 5 TiB race for it.
func TestContainerNeverOvercommitted(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	c := newClients(conn)
	containers := acliv1.NewStorageContainerServiceClient(conn)
	const n, size = 16, int64(5) << 40
	ids := make([]string, n)
	for i := range ids {
		ids[i] = createVm(t, c, "vm", gib).Uuid
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: id, SizeBytes: size})
			if err != nil {
				if status.Code(err) != codes.FailedPrecondition {
					t.Errorf("disk create: %v", err)
				}
				return
			}
			if final := wait(t, c, task, nil); final.Status == acliv1.TaskStatus_kSucceeded {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ct, err := containers.GetContainer(bg, &acliv1.GetContainerRequest{Container: "default-container"})
	if err != nil {
		t.Fatal(err)
	}
	if ok != 2 || ct.UsedBytes > ct.CapacityBytes {
		t.Fatalf("%d disks of 5 TiB created, container %d of %d bytes used; want 2 and no over-commit", ok, ct.UsedBytes, ct.CapacityBytes)
	}
}
