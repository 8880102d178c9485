package storage

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// vDisk copies: clones from images, vDisks, files and snapshots. Every
// copy is a volume of its own (manager/storage/volume: a sparse copy of the
// data extents), so deleting a source never strands a copy.

// Source is a vDisk or file to copy.
type Source struct {
	Container string
	Vdisk     string // the volume, or
	File      string // the container path of a file
	Size      int64
	What      string     // "vDisk scsi.0 of vm web01", for messages
	Vm        *acliv1.Vm // the VM holding it, paused while copied when it runs
	// Ref is the entity holding it, named by the copying task (nil: a
	// file); Lock is the entity the task reads while it copies.
	Ref  *acliv1.EntityRef
	Lock string
}

// Copy is one vDisk copy into a new volume.
type Copy struct {
	Src            Source
	Container, Dst string
	Size           int64
}

// Disks are the volumes copies make, as Remove takes them.
func Disks(copies []Copy) []*acliv1.Disk {
	ds := make([]*acliv1.Disk, len(copies))
	for i, c := range copies {
		ds[i] = &acliv1.Disk{Uuid: c.Dst, Container: c.Container, SizeBytes: c.Size}
	}
	return ds
}

type pauseRec struct {
	n      int
	resume func() error
}

// VmdiskPath is where a vDisk lives in its container, the path
// clone_from_adsf_file takes.
func VmdiskPath(container, id string) string {
	return "/" + cmp.Or(container, state.DefaultContainer) + "/vdisks/" + id
}

// Copy makes the copies, with every running VM they read paused for all of
// them at once (so copies of one VM's vDisks are of one instant). On
// failure the copies made are removed.
func (c *Containers) Copy(ctx context.Context, copies []Copy) error {
	if c.Driver == nil {
		return fmt.Errorf("driver %s keeps no vDisks", c.DriverName)
	}
	seen := map[string]bool{}
	for _, cp := range copies {
		if v := cp.Src.Vm; v != nil && !seen[v.Uuid] {
			seen[v.Uuid] = true
			release, err := c.pause(ctx, v)
			if err != nil {
				return err
			}
			defer release()
		}
	}
	for i, cp := range copies {
		var err error
		if cp.Src.File != "" {
			err = c.Driver.CloneFile(ctx, cp.Src.File, cp.Container, cp.Dst, cp.Size)
		} else {
			err = c.Driver.CloneVolume(ctx, cp.Container, cp.Src.Vdisk, cp.Dst, cp.Size)
		}
		if err != nil {
			for _, done := range copies[:i] {
				c.Driver.DeleteVolume(context.WithoutCancel(ctx), done.Container, done.Dst)
			}
			return fmt.Errorf("copy %s: %w", cp.Src.What, err)
		}
	}
	return nil
}

// pause pauses a running VM for a copy of its vDisks; pauses nest, the last
// release resumes it. A VM that is off, or a driver that cannot pause,
// needs nothing.
func (c *Containers) pause(ctx context.Context, vm *acliv1.Vm) (release func(), err error) {
	var host *acliv1.Host
	if vm.PowerState == acliv1.PowerState_kOn {
		c.DB.View(func(tx *state.Tx) { host = tx.Host(vm.HostUuid) })
	}
	if c.Pauser == nil || host == nil {
		return func() {}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.paused[vm.Uuid]
	if r == nil {
		resume, err := c.Pauser.Pause(ctx, host, vm)
		if err != nil {
			return nil, fmt.Errorf("pause vm %s to copy its disks: %w", vm.Name, err)
		}
		r = &pauseRec{resume: resume}
		if c.paused == nil {
			c.paused = map[string]*pauseRec{}
		}
		c.paused[vm.Uuid] = r
	}
	r.n++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.n--; r.n > 0 {
			return
		}
		delete(c.paused, vm.Uuid)
		if err := r.resume(); err != nil {
			c.log().Error("resuming a vm paused for a disk copy", "vm", vm.Uuid, "err", err)
		}
	}, nil
}

func (c *Containers) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

// Create makes the empty volume of a disk just recorded; a failure is
// logged (a missing volume is made, empty, at power-on).
func (c *Containers) Create(ctx context.Context, d *acliv1.Disk) {
	if c.Driver == nil || !state.HasData(d) {
		return
	}
	if err := c.Driver.CreateVolume(ctx, cmp.Or(d.Container, state.DefaultContainer), d.Uuid, d.SizeBytes); err != nil {
		c.log().Warn("creating a new disk's volume", "disk", d.Uuid, "err", err)
	}
}

// Remove deletes volumes whose records are gone; a failure leaves unused
// space, never a record without its data.
func (c *Containers) Remove(ctx context.Context, disks []*acliv1.Disk) {
	if c.Driver == nil {
		return
	}
	for _, d := range disks {
		if !state.HasData(d) {
			continue
		}
		if err := c.Driver.DeleteVolume(ctx, cmp.Or(d.Container, state.DefaultContainer), d.Uuid); err != nil {
			c.log().Warn("removing a deleted vDisk's volume", "disk", d.Uuid, "err", err)
		}
	}
}
