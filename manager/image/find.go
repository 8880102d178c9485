package image

import (
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// FindImage resolves an image by UUID or name (image names are unique).
func FindImage(tx *state.Tx, field, ref string) (*acliv1.Image, error) {
	if im := tx.Image(ref); im != nil {
		return im, nil
	}
	all := tx.Images()
	if i := slices.IndexFunc(all, func(im *acliv1.Image) bool { return im.Name == ref }); i >= 0 {
		return all[i], nil
	}
	names := make([]string, len(all))
	for i, im := range all {
		names[i] = im.Name
	}
	return nil, apierr.NotFound("image", ref, names)
}

// imageNamed is the image of a name (nil if none).
func imageNamed(tx *state.Tx, name string) *acliv1.Image {
	for _, im := range tx.Images() {
		if im.Name == name {
			return im
		}
	}
	return nil
}

// FindSnapshot resolves a snapshot by UUID or name; snapshots of different
// VMs may share a name, which then needs the UUID.
func FindSnapshot(tx *state.Tx, field, ref string) (*acliv1.Snapshot, error) {
	if err := checkRef(field, ref); err != nil {
		return nil, err
	}
	if sn := tx.Snapshot(strings.ToLower(ref)); sn != nil {
		return sn, nil
	}
	return byName(field, ref, "snapshot", "snapshots", tx.Snapshots(), (*acliv1.Snapshot).GetName, (*acliv1.Snapshot).GetUuid)
}

// findVm resolves a VM by UUID or unique name.
func findVm(tx *state.Tx, field, ref string) (*acliv1.Vm, error) {
	if ref == "" {
		return nil, apierr.BadField(field, "%s is required: give a VM name or UUID", field)
	}
	if err := checkRef(field, ref); err != nil {
		return nil, err
	}
	if v := tx.Vm(strings.ToLower(ref)); v != nil {
		return v, nil
	}
	return byName(field, ref, "vm", "VMs", tx.Vms(), (*acliv1.Vm).GetName, (*acliv1.Vm).GetUuid)
}

// byName resolves ref among records several may share a name with: not
// found names the nearest names, and a shared name lists the UUIDs.
func byName[R any](field, ref, kind, plural string, all []R, name, uuid func(R) string) (R, error) {
	var zero R
	var ids []string
	var found R
	for _, r := range all {
		if name(r) == ref {
			found = r
			ids = append(ids, uuid(r))
		}
	}
	switch len(ids) {
	case 0:
		names := make([]string, len(all))
		for i, r := range all {
			names[i] = name(r)
		}
		return zero, apierr.NotFound(kind, ref, names)
	case 1:
		return found, nil
	}
	slices.Sort(ids)
	return zero, apierr.BadField(field, "%s name %q is ambiguous: %d %s have it (%s); give the UUID", kind, ref, len(ids), plural, strings.Join(ids, ", "))
}

// checkRef refuses a reference no entity can have: longer than any name
// (state.MaxNameBytes), so it is never compared with every name.
func checkRef(field, ref string) error {
	if len(ref) > state.MaxNameBytes {
		return apierr.BadField(field, "%s is %d bytes long; no name or UUID is longer than %d", field, len(ref), state.MaxNameBytes)
	}
	return nil
}
