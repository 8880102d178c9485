package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// fakeDriver keeps a log of the volume calls; a copy to failDst fails.
type fakeDriver struct {
	driver.Storage // calls the copier does not make panic
	mu             sync.Mutex
	log            []string
	paused         int
	failDst        string
}

func (d *fakeDriver) add(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, fmt.Sprintf(format, args...))
}

func (d *fakeDriver) CloneVolume(ctx context.Context, container, src, dst string, size int64) error {
	if dst == d.failDst {
		return errors.New("no space left on device")
	}
	d.add("clone %s %s->%s %d paused=%d", container, src, dst, size, d.paused)
	return nil
}

func (d *fakeDriver) CloneFile(ctx context.Context, path, container, dst string, size int64) error {
	d.add("file %s->%s %d paused=%d", path, dst, size, d.paused)
	return nil
}

func (d *fakeDriver) CreateVolume(ctx context.Context, container, id string, size int64) error {
	d.add("create %s %s %d", container, id, size)
	return nil
}

func (d *fakeDriver) DeleteVolume(ctx context.Context, container, id string) error {
	d.add("delete %s %s", container, id)
	return nil
}

func (d *fakeDriver) Pause(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) (func() error, error) {
	d.add("pause %s on %s", vm.Name, host.Name)
	d.paused++
	return func() error {
		d.paused--
		d.add("resume %s", vm.Name)
		return nil
	}, nil
}

// TestCopierPausesOnceAndCleansUp: copies of one running VM's vDisks pause
// it once, for all of them; a failed copy removes the copies made before
// it; a VM that is off is not paused; Create and Remove skip disks
// without data.
func TestCopierPausesOnceAndCleansUp(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	d := &fakeDriver{}
	c := &storage.Containers{DB: f.db, Driver: d, Pauser: d, DriverName: "fake"}
	var web *acliv1.Vm
	f.db.View(func(tx *state.Tx) { web = tx.Vm("uuid-web") })
	src := func(id string) storage.Source {
		return storage.Source{Container: "ctr", Vdisk: id, Size: 10, What: "vDisk " + id + " of vm web", Vm: web}
	}
	copies := []storage.Copy{
		{Src: src("a"), Container: "ctr", Dst: "a2", Size: 10},
		{Src: src("b"), Container: "ctr", Dst: "b2", Size: 20},
		{Src: storage.Source{File: "/ctr/iso/x.iso", Size: 5, What: "file /ctr/iso/x.iso"}, Container: "ctr", Dst: "x2", Size: 5},
	}
	if err := c.Copy(bg, copies); err != nil {
		t.Fatal(err)
	}
	want := []string{"pause web on h1", "clone ctr a->a2 10 paused=1", "clone ctr b->b2 20 paused=1", "file /ctr/iso/x.iso->x2 5 paused=1", "resume web"}
	if !slices.Equal(d.log, want) {
		t.Fatalf("driver calls\n%s\nwant\n%s", strings.Join(d.log, "\n"), strings.Join(want, "\n"))
	}

	d.log, d.failDst = nil, "b3"
	copies[0].Dst, copies[1].Dst = "a3", "b3"
	err := c.Copy(bg, copies)
	if err == nil || err.Error() != "copy vDisk b of vm web: no space left on device" {
		t.Fatalf("failed copy: %v", err)
	}
	want = []string{"pause web on h1", "clone ctr a->a3 10 paused=1", "delete ctr a3", "resume web"}
	if !slices.Equal(d.log, want) {
		t.Fatalf("driver calls\n%s\nwant\n%s", strings.Join(d.log, "\n"), strings.Join(want, "\n"))
	}

	d.log = nil
	off := &acliv1.Vm{Uuid: "uuid-off", Name: "off", PowerState: acliv1.PowerState_kOff}
	if err := c.Copy(bg, []storage.Copy{{Src: storage.Source{Container: "ctr", Vdisk: "o", Vm: off}, Container: "ctr", Dst: "o2"}}); err != nil {
		t.Fatal(err)
	}
	c.Remove(bg, []*acliv1.Disk{{Uuid: "o2"}, {Uuid: "cd", Cdrom: true}, {Uuid: "vgd", VolumeGroupUuid: "vg"}})
	for _, d := range []*acliv1.Disk{{Uuid: "n", SizeBytes: 7}, {Uuid: "cd", Cdrom: true}, {Uuid: "vgd", VolumeGroupUuid: "vg", SizeBytes: 7}} {
		c.Create(bg, d)
	}
	want = []string{"clone ctr o->o2 0 paused=0", "delete default-container o2", "create default-container n 7"}
	if !slices.Equal(d.log, want) {
		t.Fatalf("driver calls\n%s\nwant\n%s", strings.Join(d.log, "\n"), strings.Join(want, "\n"))
	}

	none := &storage.Containers{DB: f.db, DriverName: "fake"}
	if err := none.Copy(bg, copies); err == nil || err.Error() != "driver fake keeps no vDisks" {
		t.Fatalf("copy without storage: %v", err)
	}
}
