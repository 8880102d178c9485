package state

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// Rules a commit can break (the Rule of a Violation).
const (
	RuleOneHost    = "ONE_HOST"           // a running VM is on exactly one known host
	RulePlacement  = "PLACEMENT"          // no VM lands on a down, unschedulable or maintenance host
	RuleMemory     = "MEMORY"             // no host's memory is over-committed, arrivals counted
	RuleRedundancy = "REDUNDANCY"         // at most RF-1 hosts out
	RuleName       = "NAME"               // names follow the alphabet and are unique where they must be
	RuleCapacity   = "CONTAINER_CAPACITY" // no container holds more than its size
	RuleIP         = "IP"                 // a NIC address is inside its network and no other NIC's there
	RuleMAC        = "MAC"                // no two NICs have one MAC
)

// Violation is one rule a commit would break.
type Violation struct {
	Rule        string
	Subject     string // "host:h1", "vm:web01"
	Description string
	// Holder is, for RuleBusy, the task holding Subject.
	Holder string
}

// ViolationError refuses a commit; it lists every rule it would break.
type ViolationError struct {
	Violations []Violation
}

// GRPCStatus is the refusal as the API answers it: FailedPrecondition
// with one typed violation per rule broken.
func (e *ViolationError) GRPCStatus() *status.Status {
	vs := make([]apierr.Violation, len(e.Violations))
	for i, v := range e.Violations {
		vs[i] = apierr.Violation{Type: v.Rule, Subject: v.Subject, Description: v.Description}
	}
	return status.Convert(apierr.FailedPrecondition("", vs...))
}

// Refused reports whether err is a commit the rules refused.
func Refused(err error) bool {
	var ve *ViolationError
	return errors.As(err, &ve)
}

func (e *ViolationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Description
	}
	return strings.Join(parts, "; ")
}

// Unavailable says why nothing may be placed on a host ("" if usable).
func Unavailable(h *acliv1.Host) string {
	switch h.NodeState {
	case acliv1.NodeState_kNodeDown:
		return "host is down"
	case acliv1.NodeState_EnteringMaintenanceMode:
		return "host is entering maintenance mode"
	case acliv1.NodeState_EnteredMaintenanceMode:
		return "host is in maintenance mode"
	}
	if !h.Schedulable {
		if h.SchedulableReason != "" {
			return "host is not schedulable: " + h.SchedulableReason
		}
		return "host is not schedulable"
	}
	return ""
}

func label(h *acliv1.Host) string { return fmt.Sprintf("%s (%s)", h.Name, h.HypervisorIp) }

// check returns the rules the staged writes would break (db.mu read-held).
func (tx *Tx) check() []Violation {
	var vs []Violation
	add := func(rule, subject, format string, args ...any) {
		vs = append(vs, Violation{Rule: rule, Subject: subject, Description: fmt.Sprintf(format, args...)})
	}
	hostNames, hostIPs, netNames, nicIPs, macs := map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
	memChecked := map[string]bool{}
	haSubject := "" // a VM arriving or growing, or the cluster's HA settings changing
	for _, w := range tx.writes {
		switch {
		case w.Key == ClusterKey:
			haSubject = "cluster"
		case strings.HasPrefix(w.Key, HostPrefix):
			id := strings.TrimPrefix(w.Key, HostPrefix)
			prev := tx.db.hosts[id]
			next, _ := w.Msg.(*acliv1.Host)
			if next == nil {
				if on := tx.VmsOn(id); len(on) > 0 && prev != nil {
					add(RuleOneHost, "host:"+prev.Name, "host %s cannot be removed: %d VMs run on it (%s first)", label(prev), len(on), on[0].Name)
				}
				continue
			}
			if prev == nil || prev.Name != next.Name {
				if err := CheckName("host", next.Name); err != nil {
					add(RuleName, "host:"+next.Name, "%v", err)
				}
			}
			if other := tx.hostNamed(next.Name, hostNames); other != "" && other != id {
				add(RuleName, "host:"+next.Name, "host name %s is taken by host %s", next.Name, other)
			}
			hostNames[next.Name] = id
			if next.HypervisorIp != "" {
				if other := tx.hostWithIP(next.HypervisorIp, hostIPs); other != "" && other != id {
					add(RuleName, "host:"+next.Name, "hypervisor IP %s of host %s is taken by host %s", next.HypervisorIp, next.Name, other)
				}
				hostIPs[next.HypervisorIp] = id
			}
			if next.NodeState == acliv1.NodeState_EnteredMaintenanceMode && prev.GetNodeState() != next.NodeState {
				if on := tx.VmsOn(id); len(on) > 0 {
					add(RulePlacement, "host:"+next.Name, "host %s cannot have entered maintenance mode: %d VM(s) run on it (%s first)", label(next), len(on), on[0].Name)
				}
			}
			if c := tx.Cluster(); c != nil {
				if err := CheckRedundancy(int(c.RedundancyFactor), tx.Hosts(), prev, next); err != nil {
					add(RuleRedundancy, "host:"+next.Name, "cannot take out host %s: %v", label(next), err)
				}
			}
		case strings.HasPrefix(w.Key, VmPrefix):
			id := strings.TrimPrefix(w.Key, VmPrefix)
			prev := tx.db.vms[id]
			next, _ := w.Msg.(*acliv1.Vm)
			if next == nil {
				continue
			}
			if prev == nil || prev.Name != next.Name {
				if err := CheckName("vm", next.Name); err != nil {
					add(RuleName, "vm:"+next.Name, "%v", err)
				}
			}
			if why := OffOnly(prev, next); why != "" {
				add(RulePowerState, "vm:"+next.Name, "%s", why)
			}
			vs = append(vs, tx.checkIPs(id, prev, next, nicIPs)...)
			vs = append(vs, tx.checkMACs(id, prev, next, macs)...)
			running := next.PowerState == acliv1.PowerState_kOn || next.PowerState == acliv1.PowerState_kPaused
			if !running {
				continue
			}
			h := tx.Host(next.HostUuid)
			if h == nil {
				add(RuleOneHost, "vm:"+next.Name, "vm %s is %s but recorded on no known host (%q)", next.Name, strings.TrimPrefix(next.PowerState.String(), "k"), next.HostUuid)
				continue
			}
			if tx.observed {
				continue // where the hosts report it; not a decision to judge
			}
			vs = append(vs, tx.checkDevices(next, h)...)
			arriving := !Placed(prev) || prev.HostUuid != next.HostUuid
			if why := Unavailable(h); arriving && why != "" {
				add(RulePlacement, "host:"+h.Name, "vm %s cannot be placed on host %s: %s", next.Name, label(h), why)
			}
			grows := arriving || MemoryReserved(next) > MemoryReserved(prev)
			if grows {
				haSubject = "vm:" + next.Name
			}
			if grows && !memChecked[h.Uuid] {
				memChecked[h.Uuid] = true
				used, held := tx.MemoryUsed(h.Uuid), tx.Reserved(h.Uuid)
				if used+held > h.MemoryBytes {
					add(RuleMemory, "host:"+h.Name, "host %s would be over-committed: VMs there take %d MiB and %d MiB are held for VMs on their way, of %d MiB",
						label(h), used>>20, held>>20, h.MemoryBytes>>20)
				}
			}
		case strings.HasPrefix(w.Key, NetworkPrefix):
			id := strings.TrimPrefix(w.Key, NetworkPrefix)
			next, _ := w.Msg.(*acliv1.Network)
			if next == nil {
				continue
			}
			other := netNames[next.Name]
			if other == "" {
				if o, _ := tx.db.nets.Named(next.Name); o != nil && tx.Network(o.Uuid).GetName() == next.Name {
					other = o.Uuid
				}
			}
			if other != "" && other != id {
				add(RuleName, "network:"+next.Name, "network name %s is taken by network %s", next.Name, other)
			}
			netNames[next.Name] = id
		case strings.HasPrefix(w.Key, ImagePrefix), strings.HasPrefix(w.Key, SnapshotPrefix):
			vs = append(vs, tx.checkStorageName(w)...)
		}
	}
	tx.checkCapacity(add)
	if why := tx.HAShortfall(nil, ""); haSubject != "" && why != "" {
		add(RuleHAReservation, haSubject, "%s", why)
	}
	return vs
}

// hostNamed is the UUID of the host named name after the writes staged so
// far (seen: the names of hosts written earlier in the transaction).
func (tx *Tx) hostNamed(name string, seen map[string]string) string {
	if id := seen[name]; id != "" {
		return id
	}
	if id := tx.db.hostName[name]; id != "" && tx.Host(id).GetName() == name {
		return id
	}
	return ""
}

func (tx *Tx) hostWithIP(ip string, seen map[string]string) string {
	if id := seen[ip]; id != "" {
		return id
	}
	if id := tx.db.hostIP[ip]; id != "" && tx.Host(id).GetHypervisorIp() == ip {
		return id
	}
	return ""
}
