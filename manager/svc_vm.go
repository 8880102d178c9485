package manager

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// vmService is the VM feature behind manager/rpc's adapter.
type vmService struct {
	m *Manager
}

// chooseHostLocked picks where a VM powers on: the named host if it can
// take it, else the placement function's choice. Refusals list every
// violated rule (per host when placement finds nothing).
func (m *Manager) chooseHostLocked(v *acliv1.Vm, named string) (*hostRec, error) {
	preq := scheduler.PlaceRequest{VmName: v.Name, MemoryBytes: state.MemoryReserved(v), Vcpus: int(v.NumVcpus), Affinity: v.HostAffinity, Devices: m.deviceFit(v)}
	if named != "" {
		h, err := m.hostLocked("host", named)
		if err != nil {
			return nil, err
		}
		for _, c := range m.candidatesLocked() {
			if c.UUID != h.pb.Uuid {
				continue
			}
			if rej := scheduler.CheckCandidate(c, preq); rej != nil {
				return nil, apierr.FailedPrecondition(fmt.Sprintf("cannot power on vm %s on host %s", v.Name, h.pb.Name), violation(*rej))
			}
		}
		return h, nil
	}
	if r, ok := m.placeWithRulesLocked(v); ok {
		return r, nil
	}
	id, rejs := m.place(m.candidatesLocked(), preq)
	if id == "" {
		vs := make([]apierr.Violation, len(rejs))
		for i, r := range rejs {
			vs[i] = violation(r)
		}
		if len(vs) == 0 {
			return nil, apierr.Precondition("NO_HOST", "cluster", "vm %s cannot power on: the cluster has no hosts", v.Name)
		}
		return nil, apierr.FailedPrecondition(fmt.Sprintf("vm %s (%s) fits on no host", v.Name, scheduler.Bytes(v.MemoryBytes)), vs...)
	}
	return m.hostAt(id), nil
}

func violation(r scheduler.PlaceRejection) apierr.Violation {
	return apierr.Violation{
		Type: r.Kind, Subject: "host:" + r.Host.Name,
		Description: fmt.Sprintf("host %s (%s): %s", r.Host.Name, r.Host.IP, r.Reason),
	}
}

// ---- disks ----

var diskBuses = []string{"scsi", "ide", "sata", "pci"}

// maxDiskIndex is the number of devices each bus takes.
var maxDiskIndex = map[string]int32{"scsi": 256, "ide": 4, "sata": 6, "pci": 32}

func checkBus(bus string) (string, error) {
	b := strings.ToLower(bus)
	if slices.Contains(diskBuses, b) {
		return b, nil
	}
	if s := apierr.Nearest(b, diskBuses); s != "" {
		return "", apierr.BadField("bus", "bus %q is unknown (did you mean %q?)", bus, s)
	}
	return "", apierr.BadField("bus", "bus %q is unknown; use scsi, ide, sata or pci", bus)
}

func diskName(d *acliv1.Disk) string { return fmt.Sprintf("%s.%d", d.Bus, d.Index) }

// nextDiskIndex is the requested index when free, else the first free one.
func nextDiskIndex(cur *acliv1.Vm, bus string, want *int32) (int32, error) {
	used := map[int32]bool{}
	for _, d := range cur.Disks {
		if d.Bus == bus {
			used[d.Index] = true
		}
	}
	if want != nil {
		if used[*want] {
			return 0, apierr.AlreadyExists("disk", fmt.Sprintf("%s.%d", bus, *want), "vm "+cur.Name+" already has this device; pick another index or omit it")
		}
		return *want, nil
	}
	for i := int32(0); i < maxDiskIndex[bus]; i++ {
		if !used[i] {
			return i, nil
		}
	}
	return 0, apierr.Precondition("DISK_SLOTS", "vm:"+cur.Name, "the %s bus of vm %s is full (%d devices); use another bus", bus, cur.Name, maxDiskIndex[bus])
}

func (s vmService) CreateDisk(ctx context.Context, req *acliv1.CreateDiskRequest) (*acliv1.Task, error) {
	bus := req.Bus
	if bus == "" {
		bus = "scsi"
		if req.Cdrom {
			bus = "ide"
		}
	}
	bus, err := checkBus(bus)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Cdrom && bus == "pci":
		return nil, apierr.BadField("bus", "a CD-ROM cannot be on the pci bus; use ide, sata or scsi")
	case req.SizeBytes < 0 || (!req.Cdrom && req.SizeBytes == 0 && req.CloneFromImage == "" && req.CloneFromVmdisk == "" && req.CloneFromAdsfFile == ""):
		return nil, apierr.BadField("size_bytes", "disk size %d must be greater than 0, e.g. size=20G", req.SizeBytes)
	case req.Index != nil && (*req.Index < 0 || *req.Index >= maxDiskIndex[bus]):
		return nil, apierr.BadField("index", "index %d is out of range for the %s bus (0-%d)", *req.Index, bus, maxDiskIndex[bus]-1)
	}
	container := req.Container
	if container == "" {
		container = "default-container"
	}
	if req.CloneFromImage != "" || req.CloneFromVmdisk != "" || req.CloneFromAdsfFile != "" {
		return s.m.createDiskClone(ctx, req, bus, container)
	}
	var made *acliv1.Disk
	task, err := s.m.vms.Edit(ctx, req.Vm, acliv1.TaskOperation_kVmDiskCreate, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		idx, err := nextDiskIndex(cur, bus, req.Index)
		if err == nil {
			container, err = s.m.containerLocked(container)
		}
		if err == nil {
			err = s.m.checkCapacityLocked(container, req.SizeBytes, "disk of vm "+cur.Name)
		}
		if err != nil {
			return nil, "", err
		}
		d := &acliv1.Disk{Index: idx, Uuid: uuid.NewString(), Bus: bus, SizeBytes: req.SizeBytes, Container: container, Cdrom: req.Cdrom}
		made = d
		v := proto.Clone(cur).(*acliv1.Vm)
		v.Disks = append(v.Disks, d)
		slices.SortFunc(v.Disks, func(a, b *acliv1.Disk) int {
			return cmp.Or(strings.Compare(a.Bus, b.Bus), cmp.Compare(a.Index, b.Index))
		})
		what := scheduler.Bytes(d.SizeBytes)
		if d.Cdrom {
			what = "CD-ROM"
		}
		return v, fmt.Sprintf("disk %s (%s) added to vm %s", diskName(d), what, cur.Name), nil
	})
	// The volume follows its record; one not made here is made, empty, at
	// power-on.
	if err == nil && state.HasData(made) {
		if st := s.m.storageDriver(); st != nil {
			if verr := st.CreateVolume(ctx, made.Container, made.Uuid, made.SizeBytes); verr != nil {
				s.m.log.Warn("creating a new disk's volume", "disk", made.Uuid, "err", verr)
			}
		}
	}
	return task, err
}

func (s vmService) DeleteDisk(ctx context.Context, req *acliv1.DeleteDiskRequest) (*acliv1.Task, error) {
	bus := req.Bus
	if bus == "" {
		bus = "scsi"
	}
	bus, err := checkBus(bus)
	if err != nil {
		return nil, err
	}
	var gone *acliv1.Disk
	task, err := s.m.vms.Edit(ctx, req.Vm, acliv1.TaskOperation_kVmDiskDelete, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		name := fmt.Sprintf("%s.%d", bus, req.Index)
		var names []string
		v := proto.Clone(cur).(*acliv1.Vm)
		found := false
		v.Disks = slices.DeleteFunc(v.Disks, func(d *acliv1.Disk) bool {
			names = append(names, diskName(d))
			if d.Bus == bus && d.Index == req.Index {
				found, gone = true, d
			}
			return d.Bus == bus && d.Index == req.Index
		})
		if !found {
			return nil, "", apierr.NotFound("disk", name+" of vm "+cur.Name, names)
		}
		if v.BootDiskAddr == name {
			v.BootDiskAddr = ""
		}
		return v, fmt.Sprintf("disk %s removed from vm %s", name, cur.Name), nil
	})
	// The record went first: a volume left by a failure here is unused
	// space, never a disk without its data.
	if err == nil && gone.VolumeGroupUuid == "" {
		if st := s.m.storageDriver(); st != nil {
			if derr := st.DeleteVolume(ctx, cmp.Or(gone.Container, defaultContainer), gone.Uuid); derr != nil {
				s.m.log.Warn("removing a deleted disk's volume", "disk", gone.Uuid, "err", derr)
			}
		}
	}
	return task, err
}
