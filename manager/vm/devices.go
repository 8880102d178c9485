package vm

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
	"github.com/acli-dev/acli/manager/state"
)

// Devices (acli's vm.gpu_assign, vm.assign_pcie_device): a powered-off VM
// is assigned device groups or vGPU profiles; at power-on it is placed on
// a host that can give it one of each and binds them (state.DevicePool);
// the DEVICE rule refuses at commit a device held against the rules. Such
// VMs cannot live-migrate and block live maintenance unless shut down or
// moved offline (PinnedBy).

func assignOp(kind acliv1.DeviceKind, assign bool) acliv1.TaskOperation {
	switch {
	case state.GpuFamily(kind) && assign:
		return acliv1.TaskOperation_kVmGpuAssign
	case state.GpuFamily(kind):
		return acliv1.TaskOperation_kVmGpuDeassign
	case assign:
		return acliv1.TaskOperation_kVmAssignPcieDevice
	}
	return acliv1.TaskOperation_kVmDeassignPcieDevice
}

// refuseRunning: devices change only while the VM is off (also a rule at
// commit: state.OffOnly).
func refuseRunning(v *acliv1.Vm) error {
	if state.Placed(v) {
		return apierr.Precondition(state.RulePowerState, "vm:"+v.Name, "vm %s is on; passthrough devices change only while it is off (vm.off %s first)", v.Name, v.Name)
	}
	return nil
}

// AssignDevice gives a powered-off VM one more device of a group (or vGPU
// of a profile).
func (s *Service) AssignDevice(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
	var g state.DeviceGroup
	var err error
	s.db.View(func(tx *state.Tx) { g, err = tx.DeviceGroup(req.Kind, req.Device) })
	if err != nil {
		return nil, err
	}
	return s.Edit(ctx, req.Vm, assignOp(req.Kind, true), func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		if err := refuseRunning(cur); err != nil {
			return nil, "", err
		}
		n := 1
		for _, d := range cur.Devices {
			if d.GroupUuid == g.UUID {
				n++
			}
		}
		if n > g.PerHost {
			return nil, "", apierr.Precondition(state.RuleDevice, "vm:"+cur.Name, "vm %s would need %d %s %s on one host; the most any host has is %d",
				cur.Name, n, state.DeviceWord(g.Kind), g.Name, g.PerHost)
		}
		v := proto.Clone(cur).(*acliv1.Vm)
		v.Devices = append(v.Devices, &acliv1.VmDevice{Kind: g.Kind, GroupUuid: g.UUID, Name: g.Name})
		return v, fmt.Sprintf("vm %s assigned %s %s", v.Name, state.DeviceWord(g.Kind), g.Name), nil
	})
}

// DeassignDevice takes one device of a group from a powered-off VM.
func (s *Service) DeassignDevice(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
	return s.Edit(ctx, req.Vm, assignOp(req.Kind, false), func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		var names []string
		i := slices.IndexFunc(cur.Devices, func(d *acliv1.VmDevice) bool {
			if d.Kind != req.Kind && !(state.GpuFamily(d.Kind) && state.GpuFamily(req.Kind)) {
				return false
			}
			names = append(names, d.Name)
			return strings.EqualFold(d.GroupUuid, req.Device) || strings.EqualFold(d.Name, strings.Replace(req.Device, ":", "_", 1))
		})
		if i < 0 {
			what := state.GroupWord(req.Kind)
			if len(names) == 0 {
				return nil, "", apierr.NotFoundBecause(what, req.Device, fmt.Sprintf("vm %s has no passthrough %s", cur.Name, state.DeviceWord(req.Kind)))
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

// bindDevices returns v with a device of each of its groups on host
// bound, or refuses the power-on naming the one host cannot give. Two
// power-ons racing for one device both bind it; the DEVICE rule at commit
// refuses the second.
func (s *Service) bindDevices(v *acliv1.Vm, host string) (*acliv1.Vm, error) {
	if len(v.Devices) == 0 {
		return v, nil
	}
	var out *acliv1.Vm
	var err error
	s.db.View(func(tx *state.Tx) { out, err = tx.WithDevicesOn(v, host) })
	if err != nil {
		return nil, apierr.Precondition(state.RuleDevice, "vm:"+v.Name, "vm %s cannot power on: %v", v.Name, err)
	}
	return out, nil
}

// SetDirtyRate sets a simulated guest's memory dirty rate (sim only).
func (s *Service) SetDirtyRate(ctx context.Context, req *acliv1.SimDirtyRateRequest) (*acliv1.SimDirtyRateResponse, error) {
	sd, ok := s.drv.(interface {
		SetDirtyRate(*acliv1.Vm, int64) (int64, error)
	})
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "guest dirty rates need the sim driver; this clusterd runs the %s driver", s.drv.Name())
	}
	v, _, err := s.resolve("vm", req.Vm)
	if err != nil {
		return nil, err
	}
	rate, err := sd.SetDirtyRate(v, req.DirtyRateMbps)
	if err != nil {
		return nil, apierr.BadField("dirty_rate_mbps", "%v", err)
	}
	return &acliv1.SimDirtyRateResponse{Vm: state.VmRef(v), DirtyRateMbps: rate}, nil
}
