package ha

import (
	"errors"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// ErrFailoverDisabled stops a down host's restart while HA is off.
var ErrFailoverDisabled = errors.New("HA failover is disabled (ha.update enable_failover=true turns it on)")

// FailoverEnabled: HA restarts the VMs of failed hosts unless turned off.
func FailoverEnabled(c *acliv1.Cluster) bool { return state.HA(c).FailoverEnabled }

// Update applies ha.update's fields to the cluster record next (a copy),
// for a cluster of hosts hosts, and returns the task's line. The guarantee
// itself is a rule at commit (state.RuleHAReservation).
func Update(next *acliv1.Cluster, req *acliv1.UpdateHaConfigRequest, hosts int) (string, error) {
	if req.EnableFailover == nil && req.NumHostFailuresToTolerate == nil && req.ReservationType == 0 {
		return "", apierr.BadField("ha", "nothing to update: give at least one of enable_failover, num_host_failures_to_tolerate, reservation_type")
	}
	next.Ha = state.HA(next)
	var changed []string
	if req.EnableFailover != nil {
		next.Ha.FailoverEnabled = *req.EnableFailover
		changed = append(changed, fmt.Sprintf("enable_failover=%v", *req.EnableFailover))
	}
	if n := req.NumHostFailuresToTolerate; n != nil {
		if *n < 1 || int(*n) >= hosts {
			return "", apierr.BadField("num_host_failures_to_tolerate", "num_host_failures_to_tolerate %d is out of range; use 1 to %d (one less than the %d hosts)", *n, hosts-1, hosts)
		}
		next.Ha.NumHostFailuresToTolerate = *n
		changed = append(changed, fmt.Sprintf("num_host_failures_to_tolerate=%d", *n))
	}
	if rt := req.ReservationType; rt != 0 {
		if _, ok := acliv1.HaReservationType_name[int32(rt)]; !ok {
			return "", apierr.BadField("reservation_type", "reservation_type %d is unknown; use kAcropolisHAReserveSegments or kAcropolisHANoReservations", rt)
		}
		next.Ha.ReservationType = rt
		changed = append(changed, "reservation_type="+rt.String())
	}
	return "HA updated: " + strings.Join(changed, ", "), nil
}
