package state

import (
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// CheckRef refuses a reference no entity can have: longer than any name
// (MaxNameBytes), so it is never compared with every name.
func CheckRef(field, ref string) error {
	if len(ref) > MaxNameBytes {
		return apierr.BadField(field, "%s is %d bytes long; no name or UUID is longer than %d", field, len(ref), MaxNameBytes)
	}
	return nil
}

// FindHost is the committed host ref names: its UUID, name or hypervisor
// IP. A missing host is the not-found error suggesting the nearest name.
func (tx *Tx) FindHost(field, ref string) (*acliv1.Host, error) {
	if ref == "" {
		return nil, apierr.BadField(field, "%s is required: give a host name, UUID or hypervisor IP", field)
	}
	if err := CheckRef(field, ref); err != nil {
		return nil, err
	}
	if h := tx.Host(strings.ToLower(ref)); h != nil {
		return h, nil
	}
	if h := tx.HostNamed(ref); h != nil {
		return h, nil
	}
	if h := tx.HostByIP(ref); h != nil {
		return h, nil
	}
	var names []string
	for _, h := range tx.Hosts() {
		names = append(names, h.Name, h.HypervisorIp)
	}
	return nil, apierr.NotFound("host", ref, names)
}

// PowerWord is how a power state reads in a message.
func PowerWord(p acliv1.PowerState) string {
	switch p {
	case acliv1.PowerState_kOn:
		return "on"
	case acliv1.PowerState_kPaused:
		return "paused"
	}
	return "off"
}

// VmRef names a VM in a task or an event.
func VmRef(v *acliv1.Vm) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kVm, Uuid: v.Uuid, Name: v.Name}
}

// HostRef names a host in a task or an event.
func HostRef(h *acliv1.Host) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kHost, Uuid: h.Uuid, Name: h.Name}
}
