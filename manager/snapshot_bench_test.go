package manager_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/storage/volume"
)

// fileStorage is the sim with real volumes: files under dir, copied as the
// libvirt driver copies them (manager/storage/volume).
type fileStorage struct {
	*sim.Driver
	dir string
}

func (f *fileStorage) path(container, id string) string { return filepath.Join(f.dir, container, id) }

func (f *fileStorage) CreateVolume(_ context.Context, container, id string, size int64) error {
	if err := os.MkdirAll(filepath.Join(f.dir, container), 0o755); err != nil {
		return err
	}
	return volume.Create(f.path(container, id), size)
}

func (f *fileStorage) CloneVolume(_ context.Context, container, src, dst string, size int64) error {
	return volume.Clone(f.path(container, src), f.path(container, dst), size)
}

func (f *fileStorage) DeleteVolume(_ context.Context, container, id string) error {
	return volume.Remove(f.path(container, id))
}

// BenchmarkSnapshot10GiB20MB: vm.snapshot_create of a stopped VM whose
// one 10 GiB vDisk holds 20 MB (four 5 MiB extents), end to end through
// the manager (task, commit, sparse copy on this machine's file system);
// reports the space one snapshot allocates.
func BenchmarkSnapshot10GiB20MB(b *testing.B) {
	drv, err := sim.New(sim.Config{Hosts: 3, Speed: 1000}, sim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fs := &fileStorage{Driver: drv, dir: b.TempDir()}
	h := managertest.New(b, managertest.Options{Driver: fs})
	c := newClients(h.Conn)
	snaps := acliv1.NewSnapshotServiceClient(h.Conn)
	createVm(b, c, "src", gib)
	succeed(b, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "src", SizeBytes: 10 * gib}))
	vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "src"})
	if err != nil {
		b.Fatal(err)
	}
	d := vm.Disks[0]
	f, err := os.OpenFile(fs.path(d.Container, d.Uuid), os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	for i := int64(0); i < 4; i++ {
		data := make([]byte, 5<<20)
		rand.Read(data)
		if _, err := f.WriteAt(data, i*(d.SizeBytes/4-5<<20)); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	var alloc int64
	for i := 0; b.Loop(); i++ {
		task := succeed(b, c)(snaps.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "src", Names: []string{fmt.Sprint("s", i)}}))
		b.StopTimer()
		s, err := snaps.GetSnapshot(bg, &acliv1.GetSnapshotRequest{Snapshot: task.Entities[len(task.Entities)-1].Uuid})
		if err != nil {
			b.Fatal(err)
		}
		sd := s.Vm.Disks[0]
		if _, alloc, err = volume.Usage(fs.path(sd.Container, sd.Uuid)); err != nil {
			b.Fatal(err)
		}
		succeed(b, c)(snaps.DeleteSnapshot(bg, &acliv1.DeleteSnapshotRequest{Snapshot: s.Uuid}))
		b.StartTimer()
	}
	b.ReportMetric(float64(alloc)/(1<<20), "MiB-allocated")
}
