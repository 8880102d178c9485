package scheduler

import (
	"fmt"
	"strings"
)

// OutHost is a host that counts against the redundancy budget, and why.
type OutHost struct {
	Host HostRef
	Why  string // e.g. "EnteredMaintenanceMode", "kCvmMaintenance"
}

func (o OutHost) String() string { return o.Host.String() + " [" + o.Why + "]" }

// Out lists the hosts that are out of service: node entering or in
// maintenance or down, or CVM in maintenance or down (its copies of the data
// are unavailable either way). A host counts once, whatever the cause.
func Out(hosts []Host) []OutHost {
	var out []OutHost
	for i := range hosts {
		if why := outReason(&hosts[i]); why != "" {
			out = append(out, OutHost{Host: refOf(&hosts[i]), Why: why})
		}
	}
	sortFunc(out, func(a, b OutHost) bool {
		if c := compareIP(a.Host.IP, b.Host.IP); c != 0 {
			return c < 0
		}
		return a.Host.UUID < b.Host.UUID
	})
	return out
}

func outReason(h *Host) string {
	var why []string
	if h.State != NodeNormal {
		why = append(why, h.State.String())
	}
	if h.CVM != CVMUp {
		why = append(why, h.CVM.String())
	}
	return strings.Join(why, ", ")
}

// RedundancyError refuses taking one more host out.
type RedundancyError struct {
	RF  int
	Out []OutHost // the hosts already out
}

func (e *RedundancyError) Error() string {
	names := make([]string, len(e.Out))
	for i, o := range e.Out {
		names[i] = o.String()
	}
	verb := "is"
	if len(e.Out) > 1 {
		verb = "are"
	}
	hosts := "hosts"
	if e.RF-1 == 1 {
		hosts = "host"
	}
	return fmt.Sprintf("redundancy factor %d allows %d %s out at a time and %s %s already out",
		e.RF, e.RF-1, hosts, strings.Join(names, ", "), verb)
}

// CheckRedundancy says whether host hostUUID may go out (host or CVM
// maintenance) with redundancy factor rf: at most rf-1 hosts may be out at
// once. A host that is already out may change how it is out (e.g. its CVM
// enters maintenance while the node is in maintenance). It returns nil when
// allowed, a *RedundancyError naming the hosts already out when not.
func CheckRedundancy(rf int, hosts []Host, hostUUID string) error {
	if rf < 1 {
		return fmt.Errorf("redundancy factor %d is invalid (expected 2 or 3)", rf)
	}
	found := false
	for i := range hosts {
		if hosts[i].UUID == hostUUID {
			found = true
			if outReason(&hosts[i]) != "" {
				return nil
			}
		}
	}
	if !found {
		return fmt.Errorf("host %s is not in the cluster", hostUUID)
	}
	out := Out(hosts)
	if len(out)+1 <= rf-1 {
		return nil
	}
	if len(out) == 0 {
		return fmt.Errorf("redundancy factor %d allows no host out at a time", rf)
	}
	return &RedundancyError{RF: rf, Out: out}
}
