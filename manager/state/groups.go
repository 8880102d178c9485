package state

import (
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// DeviceGroup is one vendor and model of device the hosts offer, or one
// vGPU profile of their GPUs.
type DeviceGroup struct {
	Kind       acliv1.DeviceKind
	UUID, Name string
	PerHost    int // the most of it one host offers
}

// GpuFamily: GPUs are assigned and deassigned by one command whether
// whole or shared.
func GpuFamily(k acliv1.DeviceKind) bool {
	return k == acliv1.DeviceKind_kGpuPassthrough || k == acliv1.DeviceKind_kVirtualGpu
}

// sameName matches a device name written Vendor_Model or Vendor:Model, any case.
func sameName(name, ref string) bool {
	return strings.EqualFold(name, strings.Replace(ref, ":", "_", 1))
}

// DeviceGroup resolves a device group by name or UUID among the hosts'
// devices of kind; for a GPU, a vGPU profile's name or UUID names the
// profile (kind kVirtualGpu resolves profiles only).
func (tx *Tx) DeviceGroup(kind acliv1.DeviceKind, ref string) (DeviceGroup, error) {
	if g, ok := tx.vgpuProfile(ref); ok && GpuFamily(kind) {
		return g, nil
	} else if kind == acliv1.DeviceKind_kVirtualGpu {
		return DeviceGroup{}, tx.vgpuNotFound(ref)
	}
	groups := map[string]*DeviceGroup{}
	var names []string
	for _, h := range tx.Hosts() {
		count := map[string]int{}
		for _, d := range h.Devices {
			if d.Kind != kind {
				continue
			}
			g := groups[d.GroupUuid]
			if g == nil {
				g = &DeviceGroup{Kind: kind, UUID: d.GroupUuid, Name: DeviceName(d.Vendor, d.Model)}
				groups[d.GroupUuid] = g
				names = append(names, g.Name)
			}
			count[d.GroupUuid]++
			g.PerHost = max(g.PerHost, count[d.GroupUuid])
		}
	}
	for _, g := range groups {
		if strings.EqualFold(g.UUID, ref) || sameName(g.Name, ref) {
			return *g, nil
		}
	}
	what := GroupWord(kind)
	if len(groups) == 0 {
		return DeviceGroup{}, apierr.NotFoundBecause(what, ref, "no host has a passthrough "+DeviceWord(kind))
	}
	slices.Sort(names)
	return DeviceGroup{}, apierr.NotFound(what, ref, names)
}

// GroupWord is how a not-found error names what was looked for.
func GroupWord(kind acliv1.DeviceKind) string {
	if kind == acliv1.DeviceKind_kPcieDevice {
		return "pcie device group"
	}
	return "gpu"
}

// vgpuProfile resolves a vGPU profile name (any case, ':' for the first
// '_') or group UUID among the hosts' GPUs; ok is false when none
// matches. The most one host offers is the sum over its GPUs.
func (tx *Tx) vgpuProfile(ref string) (g DeviceGroup, ok bool) {
	most := 0
	for _, h := range tx.Hosts() {
		n := 0
		for _, d := range h.Devices {
			for _, p := range d.VgpuProfiles {
				if strings.EqualFold(p.GroupUuid, ref) || sameName(p.Name, ref) {
					g = DeviceGroup{Kind: acliv1.DeviceKind_kVirtualGpu, UUID: p.GroupUuid, Name: p.Name}
					n += int(p.Count)
				}
			}
		}
		most = max(most, n)
	}
	g.PerHost = most
	return g, g.UUID != ""
}

// vgpuNotFound is the error for mode=virtual with a name that is no
// profile: the nearest profiles by name.
func (tx *Tx) vgpuNotFound(ref string) error {
	var names []string
	for _, h := range tx.Hosts() {
		for _, d := range h.Devices {
			for _, p := range d.VgpuProfiles {
				if !slices.Contains(names, p.Name) {
					names = append(names, p.Name)
				}
			}
		}
	}
	if len(names) == 0 {
		return apierr.NotFoundBecause("vgpu profile", ref, "no host's GPU offers vGPU profiles")
	}
	slices.Sort(names)
	return apierr.NotFound("vgpu profile", ref, names)
}
