// Package scheduler decides where VMs run: placement of one VM, the target of
// a live migration, the evacuation plan of a host entering maintenance, the
// restart plan after a host failure, and the redundancy budget that limits how
// many hosts may be out at once.
//
// Everything here is a pure function of a Snapshot: no I/O, no clocks, no
// randomness, and the same answer for the same input whatever the order of
// its hosts and VMs. The manager builds a Snapshot from its model, asks, and
// carries out the answer itself.
//
// Rules, strongest first:
//
//   - must: the host is AcropolisNormal and schedulable; the VM's memory fits in
//     the host's free memory (memory is never over-committed); the host is in
//     the VM's host affinity set when it has one; the host's DevicePool can
//     give the VM its devices (passthrough or vGPU); never the VM's own host
//     when it is asked to move.
//   - should: no other member of one of the VM's anti-affinity groups on the host.
//   - soft: the host's vCPU ratio stays at or under Options.CPURatioLimit
//     (see Options); the host's CVM is up, so the VM's disks stay local.
//   - tie-break: most free memory, then fewest VMs, then lowest hypervisor IP,
//     then UUID.
package scheduler

// NodeState is a host's lifecycle state, as in the API's NodeState.
type NodeState int

// Node states.
const (
	// NodeNormal is AcropolisNormal: in service.
	NodeNormal NodeState = iota
	// NodeEnteringMaintenance is EnteringMaintenanceMode: being evacuated.
	NodeEnteringMaintenance
	// NodeInMaintenance is EnteredMaintenanceMode: out of service.
	NodeInMaintenance
	// NodeDown is kNodeDown: the manager no longer hears from it.
	NodeDown
)

func (s NodeState) String() string {
	switch s {
	case NodeNormal:
		return "AcropolisNormal"
	case NodeEnteringMaintenance:
		return "EnteringMaintenanceMode"
	case NodeInMaintenance:
		return "EnteredMaintenanceMode"
	case NodeDown:
		return "kNodeDown"
	}
	return "unknown node state"
}

// CVMState is the state of a host's controller VM, as in the API's CvmState.
type CVMState int

// CVM states.
const (
	CVMUp CVMState = iota
	CVMDown
	CVMMaintenance
)

func (s CVMState) String() string {
	switch s {
	case CVMUp:
		return "kCvmUp"
	case CVMDown:
		return "kCvmDown"
	case CVMMaintenance:
		return "kCvmMaintenance"
	}
	return "unknown CVM state"
}

// PowerState is a VM's power state.
type PowerState int

// Power states. Paused VMs hold their memory on their host, so the scheduler
// treats them like running ones.
const (
	PowerOff PowerState = iota
	PowerOn
	PowerPaused
)

// Host is one hypervisor as the scheduler sees it.
type Host struct {
	UUID string
	Name string
	// IP is the hypervisor IP; it names the host in messages and breaks ties.
	IP string
	// Cores is the number of physical CPU cores.
	Cores int
	// MemoryBytes is the memory available to VMs.
	MemoryBytes int64
	// MemoryUsedBytes and VCPUsUsed are what is committed on the host now:
	// its running VMs and any reservation the caller holds (e.g. the target
	// side of a migration in flight). Snapshot.Recount derives them from VMs.
	MemoryUsedBytes int64
	VCPUsUsed       int
	Schedulable     bool
	// UnschedulableReason is shown when the host is rejected for it.
	UnschedulableReason string
	State               NodeState
	CVM                 CVMState
	// Devices returns a fresh pool of the host's devices, those the VMs
	// running here hold taken (nil: the host has none).
	Devices func() DevicePool
}

// DevicePool is what a host's devices can still give, judged as the
// manager's DEVICE rule judges it at commit (state.DevicePool), so a plan
// never chooses a host the commit refuses. Plans book the VMs they move
// there and release those they move away.
type DevicePool interface {
	// Short says why the host cannot give v its devices beside those held
	// ("" when it can), e.g. "no free GPU Nvidia_Tesla_M60".
	Short(v *VM) string
	Book(v *VM)
	Release(v *VM)
}

// VM is one virtual machine as the scheduler sees it.
type VM struct {
	UUID        string
	Name        string
	VCPUs       int
	MemoryBytes int64
	Power       PowerState
	// Host is the UUID of the host the VM runs on (empty when off and unplaced).
	Host string
	// HostAffinity lists the host UUIDs the VM must run on; empty means any.
	HostAffinity []string
	// Agent VMs belong to their host: shut down for maintenance, never moved.
	Agent bool
	// Passthrough VMs hold a host device and cannot live-migrate.
	Passthrough bool
	// PinnedBy says what keeps a Passthrough VM on its host (default "a
	// passthrough device").
	PinnedBy string
	// Devices are the devices (passthrough or vGPU) the VM holds on its
	// host while it runs: a host takes it only when its DevicePool can give
	// them.
	Devices []Device
	// AntiAffinityGroups are the anti-affinity VM groups the VM belongs to.
	AntiAffinityGroups []string
	// HAPriority orders HA restarts: higher first; negative never restarts.
	HAPriority int
}

// Device is one device a VM needs: any device of a group, or a vGPU of a
// profile.
type Device struct {
	Group string // the device group's UUID
	Name  string // how messages name it, e.g. "GPU Nvidia_Tesla_M60"
}

// pinnedBy is what keeps a Passthrough VM on its host.
func (v *VM) pinnedBy() string {
	if v.PinnedBy != "" {
		return v.PinnedBy
	}
	return "a passthrough device"
}

// Running reports whether the VM holds resources on its host.
func (v *VM) Running() bool { return v.Power == PowerOn || v.Power == PowerPaused }

// Snapshot is the cluster state a decision is made on.
type Snapshot struct {
	Hosts []Host
	VMs   []VM
}

// Recount sets every host's MemoryUsedBytes and VCPUsUsed to the sum of its
// running VMs, for callers that do not track usage themselves.
func (s *Snapshot) Recount() {
	idx := make(map[string]int, len(s.Hosts))
	for i := range s.Hosts {
		idx[s.Hosts[i].UUID] = i
		s.Hosts[i].MemoryUsedBytes = 0
		s.Hosts[i].VCPUsUsed = 0
	}
	for i := range s.VMs {
		v := &s.VMs[i]
		if !v.Running() {
			continue
		}
		if hi, ok := idx[v.Host]; ok {
			s.Hosts[hi].MemoryUsedBytes += v.MemoryBytes
			s.Hosts[hi].VCPUsUsed += v.VCPUs
		}
	}
}

// HostRef names a host in answers.
type HostRef struct {
	UUID string
	Name string
	IP   string
}

// String renders "name (ip)", or whichever of the two is known.
func (h HostRef) String() string {
	switch {
	case h.Name != "" && h.IP != "" && h.Name != h.IP:
		return h.Name + " (" + h.IP + ")"
	case h.IP != "":
		return h.IP
	case h.Name != "":
		return h.Name
	}
	return h.UUID
}

// VMRef names a VM in answers.
type VMRef struct {
	UUID string
	Name string
}

func (v VMRef) String() string {
	if v.Name != "" {
		return v.Name
	}
	return v.UUID
}

func refOf(h *Host) HostRef { return HostRef{UUID: h.UUID, Name: h.Name, IP: h.IP} }

func vmRefOf(v *VM) VMRef { return VMRef{UUID: v.UUID, Name: v.Name} }

// Options tunes the soft rules and how VMs move. The zero value means the
// defaults.
type Options struct {
	// CPURatioLimit is the soft vCPU limit. A host's vCPU ratio is
	// (VCPUsUsed + the VM's vCPUs) / Cores, the committed vCPUs per physical
	// core once the VM is placed; hosts whose ratio would exceed the limit
	// are avoided while another host stays within it. Default 0.85, i.e. no
	// vCPU over-subscription and 15% headroom; set e.g. 3.4 to allow 4:1
	// over-subscription at the same headroom.
	CPURatioLimit float64
	// Offline says moves are offline (cold maintenance): a VM with
	// passthrough devices moves too, to a host with a free device of each.
	Offline bool
}

// DefaultCPURatioLimit is Options.CPURatioLimit when unset.
const DefaultCPURatioLimit = 0.85

func (o Options) cpuLimit() float64 {
	if o.CPURatioLimit > 0 {
		return o.CPURatioLimit
	}
	return DefaultCPURatioLimit
}
