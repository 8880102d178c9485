package driver

import (
	"fmt"
	"strings"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// groupSpace makes a vendor and model's group UUID the same on every host,
// every run and every driver: a VM assigned a device group on one host
// finds it on another.
var groupSpace = uuid.MustParse("4c1c3a52-2f1e-4d0e-9f0a-6b1f3d6a5e01")

// DeviceGroup is the group UUID of a kind, vendor and model.
func DeviceGroup(kind acliv1.DeviceKind, vendor, model string) string {
	return uuid.NewSHA1(groupSpace, []byte(fmt.Sprintf("%d/%s/%s", kind, strings.ToLower(vendor), strings.ToLower(model)))).String()
}

// VgpuProfile describes a profile of a vendor and model's GPU: its name in
// acli's spelling (Nvidia_Tesla_M60-2Q, from the suffix 2Q) and its group.
func VgpuProfile(vendor, model, suffix, typeID string, count int) *acliv1.VgpuProfile {
	return &acliv1.VgpuProfile{
		Name: vendor + "_" + model + "-" + suffix, TypeId: typeID, Count: int32(count),
		GroupUuid: DeviceGroup(acliv1.DeviceKind_kVirtualGpu, vendor, model+"-"+suffix),
	}
}
