package libvirt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/storage/volume"
)

// Storage lays out the storage containers under one directory that every
// host reaches at the same path (standing in for the distributed storage):
// container C is Dir/C, its vDisks are Dir/C/vdisks/<uuid>, and the VMs'
// serial consoles are Dir/.consoles/<vm-uuid>.log.
type Storage struct {
	Dir string
	// DataPath, when set, serves the VMs' vDisks over iSCSI: each domain
	// disk logs in at its host's redirector, which sends it to a CVM.
	DataPath DataPath
}

// DataPath is the iSCSI data path of the cluster (datapath.Plane).
type DataPath interface {
	// Redirector is the portal ("ip:port") of the named host's redirector.
	Redirector(host string) string
	// Export serves a vDisk on every CVM.
	Export(ctx context.Context, d datapath.Disk) error
}

// onHost points a domain's vDisks at host's redirector, exporting each
// on the CVMs; without a data path the disks stay files.
func (s Storage) onHost(ctx context.Context, spec *DomainSpec, vmUUID, host string) error {
	if s.DataPath == nil {
		return nil
	}
	portal := s.DataPath.Redirector(host)
	if portal == "" {
		return fmt.Errorf("host %s has no iSCSI redirector", host)
	}
	for i, d := range spec.Disks {
		if d.CDROM || d.Path == "" {
			continue
		}
		iqn := datapath.VDiskIQN(d.Serial)
		if err := s.DataPath.Export(ctx, datapath.Disk{IQN: iqn, Path: d.Path, ID: d.Serial}); err != nil {
			return err
		}
		spec.Disks[i].ISCSI = &ISCSISource{Portal: portal, IQN: iqn, Initiator: datapath.InitiatorName(vmUUID, host)}
	}
	return nil
}

// VolumePath is the file of a vDisk.
func (s Storage) VolumePath(container, vdisk string) string {
	return filepath.Join(s.Dir, container, "vdisks", vdisk)
}

// ConsolePath is the file a VM's first serial port appends to.
func (s Storage) ConsolePath(vmUUID string) string {
	return filepath.Join(s.Dir, ".consoles", vmUUID+".log")
}

// vmDisks turns a VM's own vDisks into domain disks. Disks from volume
// groups are left out: they reach the VM over iSCSI. The boot device is the
// VM's boot_disk_addr, else its first disk in bus order.
func (s Storage) vmDisks(vm *acliv1.Vm) []DiskSpec {
	var out []DiskSpec
	for _, d := range vm.Disks {
		if d.VolumeGroupUuid != "" {
			continue
		}
		ds := DiskSpec{Bus: d.Bus, Index: int(d.Index), CDROM: d.Cdrom, Serial: d.Uuid}
		if !d.Cdrom || d.SizeBytes > 0 {
			ds.Path = s.VolumePath(cmp.Or(d.Container, "default-container"), d.Uuid)
		}
		out = append(out, ds)
	}
	slices.SortStableFunc(out, func(a, b DiskSpec) int {
		if c := cmpBus(a.Bus, b.Bus); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	boot := slices.IndexFunc(out, func(d DiskSpec) bool { return fmt.Sprintf("%s.%d", d.Bus, d.Index) == vm.BootDiskAddr })
	if len(out) > 0 {
		out[max(boot, 0)].Boot = true
	}
	return out
}

// ensureVolumes creates, empty, the volume of every vDisk that has none yet
// (a disk made with create_size is thin until the guest writes), so the
// domain can start.
func (s Storage) ensureVolumes(vm *acliv1.Vm) error {
	for _, d := range vm.Disks {
		if d.VolumeGroupUuid != "" || d.Cdrom || d.SizeBytes <= 0 {
			continue
		}
		p := s.VolumePath(cmp.Or(d.Container, "default-container"), d.Uuid)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := volume.Create(p, d.SizeBytes); err != nil {
			return fmt.Errorf("vm %s disk %s.%d: %w", vm.Name, d.Bus, d.Index, err)
		}
	}
	return os.MkdirAll(filepath.Dir(s.ConsolePath(vm.Uuid)), 0o755)
}

// removeVolumes deletes a deleted VM's own vDisks and console file.
func (s Storage) removeVolumes(vm *acliv1.Vm) error {
	if s.Dir == "" {
		return nil
	}
	for _, d := range vm.Disks {
		if d.VolumeGroupUuid != "" {
			continue
		}
		if err := volume.Remove(s.VolumePath(cmp.Or(d.Container, "default-container"), d.Uuid)); err != nil {
			return err
		}
	}
	return volume.Remove(s.ConsolePath(vm.Uuid))
}

var _ driver.Storage = (*Driver)(nil)

// ContainerCapacity implements driver.Storage: the size of the file system
// holding the storage directory.
func (d *Driver) ContainerCapacity(container string) (int64, error) {
	dir := d.cfg.Storage.Dir
	if dir == "" {
		return 0, errors.New("libvirt driver has no storage directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, fmt.Errorf("storage directory %s: %w", dir, err)
	}
	return int64(fs.Blocks) * fs.Bsize, nil
}

func (d *Driver) volumeDir(container string) (string, error) {
	if d.cfg.Storage.Dir == "" {
		return "", errors.New("libvirt driver has no storage directory")
	}
	p := filepath.Dir(d.cfg.Storage.VolumePath(container, "x"))
	return p, os.MkdirAll(p, 0o755)
}

// ImportImage implements driver.Storage.
func (d *Driver) ImportImage(ctx context.Context, container, id, url, sha256 string, progress func(done, total int64)) (driver.Imported, error) {
	if _, err := d.volumeDir(container); err != nil {
		return driver.Imported{}, err
	}
	res, err := volume.Import(ctx, url, d.cfg.Storage.VolumePath(container, id), volume.ImportOptions{Progress: progress, SHA256: sha256})
	if err != nil {
		return driver.Imported{}, err
	}
	return driver.Imported{Size: res.Size, SHA256: res.SHA256, SourceFormat: res.SourceType}, nil
}

// CloneVolume implements driver.Storage. A vDisk never written may have
// no volume yet (volume group vDisks get theirs when written); its copy is
// an empty volume of its size.
func (d *Driver) CloneVolume(ctx context.Context, container, src, dst string, size int64) error {
	if _, err := d.volumeDir(container); err != nil {
		return err
	}
	from := d.cfg.Storage.VolumePath(container, src)
	if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
		return volume.Create(d.cfg.Storage.VolumePath(container, dst), size)
	}
	return volume.Clone(from, d.cfg.Storage.VolumePath(container, dst), size)
}

// DeleteVolume implements driver.Storage.
func (d *Driver) DeleteVolume(ctx context.Context, container, id string) error {
	if d.cfg.Storage.Dir == "" {
		return nil
	}
	return volume.Remove(d.cfg.Storage.VolumePath(container, id))
}

// FilePath is the file behind a container path, /<container>/<path>: a
// path that leaves the container (.., or an absolute link) is refused.
func (s Storage) FilePath(path string) (string, error) {
	clean := filepath.Clean("/" + path)
	if path == "" || path[0] != '/' || clean != path || strings.Count(clean, "/") < 2 || strings.HasPrefix(clean, "/.") {
		return "", fmt.Errorf("%q is not a container path like /default-container/vdisks/<uuid>", path)
	}
	if s.Dir == "" {
		return "", errors.New("libvirt driver has no storage directory")
	}
	p := filepath.Join(s.Dir, clean)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(s.Dir)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", fmt.Errorf("%s leads out of the storage containers", path)
	}
	return real, nil
}

// CreateVolume implements driver.Storage.
func (d *Driver) CreateVolume(ctx context.Context, container, id string, size int64) error {
	if _, err := d.volumeDir(container); err != nil {
		return err
	}
	return volume.Create(d.cfg.Storage.VolumePath(container, id), size)
}

// ResizeVolume implements driver.Storage. A vDisk never written may have
// no volume yet (it is made at power-on); there is nothing to grow then.
func (d *Driver) ResizeVolume(ctx context.Context, container, id string, size int64) error {
	err := volume.Resize(d.cfg.Storage.VolumePath(container, id), size)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// FileSize implements driver.Storage.
func (d *Driver) FileSize(ctx context.Context, path string) (int64, error) {
	p, err := d.cfg.Storage.FilePath(path)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a file", path)
	}
	return st.Size(), nil
}

// CloneFile implements driver.Storage.
func (d *Driver) CloneFile(ctx context.Context, path, container, dst string, size int64) error {
	p, err := d.cfg.Storage.FilePath(path)
	if err != nil {
		return err
	}
	if _, err := d.volumeDir(container); err != nil {
		return err
	}
	return volume.Clone(p, d.cfg.Storage.VolumePath(container, dst), size)
}

var _ driver.Pauser = (*Driver)(nil)

// Pause implements driver.Pauser: libvirt suspends the domain, and QEMU
// drains and flushes its disks before the vCPUs stop.
func (d *Driver) Pause(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) (func() error, error) {
	c, err := d.conn(host)
	if err != nil {
		return nil, err
	}
	if err := c.Suspend(vm.Uuid); err != nil {
		return nil, err
	}
	return func() error { return c.Resume(vm.Uuid) }, nil
}
