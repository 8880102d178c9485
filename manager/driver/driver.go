// Package driver defines how clusterd puts its model on machines. The
// manager decides (placement, rules, tasks, persistence); a Driver only
// carries the decision out on a host and reports what hosts do on their own.
//
// Implementations: manager/driver/sim (in-process simulated hosts, the
// default) and manager/driver/libvirt (real libvirtd hosts).
//
// Contract:
//   - Every operation blocks until done or ctx ends, and is safe to call
//     concurrently for different VMs. The manager never issues two
//     operations on one VM at once.
//   - Hosts and VMs are passed as the manager's current records; drivers
//     must not modify them.
//   - Events reports host health; the manager owns the resulting model
//     changes (node state, CVM state, HA).
package driver

import (
	"context"
	"errors"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Driver is a hypervisor backend.
type Driver interface {
	// Name is "sim" or "libvirt"; it is shown as Cluster.driver.
	Name() string
	// Inventory proposes the cluster and hosts for a brand-new data dir. On a
	// data dir that already holds a cluster, the stored one wins and
	// Inventory is not used.
	Inventory() Inventory
	// Start begins managing the given hosts, knowing the VMs the manager has
	// on record (drivers reconcile with them: the sim adopts running ones).
	// It returns the stream of host events, closed when the driver closes.
	Start(ctx context.Context, hosts []*acliv1.Host, vms []*acliv1.Vm) (<-chan HostEvent, error)

	// PowerOn defines the VM on the host and starts it.
	PowerOn(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// PowerOff stops the VM at once (destroy).
	PowerOff(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// Shutdown asks the guest to shut down (ACPI) and waits until it is off.
	Shutdown(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// Reboot asks the guest to reboot (ACPI); the VM stays on its host.
	Reboot(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// Reset hard-resets the VM; it stays on its host.
	Reset(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// Undefine removes every trace of a stopped VM; host is nil when the VM
	// has no host. Undefining an unknown VM is not an error.
	Undefine(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// Migrate live-migrates a running VM from src to dst. progress, when
	// non-nil, is called after each step (pre-copy round). On error the VM
	// is still running on src.
	Migrate(ctx context.Context, vm *acliv1.Vm, src, dst *acliv1.Host, opts MigrateOptions, progress func(*acliv1.MigrationProgress)) error

	// Close stops the driver and closes the event stream.
	Close() error
}

// Inventory is the initial shape of a cluster.
type Inventory struct {
	Cluster *acliv1.Cluster
	Hosts   []*acliv1.Host
}

// MigrateOptions tune one live migration.
type MigrateOptions struct {
	// BandwidthMbps caps the transfer in megabits per second (0 = host link).
	BandwidthMbps int64
	// Deadline aborts the migration when it has not finished by then (zero = none).
	Deadline time.Time
}

// EventKind is what happened to a host.
type EventKind int

// Host event kinds.
const (
	// Heartbeat says the host is alive; it carries no state change.
	Heartbeat EventKind = iota + 1
	HostDown
	HostUp
	CvmDown
	CvmUp
	// VmStates reports VMs as their host sees them (HostEvent.Vms), so that
	// changes made outside clusterd (virsh, a guest powering itself off, a
	// crash) are reflected in the model rather than fought.
	VmStates
	// HostDevices reports the passthrough devices a host has (HostEvent.Devices),
	// discovered when it connects.
	HostDevices
)

func (k EventKind) String() string {
	switch k {
	case Heartbeat:
		return "heartbeat"
	case HostDown:
		return "host down"
	case HostUp:
		return "host up"
	case CvmDown:
		return "cvm down"
	case CvmUp:
		return "cvm up"
	case VmStates:
		return "vm states"
	case HostDevices:
		return "host devices"
	}
	return "unknown"
}

// HostEvent is one report from a host.
type HostEvent struct {
	Kind     EventKind
	HostUUID string
	// Time is when it happened; for VmStates, when the driver began reading
	// the host, so the manager can tell a report from before its own last
	// change to a VM (and ignore it) from one after.
	Time time.Time
	// Reason explains a down event, e.g. "heartbeats stopped (fault injected)".
	Reason string
	// Vms, for VmStates: what the host reports about these VMs.
	Vms []VmObservation
	// Complete, for VmStates: Vms lists every VM the host knows, so a VM
	// recorded running on this host but not listed is off.
	Complete bool
	// Devices, for HostDevices: every passthrough device of the host.
	Devices []*acliv1.HostDevice
}

// VmObservation is one VM as a host reports it.
type VmObservation struct {
	VmUUID string
	// PowerState is kOn, kPaused or kOff (kOff also when the host does not
	// have the VM at all).
	PowerState acliv1.PowerState
	// RunningElsewhere lists the other hosts that run the VM too: a copy
	// left on a host that was unreachable while HA restarted the VM.
	RunningElsewhere []string
}

// ErrHostExists is wrapped by JoinHost when the machine is already
// managed (under another name or address).
var ErrHostExists = errors.New("host already in the cluster")

// HostJoiner is implemented by drivers whose hosts join and leave the
// cluster at run time (libvirt); the sim's hosts come from its config.
type HostJoiner interface {
	// CheckHost validates how a prospective host is reached (its libvirt
	// URI) without connecting; errors describe the bad setting.
	CheckHost(h *acliv1.Host) error
	// JoinHost connects to a new host, returns its record completed with
	// what the host reports (UUID, capacity, hypervisor) and begins
	// managing it. On error nothing changed.
	JoinHost(ctx context.Context, h *acliv1.Host) (*acliv1.Host, error)
	// LeaveHost stops managing a host.
	LeaveHost(hostUUID string) error
}

// Reacher is implemented by drivers that know whether a host answers them
// now (libvirt: its connection is up). A host recorded down that answers
// is coming back (or was only late to report: the manager stalled, its
// heartbeats dropped): HA does not fence its VMs by powering them off
// there, and they stay where they run.
type Reacher interface {
	Answers(host *acliv1.Host) bool
}

// HostFencer is implemented by drivers that can prove a host dead, for HA
// to restart the VMs of a down host it cannot power them off on.
type HostFencer interface {
	// FenceHost returns nil only once the host is known to run no guest
	// any more (its hypervisor and every guest process gone, or the
	// machine powered off); otherwise it says why not.
	FenceHost(ctx context.Context, host *acliv1.Host) error
}

// VmFencer is implemented by drivers whose storage can cut one host's copy
// of a VM off its vDisks (the data path refusing that host's iSCSI
// sessions): HA's fence for a VM it cannot power off on its down host.
type VmFencer interface {
	// FenceVm returns nil once the VM's copy on host can no longer write to
	// the VM's vDisks; otherwise it says why not.
	FenceVm(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
}

// FaultInjector is implemented by drivers that can simulate failures (sim).
// Each call returns once the change is in effect, with the HostEvent that
// reports the host's new state. The driver does not queue that event: the
// caller applies it, so a fault reaches the manager by one path.
type FaultInjector interface {
	FailHost(hostUUID string) (HostEvent, error)
	RecoverHost(hostUUID string) (HostEvent, error)
	FailCvm(hostUUID string) (HostEvent, error)
	RecoverCvm(hostUUID string) (HostEvent, error)
}

// Imported describes an image a Storage driver imported.
type Imported struct {
	Size         int64  // bytes of the raw image
	SHA256       string // of the bytes fetched
	SourceFormat string // raw, qcow2, ...
}

// Storage is implemented by drivers that hold vDisks and images as volumes
// in storage containers. Volumes are named by the vDisk (or image) UUID.
type Storage interface {
	// ContainerCapacity is how many bytes a container can hold.
	ContainerCapacity(container string) (int64, error)
	// ImportImage fetches url (http, https or file) into a new volume,
	// reporting bytes read; on failure no volume remains.
	ImportImage(ctx context.Context, container, id, url, sha256 string, progress func(done, total int64)) (Imported, error)
	// CloneVolume makes volume dst a copy of src, grown to size when larger.
	CloneVolume(ctx context.Context, container, src, dst string, size int64) error
	// DeleteVolume removes a volume; a missing one is not an error.
	DeleteVolume(ctx context.Context, container, id string) error
	// CreateVolume makes an empty (thin) volume of size bytes.
	CreateVolume(ctx context.Context, container, id string, size int64) error
	// ResizeVolume grows a volume to size bytes.
	ResizeVolume(ctx context.Context, container, id string, size int64) error
	// FileSize is the size of a file given by its container path,
	// /<container>/<path>.
	FileSize(ctx context.Context, path string) (int64, error)
	// CloneFile makes volume dst a copy of the file at a container path,
	// grown to size when larger.
	CloneFile(ctx context.Context, path, container, dst string, size int64) error
}

// ISCSI is implemented by drivers whose vDisks are served over iSCSI for
// real: every CVM exports the volume groups' vDisks, the data services IP
// follows the model's placement of external sessions, and the sessions the
// CVMs really serve can be listed.
type ISCSI interface {
	// ExportVolume serves a volume as LUN 1 of target on every CVM; a
	// vDisk never written may have no volume yet: it gets an empty one of
	// size bytes, as a VM's vDisks get theirs at power-on.
	ExportVolume(ctx context.Context, target, container, id string, size int64) error
	// PlaceSessions hands over the model's external sessions (initiator,
	// target, CVM IP); logins through the data services IP follow them.
	PlaceSessions(sessions []ServedSession)
	// ServedSessions lists the sessions the CVMs serve; ok is false when
	// the driver has no data path running.
	ServedSessions() (sessions []ServedSession, ok bool)
}

// ServedSession is one iSCSI session and the CVM serving it.
type ServedSession struct {
	Initiator, Target string
	CVMIP             string
	Addr              string // the initiator's IP (listed sessions only)
}

// Pauser is implemented by drivers that can pause a running VM, so that
// copies of its vDisks taken meanwhile are crash-consistent: every write
// the guest saw completed is in them, none issued later is. resume undoes
// the pause.
type Pauser interface {
	Pause(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) (resume func() error, err error)
}
