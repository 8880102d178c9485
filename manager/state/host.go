// Package state holds the rules the manager enforces where a change is
// committed: how a host's state may change (one transition function for
// operators, tasks and failure reports alike), the redundancy budget, and the
// alphabet of entity names. Everything here is a pure function of records,
// so the commit path and the tests run the same code.
package state

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// HostChange is one thing that can happen to a host.
type HostChange int

// Observations come from the driver; the others from an operator or a task.
const (
	HostDown HostChange = iota + 1
	HostUp
	CvmDown
	CvmUp
	// EnterMaintenance records the operator's intent and starts the
	// evacuation (EnteringMaintenanceMode).
	EnterMaintenance
	// MaintenanceEntered ends a finished evacuation.
	MaintenanceEntered
	// ExitMaintenance ends the operator's intent.
	ExitMaintenance
	EnterCvmMaintenance
	ExitCvmMaintenance
)

var changeNames = map[HostChange]string{
	HostDown: "host down", HostUp: "host up", CvmDown: "cvm down", CvmUp: "cvm up",
	EnterMaintenance: "enter maintenance", MaintenanceEntered: "maintenance entered",
	ExitMaintenance: "exit maintenance", EnterCvmMaintenance: "enter cvm maintenance",
	ExitCvmMaintenance: "exit cvm maintenance",
}

func (c HostChange) String() string {
	if s, ok := changeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("HostChange(%d)", int(c))
}

// TransitionError refuses a change the host's current state does not allow.
type TransitionError struct {
	Host   string
	Change HostChange
	Reason string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("host %s: cannot %s: %s", e.Host, e.Change, e.Reason)
}

// GRPCStatus is the refusal as the API answers it (HOST_STATE).
func (e *TransitionError) GRPCStatus() *status.Status {
	return status.Convert(apierr.Precondition("HOST_STATE", "host:"+e.Host, "%v", e))
}

// TransitionHost returns the host record after change c, or cur itself when
// c changes nothing. Operator intent (maintenance of the node or the CVM) is
// kept apart from what is observed: a failure changes the observed state
// only, and a recovery restores the state the intent asks for, so only the
// operator ends maintenance. A down host never becomes in or out of
// maintenance by a task.
func TransitionHost(cur *acliv1.Host, c HostChange) (*acliv1.Host, error) {
	cur = WithIntent(cur)
	refuse := func(format string, args ...any) error {
		return &TransitionError{Host: cur.Name, Change: c, Reason: fmt.Sprintf(format, args...)}
	}
	down := cur.NodeState == acliv1.NodeState_kNodeDown
	next := proto.Clone(cur).(*acliv1.Host)
	switch c {
	case HostDown:
		if down {
			return cur, nil
		}
		next.NodeState, next.CvmState = acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown
	case HostUp:
		if !down {
			return cur, nil
		}
		next.NodeState = acliv1.NodeState_AcropolisNormal
		if cur.MaintenanceRequested {
			// Its VMs were restarted elsewhere while it was down: nothing
			// is left to evacuate.
			next.NodeState = acliv1.NodeState_EnteredMaintenanceMode
		}
		next.CvmState = cvmWanted(cur)
	case CvmDown:
		if down || cur.CvmState == acliv1.CvmState_kCvmDown {
			return cur, nil
		}
		next.CvmState = acliv1.CvmState_kCvmDown
	case CvmUp:
		if down || cur.CvmState != acliv1.CvmState_kCvmDown {
			return cur, nil
		}
		next.CvmState = cvmWanted(cur)
	case EnterMaintenance:
		if down {
			return nil, refuse("it is down; recover it first")
		}
		next.MaintenanceRequested = true
		if cur.NodeState == acliv1.NodeState_AcropolisNormal {
			next.NodeState = acliv1.NodeState_EnteringMaintenanceMode
		}
	case MaintenanceEntered:
		switch {
		case down:
			return nil, refuse("it went down during its evacuation")
		case !cur.MaintenanceRequested:
			return nil, refuse("its maintenance was ended meanwhile")
		}
		next.NodeState = acliv1.NodeState_EnteredMaintenanceMode
	case ExitMaintenance:
		if down {
			return nil, refuse("it is down; recover it first")
		}
		next.MaintenanceRequested = false
		next.NodeState = acliv1.NodeState_AcropolisNormal
	case EnterCvmMaintenance:
		if down {
			return nil, refuse("it is down; recover it first")
		}
		if cur.CvmState == acliv1.CvmState_kCvmDown {
			return nil, refuse("its CVM is down; it is already out of service")
		}
		next.CvmMaintenanceRequested = true
		next.CvmState = acliv1.CvmState_kCvmMaintenance
	case ExitCvmMaintenance:
		if down {
			return nil, refuse("it is down; recover it first")
		}
		next.CvmMaintenanceRequested = false
		if cur.CvmState == acliv1.CvmState_kCvmMaintenance {
			next.CvmState = acliv1.CvmState_kCvmUp
		}
	default:
		return nil, refuse("unknown change")
	}
	if proto.Equal(cur, next) {
		return cur, nil
	}
	return next, nil
}

// Recovered is next, a host's record after HostUp, given the VMs still
// recorded running there: a host whose maintenance was asked comes back
// EnteredMaintenanceMode only when none is (HA leaves there a VM it could
// not fence or place); otherwise EnteringMaintenanceMode, its evacuation
// to finish.
func Recovered(next *acliv1.Host, running int) *acliv1.Host {
	if running == 0 || next.NodeState != acliv1.NodeState_EnteredMaintenanceMode {
		return next
	}
	next = proto.Clone(next).(*acliv1.Host)
	next.NodeState = acliv1.NodeState_EnteringMaintenanceMode
	return next
}

func cvmWanted(h *acliv1.Host) acliv1.CvmState {
	if h.CvmMaintenanceRequested {
		return acliv1.CvmState_kCvmMaintenance
	}
	return acliv1.CvmState_kCvmUp
}

// WithIntent fills the intent of a record written before intent was kept
// apart (maintenance states then stood for it). It returns h itself when
// nothing is missing.
func WithIntent(h *acliv1.Host) *acliv1.Host {
	node := h.NodeState == acliv1.NodeState_EnteringMaintenanceMode || h.NodeState == acliv1.NodeState_EnteredMaintenanceMode
	cvm := h.CvmState == acliv1.CvmState_kCvmMaintenance
	if (!node || h.MaintenanceRequested) && (!cvm || h.CvmMaintenanceRequested) {
		return h
	}
	h = proto.Clone(h).(*acliv1.Host)
	h.MaintenanceRequested = h.MaintenanceRequested || node
	h.CvmMaintenanceRequested = h.CvmMaintenanceRequested || cvm
	return h
}

// OutReason says why a host counts against the redundancy budget ("" when
// it does not): it is down, in or entering maintenance, its CVM is down or
// in maintenance, or the operator asked for either maintenance.
func OutReason(h *acliv1.Host) string {
	var why []string
	if h.NodeState != acliv1.NodeState_AcropolisNormal {
		why = append(why, h.NodeState.String())
	} else if h.MaintenanceRequested {
		why = append(why, "maintenance requested")
	}
	if h.CvmState != acliv1.CvmState_kCvmUp {
		why = append(why, h.CvmState.String())
	} else if h.CvmMaintenanceRequested {
		why = append(why, "cvm maintenance requested")
	}
	return strings.Join(why, ", ")
}

// OutByIntent reports whether the operator took the host (or its CVM) out.
func OutByIntent(h *acliv1.Host) bool {
	h = WithIntent(h)
	return h.MaintenanceRequested || h.CvmMaintenanceRequested
}

// RedundancyError refuses a change that would take more than RF-1 hosts out.
type RedundancyError struct {
	RF   int
	Host string
	Out  []string // "name [why]" of the other hosts out
}

func (e *RedundancyError) Error() string {
	hosts := "hosts"
	if e.RF-1 == 1 {
		hosts = "host"
	}
	if len(e.Out) == 0 {
		return fmt.Sprintf("redundancy factor %d allows no host out at a time", e.RF)
	}
	verb := "is"
	if len(e.Out) > 1 {
		verb = "are"
	}
	return fmt.Sprintf("redundancy factor %d allows %d %s out at a time and %s %s already out",
		e.RF, e.RF-1, hosts, strings.Join(e.Out, ", "), verb)
}

// CheckRedundancy is the budget rule, checked on the records about to be
// committed: a host the operator takes out (next has an intent prev lacks)
// may go only if the other hosts out, for whatever reason — failure,
// maintenance, a CVM down — leave room within RF-1. A host already out by
// the operator's intent may change how it is out; a host out only because
// it failed gets no such pass.
func CheckRedundancy(rf int, hosts []*acliv1.Host, prev, next *acliv1.Host) error {
	if next == nil || !OutByIntent(next) {
		return nil
	}
	if prev != nil && OutByIntent(prev) {
		return nil
	}
	var out []string
	for _, h := range hosts {
		if h.Uuid == next.Uuid {
			continue
		}
		if why := OutReason(WithIntent(h)); why != "" {
			out = append(out, fmt.Sprintf("%s (%s) [%s]", h.Name, h.HypervisorIp, why))
		}
	}
	if len(out)+1 <= rf-1 {
		return nil
	}
	return &RedundancyError{RF: rf, Host: next.Name, Out: out}
}
