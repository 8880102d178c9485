package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Passthrough devices (acli's vm.gpu_assign, vm.assign_pcie_device): a
// powered-off VM is assigned device groups; at power-on it is placed on a
// host with a free device of each and binds them; state.RuleDevice refuses
// at commit a device held twice. Such VMs cannot live-migrate and block
// maintenance unless shut down (pinnedBy).

// deviceGroup is one vendor and model of device the hosts offer.
type deviceGroup struct {
	kind       acliv1.DeviceKind
	uuid, name string
	perHost    int // the most devices of it one host has
}

// deviceGroup resolves a GPU name (Vendor_Model or Vendor:Model, any case)
// or a group UUID among the hosts' devices of kind.
func (m *Manager) deviceGroup(kind acliv1.DeviceKind, ref string) (deviceGroup, error) {
	if g, ok := m.vgpuGroup(ref); ok && gpuFamily(kind) {
		return g, nil // vgpu.go
	} else if kind == acliv1.DeviceKind_kVirtualGpu {
		return deviceGroup{}, m.vgpuNotFound(ref)
	}
	groups := map[string]*deviceGroup{}
	var names []string
	m.db.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			count := map[string]int{}
			for _, d := range h.Devices {
				if d.Kind != kind {
					continue
				}
				g := groups[d.GroupUuid]
				if g == nil {
					g = &deviceGroup{kind: kind, uuid: d.GroupUuid, name: state.DeviceName(d.Vendor, d.Model)}
					groups[d.GroupUuid] = g
					names = append(names, g.name)
				}
				count[d.GroupUuid]++
				g.perHost = max(g.perHost, count[d.GroupUuid])
			}
		}
	})
	want := strings.ToLower(strings.Replace(ref, ":", "_", 1))
	for _, g := range groups {
		if strings.EqualFold(g.uuid, ref) || strings.ToLower(g.name) == want {
			return *g, nil
		}
	}
	kindWord := "gpu"
	if kind == acliv1.DeviceKind_kPcieDevice {
		kindWord = "pcie device group"
	}
	if len(groups) == 0 {
		return deviceGroup{}, status.Errorf(codes.NotFound, "%s %q not found: no host has a passthrough %s", kindWord, ref, state.DeviceWord(kind))
	}
	slices.Sort(names)
	return deviceGroup{}, apierr.NotFound(kindWord, ref, names)
}

func assignOp(kind acliv1.DeviceKind, assign bool) acliv1.TaskOperation {
	switch {
	case gpuFamily(kind) && assign:
		return acliv1.TaskOperation_kVmGpuAssign
	case gpuFamily(kind):
		return acliv1.TaskOperation_kVmGpuDeassign
	case assign:
		return acliv1.TaskOperation_kVmAssignPcieDevice
	}
	return acliv1.TaskOperation_kVmDeassignPcieDevice
}

// refuseRunning: devices change only while the VM is off (also a rule at
// commit: state.OffOnlyChanges).
func refuseRunning(v *acliv1.Vm) error {
	if placed(v) {
		return apierr.Precondition(state.RulePowerState, "vm:"+v.Name, "vm %s is on; passthrough devices change only while it is off (vm.off %s first)", v.Name, v.Name)
	}
	return nil
}

// AssignDevice gives a powered-off VM one more device of a group.
func (s vmService) AssignDevice(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
	m := s.m
	g, err := m.deviceGroup(req.Kind, req.Device)
	if err != nil {
		return nil, err
	}
	return m.vms.Edit(ctx, req.Vm, assignOp(req.Kind, true), func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		if err := refuseRunning(cur); err != nil {
			return nil, "", err
		}
		n := 1
		for _, d := range cur.Devices {
			if d.GroupUuid == g.uuid {
				n++
			}
		}
		if n > g.perHost {
			return nil, "", apierr.Precondition(state.RuleDevice, "vm:"+cur.Name, "vm %s would need %d %s %s on one host; the most any host has is %d",
				cur.Name, n, state.DeviceWord(g.kind), g.name, g.perHost)
		}
		v := proto.Clone(cur).(*acliv1.Vm)
		v.Devices = append(v.Devices, &acliv1.VmDevice{Kind: g.kind, GroupUuid: g.uuid, Name: g.name})
		return v, fmt.Sprintf("vm %s assigned %s %s", v.Name, state.DeviceWord(g.kind), g.name), nil
	})
}

// DeassignDevice takes one device of a group from a powered-off VM.
func (s vmService) DeassignDevice(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
	m := s.m
	return m.vms.Edit(ctx, req.Vm, assignOp(req.Kind, false), func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		var names []string
		i := slices.IndexFunc(cur.Devices, func(d *acliv1.VmDevice) bool {
			if d.Kind != req.Kind && !(gpuFamily(d.Kind) && gpuFamily(req.Kind)) {
				return false
			}
			names = append(names, d.Name)
			return strings.EqualFold(d.GroupUuid, req.Device) || strings.EqualFold(d.Name, strings.Replace(req.Device, ":", "_", 1))
		})
		if i < 0 {
			what := "gpu"
			if req.Kind == acliv1.DeviceKind_kPcieDevice {
				what = "pcie device group"
			}
			if len(names) == 0 {
				return nil, "", status.Errorf(codes.NotFound, "%s %q not found: vm %s has no passthrough %s", what, req.Device, cur.Name, state.DeviceWord(req.Kind))
			}
			return nil, "", apierr.NotFound(what, req.Device, names)
		}
		if err := refuseRunning(cur); err != nil {
			return nil, "", err
		}
		v := proto.Clone(cur).(*acliv1.Vm)
		d := v.Devices[i]
		v.Devices = slices.Delete(v.Devices, i, i+1)
		return v, fmt.Sprintf("vm %s deassigned %s %s", v.Name, state.DeviceWord(d.Kind), d.Name), nil
	})
}

// deviceFit says why a host cannot give v its devices ("" when it can),
// for placement.
func (m *Manager) deviceFit(v *acliv1.Vm) func(host string) string {
	if len(v.Devices) == 0 {
		return nil
	}
	return func(host string) string {
		var err error
		m.db.View(func(tx *state.Tx) { _, err = tx.BindDevices(v, host) })
		if err != nil {
			return err.Error()
		}
		return ""
	}
}

// devicePools gives each host of s its device pool as the DEVICE rule
// judges it in tx, when a VM of s has devices.
func devicePools(tx *state.Tx, s *scheduler.Snapshot) {
	vms := map[string]*acliv1.Vm{}
	for _, v := range s.VMs {
		if len(v.Devices) > 0 {
			vms[v.UUID] = tx.Vm(v.UUID)
		}
	}
	if len(vms) == 0 {
		return
	}
	for i := range s.Hosts {
		p := tx.DevicePool(s.Hosts[i].UUID)
		s.Hosts[i].Devices = func() scheduler.DevicePool { return schedPool{p.Clone(), vms} }
	}
}

// schedPool is a state.DevicePool for the scheduler, which names VMs by
// its own records.
type schedPool struct {
	p   *state.DevicePool
	vms map[string]*acliv1.Vm
}

func (s schedPool) Short(v *scheduler.VM) string {
	x := s.vms[v.UUID]
	if x == nil {
		return fmt.Sprintf("vm %s is not in the snapshot placement reads", v.Name)
	}
	return s.p.Short(x)
}

func (s schedPool) Book(v *scheduler.VM) {
	if x := s.vms[v.UUID]; x != nil {
		s.p.Book(x)
	}
}

func (s schedPool) Release(v *scheduler.VM) { s.p.Release(v.UUID) }

// withDevicesOn returns v with a free device of each of its groups on host
// bound, or refuses naming the group host has none free of.
func (m *Manager) withDevicesOn(v *acliv1.Vm, host string) (*acliv1.Vm, error) {
	var out *acliv1.Vm
	var err error
	m.db.View(func(tx *state.Tx) { out, err = tx.WithDevicesOn(v, host) })
	if err != nil {
		return nil, apierr.Precondition(state.RuleDevice, "vm:"+v.Name, "vm %s cannot start there: %v", v.Name, err)
	}
	return out, nil
}

// SetDirtyRate sets a simulated guest's memory dirty rate (sim only).
func (s simService) SetDirtyRate(ctx context.Context, req *acliv1.SimDirtyRateRequest) (*acliv1.SimDirtyRateResponse, error) {
	m := s.m
	sd, ok := m.drv.(interface {
		SetDirtyRate(*acliv1.Vm, int64) (int64, error)
	})
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "guest dirty rates need the sim driver; this clusterd runs the %s driver", m.drv.Name())
	}
	m.mu.RLock()
	r, err := m.vmLocked("vm", req.Vm)
	var v *acliv1.Vm
	if err == nil {
		v = r.pb
	}
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	rate, err := sd.SetDirtyRate(v, req.DirtyRateMbps)
	if err != nil {
		return nil, apierr.BadField("dirty_rate_mbps", "%v", err)
	}
	return &acliv1.SimDirtyRateResponse{Vm: vmRef(v), DirtyRateMbps: rate}, nil
}
