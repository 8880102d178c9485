package hostsync

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Hosts join (host.add) and leave (host.remove) at run time on drivers that
// can connect to them (libvirt); these are the checks on both.

// CheckJoin checks a host.add request's fields, normalising its addresses;
// it lists every bad field.
func CheckJoin(h *acliv1.Host) []apierr.Field {
	var bad []apierr.Field
	if err := state.CheckName("host", h.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	for _, f := range []struct {
		field string
		val   *string
		need  bool
	}{{"hypervisor_ip", &h.HypervisorIp, true}, {"cvm_ip", &h.CvmIp, false}} {
		if *f.val == "" {
			if f.need {
				bad = append(bad, apierr.Field{Field: f.field, Description: f.field + " is required, e.g. " + f.field + "=127.0.0.2"})
			}
			continue
		}
		ip, err := netip.ParseAddr(*f.val)
		if err != nil {
			bad = append(bad, apierr.Field{Field: f.field, Description: fmt.Sprintf("%s %q is not an IP address, e.g. 127.0.0.2", f.field, *f.val)})
			continue
		}
		*f.val = ip.String()
	}
	if h.CvmIp != "" && h.CvmIp == h.HypervisorIp {
		bad = append(bad, apierr.Field{Field: "cvm_ip", Description: "cvm_ip must differ from hypervisor_ip (the CVM is a VM with its own address)"})
	}
	return bad
}

// CheckNew refuses a joining host whose name or addresses the committed
// hosts already use.
func CheckNew(tx *state.Tx, h *acliv1.Host) error {
	hosts := tx.Hosts()
	for _, o := range hosts {
		if o.Name == h.Name {
			return apierr.AlreadyExists("host", h.Name, "host names are unique (uuid "+o.Uuid+")")
		}
	}
	for _, o := range hosts {
		if o.HypervisorIp == h.HypervisorIp {
			return apierr.AlreadyExists("host", h.HypervisorIp, "hypervisor IP "+h.HypervisorIp+" belongs to host "+o.Name)
		}
	}
	for _, o := range hosts {
		if h.CvmIp != "" && (o.CvmIp == h.CvmIp || o.HypervisorIp == h.CvmIp) {
			return apierr.AlreadyExists("host", h.CvmIp, "cvm_ip "+h.CvmIp+" is already used by host "+o.Name)
		}
		if o.CvmIp == h.HypervisorIp {
			return apierr.AlreadyExists("host", h.HypervisorIp, "hypervisor IP "+h.HypervisorIp+" is the CVM address of host "+o.Name)
		}
	}
	return nil
}

// CheckLeave says why host h cannot leave: VMs run there, return there
// after maintenance, or are pinned to it.
func CheckLeave(tx *state.Tx, h *acliv1.Host) error {
	var running, returning, pinned []string
	for _, v := range tx.Vms() {
		switch {
		case state.Placed(v) && v.HostUuid == h.Uuid:
			running = append(running, v.Name)
		case v.OriginalHostUuid == h.Uuid:
			returning = append(returning, v.Name)
		}
		if slices.Contains(v.HostAffinity, h.Uuid) {
			pinned = append(pinned, v.Name)
		}
	}
	list := func(names []string) string {
		slices.Sort(names)
		if len(names) > 5 {
			names = append(names[:5:5], "...")
		}
		return strings.Join(names, ", ")
	}
	switch {
	case len(running) > 0:
		return apierr.Precondition("HOST_HAS_VMS", "host:"+h.Name, "host %s runs %d VM(s) (%s); migrate them away or power them off first (host.enter_maintenance_mode %s)", h.Name, len(running), list(running), h.Name)
	case len(returning) > 0:
		return apierr.Precondition("HOST_HAS_VMS", "host:"+h.Name, "%d VM(s) (%s) return to host %s when it exits maintenance; run host.exit_maintenance_mode %s or migrate them first", len(returning), list(returning), h.Name, h.Name)
	case len(pinned) > 0:
		return apierr.Precondition("HOST_AFFINITY", "host:"+h.Name, "%d VM(s) (%s) have host affinity to %s; change it first (vm.affinity_set)", len(pinned), list(pinned), h.Name)
	}
	return nil
}
