package libvirt

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/driver"
)

// dataPath is the driver's side of the iSCSI data path: the plane it runs
// (one CVM target and one redirector per host) and the hosts' names.
type dataPath struct {
	plane *datapath.Plane
	uuids sync.Map // host name -> host UUID, for CVM events
}

// startDataPathLocked runs the cluster's data path when the driver has
// one configured: a CVM target (tgtd) and a redirector per host with a
// cvm_ip, the data services IP, and the exports of the VMs' vDisks.
// The CVMs' health becomes CvmDown and CvmUp events.
func (d *Driver) startDataPathLocked(ctx context.Context, hosts []*acliv1.Host, vms []*acliv1.Vm) error {
	if d.cfg.DataPath == nil {
		return nil
	}
	cfg := *d.cfg.DataPath
	if cfg.DataServicesIP == "" {
		cfg.DataServicesIP = d.cfg.DataServicesIP
	}
	if cfg.Log == nil {
		cfg.Log = d.log
	}
	p, err := datapath.Start(ctx, cfg, nil)
	if err != nil {
		return err
	}
	d.dp = &dataPath{plane: p}
	d.cfg.Storage.DataPath = p
	p.OnChange(func(host string, up bool) {
		id, ok := d.dp.uuids.Load(host)
		if !ok {
			return
		}
		ev := driver.HostEvent{Kind: driver.CvmUp, HostUUID: id.(string), Time: time.Now()}
		if !up {
			ev.Kind, ev.Reason = driver.CvmDown, "the CVM's storage service stopped answering"
		}
		d.send(d.ctx, ev, false)
	})
	for _, h := range hosts {
		d.addDataPathHost(ctx, h)
	}
	for _, vm := range vms {
		spec := VmDomainSpec(vm, d.cfg.Storage)
		for _, disk := range spec.Disks {
			if !disk.CDROM && disk.Path != "" {
				if err := p.Export(ctx, datapath.Disk{IQN: datapath.VDiskIQN(disk.Serial), Path: disk.Path, ID: disk.Serial}); err != nil {
					d.log.Error("data path: export", "vm", vm.Name, "err", err)
				}
			}
		}
	}
	return nil
}

// addDataPathHost gives a host its CVM target and redirector; a host
// without a cvm_ip has none, and VMs cannot run there with a data path.
func (d *Driver) addDataPathHost(ctx context.Context, h *acliv1.Host) {
	if d.dp == nil {
		return
	}
	if h.CvmIp == "" {
		d.log.Warn("data path: host has no cvm_ip, so no CVM storage service", "host", h.Name)
		return
	}
	d.dp.uuids.Store(h.Name, h.Uuid)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := d.dp.plane.AddHost(ctx, datapath.HostConfig{Name: h.Name, RedirectorIP: h.HypervisorIp, CVMIP: h.CvmIp})
	if err != nil {
		d.log.Error("data path: host", "host", h.Name, "err", err)
	}
}

func (d *Driver) removeDataPathHost(name string) {
	if d.dp == nil {
		return
	}
	d.dp.uuids.Delete(name)
	if err := d.dp.plane.RemoveHost(name); err != nil {
		d.log.Warn("data path: host removed", "host", name, "err", err)
	}
}

func (d *Driver) closeDataPath() error {
	if d.dp == nil {
		return nil
	}
	return d.dp.plane.Close()
}

// vdiskTargets are the iSCSI targets of a VM's own vDisks.
func vdiskTargets(vm *acliv1.Vm) []string {
	var out []string
	for _, disk := range vm.Disks {
		if disk.VolumeGroupUuid == "" && !disk.Cdrom {
			out = append(out, datapath.VDiskIQN(disk.Uuid))
		}
	}
	return out
}

var _ driver.VmFencer = (*Driver)(nil)

// FenceVm implements driver.VmFencer: it refuses host's sessions of the VM's vDisks on every CVM (HA's
// fence before a restart elsewhere): when it returns, the copy on host no
// longer reaches the disks.
func (d *Driver) FenceVm(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	if d.dp == nil {
		return errors.New("the libvirt driver has no data path to fence through")
	}
	return d.dp.plane.Fence(ctx, vm.Uuid, host.Name, vdiskTargets(vm))
}

// unfence lets a VM powering on on host reach its vDisks again.
func (d *Driver) unfence(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	if d.dp == nil {
		return nil
	}
	return d.dp.plane.Unfence(ctx, vm.Uuid, host.Name, vdiskTargets(vm))
}

var _ driver.ISCSI = (*Driver)(nil)

// ExportVolume implements driver.ISCSI: a volume group's vDisk, served by
// every CVM under the model's target name.
func (d *Driver) ExportVolume(ctx context.Context, target, container, id string, size int64) error {
	if d.dp == nil {
		return nil
	}
	path := d.cfg.Storage.VolumePath(container, id)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := d.CreateVolume(ctx, container, id, size); err != nil {
			return err
		}
	}
	return d.dp.plane.Export(ctx, datapath.Disk{IQN: target, Path: path, ID: id})
}

// PlaceSessions implements driver.ISCSI.
func (d *Driver) PlaceSessions(ss []driver.ServedSession) {
	if d.dp == nil {
		return
	}
	placed := make([]datapath.Placed, len(ss))
	for i, s := range ss {
		placed[i] = datapath.Placed{Initiator: s.Initiator, Target: s.Target, CVMIP: s.CVMIP}
	}
	d.dp.plane.Place(placed)
}

// ServedSessions implements driver.ISCSI.
func (d *Driver) ServedSessions() ([]driver.ServedSession, bool) {
	if d.dp == nil {
		return nil, false
	}
	var out []driver.ServedSession
	for _, s := range d.dp.plane.Served() {
		out = append(out, driver.ServedSession{Initiator: s.Initiator, Target: s.Target, CVMIP: s.CVMIP, Addr: s.Addr})
	}
	return out, true
}
