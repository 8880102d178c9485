// Power-on placement: the manager calls a PlaceFunc (default MostFreeMemory)
// on a plain snapshot of the hosts, which is cheap enough for every power-on
// of a large cluster; VMs in anti-affinity groups are placed by Place
// instead, which sees the other VMs.

package scheduler

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Candidate is one host a VM may power on on, as the manager sees it now.
type Candidate struct {
	UUID string
	Name string
	IP   netip.Addr
	// MemoryBytes is the capacity; MemoryUsedBytes includes reservations of
	// VMs that are powering on.
	MemoryBytes     int64
	MemoryUsedBytes int64
	NumVms          int
	// CPUCores and VcpusUsed feed the soft CPU rule.
	CPUCores  int
	VcpusUsed int
	// Unavailable says why nothing may be placed here ("host is down",
	// "host is not schedulable: reason"); empty when the host is usable.
	Unavailable string
}

// Free returns the unreserved memory.
func (h Candidate) Free() int64 { return h.MemoryBytes - h.MemoryUsedBytes }

// PlaceRequest is the VM to place.
type PlaceRequest struct {
	VmName      string
	MemoryBytes int64
	Vcpus       int
	// Affinity lists the host UUIDs the VM must run on; empty means any.
	Affinity []string
	// Devices, when set, says why a host cannot give the VM its
	// passthrough devices ("" when it can).
	Devices func(hostUUID string) string
}

// PlaceRejection is why one host cannot take the VM.
type PlaceRejection struct {
	Host Candidate
	// Kind is "MEMORY", "UNAVAILABLE", "AFFINITY" or "DEVICE".
	Kind   string
	Reason string
	// Shortfall is the missing memory in bytes for a MEMORY rejection.
	Shortfall int64
}

// PlaceFunc picks a host UUID for the request, or returns "" and one rejection
// per host. It must be deterministic for the same input.
type PlaceFunc func(hosts []Candidate, req PlaceRequest) (string, []PlaceRejection)

// CheckCandidate returns why h cannot take req, or nil when it can.
func CheckCandidate(h Candidate, req PlaceRequest) *PlaceRejection {
	if h.Unavailable != "" {
		return &PlaceRejection{Host: h, Kind: "UNAVAILABLE", Reason: h.Unavailable}
	}
	if len(req.Affinity) > 0 && !slices.Contains(req.Affinity, h.UUID) {
		return &PlaceRejection{Host: h, Kind: "AFFINITY", Reason: fmt.Sprintf("vm %s has host affinity elsewhere", req.VmName)}
	}
	if req.Devices != nil {
		if why := req.Devices(h.UUID); why != "" {
			return &PlaceRejection{Host: h, Kind: "DEVICE", Reason: why}
		}
	}
	if free := h.Free(); free < req.MemoryBytes {
		return &PlaceRejection{Host: h, Kind: "MEMORY", Shortfall: req.MemoryBytes - free,
			Reason: fmt.Sprintf("needs %s, %s free (short by %s)", Bytes(req.MemoryBytes), Bytes(max(free, 0)), Bytes(req.MemoryBytes-free))}
	}
	return nil
}

// MostFreeMemory places on the usable host with the most free memory, then
// the fewest VMs, then the lowest IP; hosts the VM would push above the
// scheduler's soft vCPU limit are used only when no other host can take it.
func MostFreeMemory(hosts []Candidate, req PlaceRequest) (string, []PlaceRejection) {
	var best *Candidate
	bestHot := false
	var rej []PlaceRejection
	for i := range hosts {
		h := &hosts[i]
		if r := CheckCandidate(*h, req); r != nil {
			rej = append(rej, *r)
			continue
		}
		hot := h.cpuHot(req.Vcpus)
		if best == nil || (bestHot && !hot) || (hot == bestHot && moreFree(h, best)) {
			best, bestHot = h, hot
		}
	}
	if best == nil {
		return "", rej
	}
	return best.UUID, nil
}

// cpuHot reports whether placing vcpus more would exceed the soft limit.
func (h *Candidate) cpuHot(vcpus int) bool {
	return h.CPUCores > 0 && float64(h.VcpusUsed+vcpus) > DefaultCPURatioLimit*float64(h.CPUCores)
}

func moreFree(a, b *Candidate) bool {
	if c := cmp.Compare(a.Free(), b.Free()); c != 0 {
		return c > 0
	}
	if a.NumVms != b.NumVms {
		return a.NumVms < b.NumVms
	}
	return a.IP.Less(b.IP)
}

// Bytes formats a size the way acli prints it (binary units).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
