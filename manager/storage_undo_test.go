package manager_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/state"
)

// gatedStorage is the sim with a clone that can be held until released,
// and a record of the volumes deleted.
type gatedStorage struct {
	*sim.Driver
	mu      sync.Mutex
	gate    chan struct{} // non-nil: the next clone waits for it
	cloning chan string   // the held clone's destination volume
	deleted []string
}

func (g *gatedStorage) CloneVolume(ctx context.Context, container, src, dst string, size int64) error {
	g.mu.Lock()
	gate := g.gate
	g.gate = nil
	g.mu.Unlock()
	if gate != nil {
		g.cloning <- dst
		<-gate
	}
	return g.Driver.CloneVolume(ctx, container, src, dst, size)
}

func (g *gatedStorage) DeleteVolume(ctx context.Context, container, id string) error {
	g.mu.Lock()
	g.deleted = append(g.deleted, id)
	g.mu.Unlock()
	return g.Driver.DeleteVolume(ctx, container, id)
}

func (g *gatedStorage) wasDeleted(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.deleted, id)
}

// withIso is a manager on the sim with gated clones and an ISO image, iso.
func withIso(t *testing.T) (*gatedStorage, *managertest.Harness, clients) {
	t.Helper()
	drv, err := sim.New(sim.Config{Hosts: 3, Speed: 1000}, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedStorage{Driver: drv, cloning: make(chan string)}
	h := managertest.New(t, managertest.Options{Driver: g})
	c := newClients(h.Conn)
	iso := filepath.Join(t.TempDir(), "x.iso")
	if err := os.WriteFile(iso, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	succeed(t, c)(acliv1.NewImageServiceClient(h.Conn).CreateImage(bg, &acliv1.CreateImageRequest{Name: "iso", SourceUrl: "file://" + iso, ImageType: acliv1.ImageType_kIsoImage}))
	return g, h, c
}

// An ISO inserted into a CD-ROM is copied first; when the container fills
// up meanwhile, the capacity rule refuses the record at commit and the copy
// is removed, not leaked.
func TestRefusedCdromInsertLeavesNoCopy(t *testing.T) {
	g, h, c := withIso(t)
	containers := acliv1.NewStorageContainerServiceClient(h.Conn)
	createVm(t, c, "cd", gib)
	createVm(t, c, "big", gib)
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "cd", Bus: "ide", Cdrom: true}))

	g.mu.Lock()
	g.gate = make(chan struct{})
	gate := g.gate
	g.mu.Unlock()
	type result struct {
		task *acliv1.Task
		err  error
	}
	done := make(chan result, 1)
	go func() {
		task, err := c.vm.UpdateDisk(bg, &acliv1.UpdateDiskRequest{Vm: "cd", Bus: "ide", Index: 0, CloneFromImage: "iso"})
		done <- result{task, err}
	}()
	copyID := <-g.cloning
	// While the ISO is copied, another disk takes every free byte.
	ct, err := containers.GetContainer(bg, &acliv1.GetContainerRequest{Container: state.DefaultContainer})
	if err != nil {
		t.Fatal(err)
	}
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "big", SizeBytes: ct.CapacityBytes - ct.UsedBytes}))
	close(gate)
	r := <-done
	if r.err == nil {
		t.Fatalf("the insert was recorded although the container is full: %v", r.task)
	}
	wantCode(t, r.err, codes.FailedPrecondition, "does not fit container "+state.DefaultContainer)
	if !g.wasDeleted(copyID) {
		t.Errorf("the refused insert's copy %s was left behind (deleted: %v)", copyID, g.deleted)
	}
	vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "cd"})
	if err != nil {
		t.Fatal(err)
	}
	if d := vm.Disks[0]; !d.Cdrom || d.SizeBytes != 0 || d.Uuid == copyID {
		t.Errorf("the CD-ROM after the refused insert: %v", d)
	}
	ct, _ = containers.GetContainer(bg, &acliv1.GetContainerRequest{Container: state.DefaultContainer})
	if ct.UsedBytes != ct.CapacityBytes {
		t.Errorf("container uses %d of %d bytes, want it exactly full", ct.UsedBytes, ct.CapacityBytes)
	}
}

// Deleting an image or a snapshot removes its record, then its volumes;
// a disk cloned from either is a volume of its own and stays.
func TestDeleteRemovesRecordThenVolumes(t *testing.T) {
	drv, err := sim.New(sim.Config{Hosts: 3, Speed: 1000}, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedStorage{Driver: drv, cloning: make(chan string)}
	h := managertest.New(t, managertest.Options{Driver: g})
	c := newClients(h.Conn)
	images := acliv1.NewImageServiceClient(h.Conn)
	snaps := acliv1.NewSnapshotServiceClient(h.Conn)
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	img := succeed(t, c)(images.CreateImage(bg, &acliv1.CreateImageRequest{Name: "img", SourceUrl: "file://" + raw, ImageType: acliv1.ImageType_kDiskImage})).Entities[0].Uuid
	createVm(t, c, "v", gib)
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "v", CloneFromImage: "img"}))
	snap := succeed(t, c)(snaps.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "v", Names: []string{"s"}}))
	sn, err := snaps.GetSnapshot(bg, &acliv1.GetSnapshotRequest{Snapshot: snap.Entities[len(snap.Entities)-1].Uuid})
	if err != nil {
		t.Fatal(err)
	}
	succeed(t, c)(images.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "img"}))
	succeed(t, c)(snaps.DeleteSnapshot(bg, &acliv1.DeleteSnapshotRequest{Snapshot: "s"}))
	if !g.wasDeleted(img) || !g.wasDeleted(sn.Vm.Disks[0].Uuid) {
		t.Errorf("volumes deleted %v, want image %s and snapshot disk %s", g.deleted, img, sn.Vm.Disks[0].Uuid)
	}
	_, err = images.GetImage(bg, &acliv1.GetImageRequest{Image: "img"})
	wantCode(t, err, codes.NotFound, `image "img" not found`)
	vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if g.wasDeleted(vm.Disks[0].Uuid) {
		t.Errorf("the clone's volume %s went with its image", vm.Disks[0].Uuid)
	}
}

// A disk cloned from an image reads it from its start until its end: the
// image cannot be deleted meanwhile (exit 5, naming the copy), another
// copy of it may run at once, and the read ends with the task, whether it
// succeeds or is refused after it began.
func TestCloneReadsItsImageUntilItEnds(t *testing.T) {
	g, h, c := withIso(t)
	images := acliv1.NewImageServiceClient(h.Conn)
	createVm(t, c, "a", gib)
	createVm(t, c, "b", gib)

	g.mu.Lock()
	g.gate = make(chan struct{})
	gate := g.gate
	g.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "a", CloneFromImage: "iso", Cdrom: true})
		done <- err
	}()
	<-g.cloning
	_, err := images.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "iso"})
	wantCode(t, err, codes.Aborted, "image iso is busy with task ")
	wantCode(t, err, codes.Aborted, "(kVmDiskCreate)")
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", CloneFromImage: "iso", Cdrom: true}))
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Refused after it began (the index is taken): it reads nothing after.
	ide0 := int32(0)
	_, err = c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "a", CloneFromImage: "iso", Cdrom: true, Bus: "ide", Index: &ide0})
	wantCode(t, err, codes.AlreadyExists, "disk ide.0 already exists")
	succeed(t, c)(images.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "iso"}))
}
