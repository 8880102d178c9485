package rpc

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// checkDeviceRequest refuses an assignment that names no VM, kind or device.
func checkDeviceRequest(req *acliv1.AssignDeviceRequest) error {
	switch {
	case req.Vm == "":
		return apierr.BadField("vm", "name the VM")
	case req.Kind != acliv1.DeviceKind_kGpuPassthrough && req.Kind != acliv1.DeviceKind_kPcieDevice && req.Kind != acliv1.DeviceKind_kVirtualGpu:
		return apierr.BadField("kind", "device kind %d is unknown; use kGpuPassthrough, kVirtualGpu or kPcieDevice", req.Kind)
	case req.Device == "" && req.Kind != acliv1.DeviceKind_kPcieDevice:
		return apierr.BadField("gpu", "name the GPU, e.g. gpu=Nvidia_Tesla_M60 (host.get lists a host's devices)")
	case req.Device == "":
		return apierr.BadField("group_uuid", "name the PCIe device group, e.g. group_uuid=<uuid> (host.get lists a host's devices)")
	}
	return nil
}

func (s vmServer) AssignDevice(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
	if err := checkDeviceRequest(req); err != nil {
		return nil, Status(err)
	}
	return reply(s.f.AssignDevice(ctx, req))
}

func (s vmServer) DeassignDevice(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
	if err := checkDeviceRequest(req); err != nil {
		return nil, Status(err)
	}
	return reply(s.f.DeassignDevice(ctx, req))
}

func (s simServer) SetDirtyRate(ctx context.Context, req *acliv1.SimDirtyRateRequest) (*acliv1.SimDirtyRateResponse, error) {
	if req.DirtyRateMbps < 0 {
		return nil, Status(apierr.BadField("dirty_rate_mbps", "dirty_rate_mbps %d must not be negative (0: idle)", req.DirtyRateMbps))
	}
	return reply(s.f.SetDirtyRate(ctx, req))
}
