package image

import (
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// FindSnapshot resolves a snapshot by UUID or name; snapshots of different
// VMs may share a name, which then needs the UUID.
func FindSnapshot(tx *state.Tx, field, ref string) (*acliv1.Snapshot, error) {
	if err := state.CheckRef(field, ref); err != nil {
		return nil, err
	}
	if sn := tx.Snapshot(strings.ToLower(ref)); sn != nil {
		return sn, nil
	}
	return pick(field, ref, "snapshot", "snapshots", tx.SnapshotsNamed(ref), (*acliv1.Snapshot).GetUuid, func() []string {
		all := tx.Snapshots()
		names := make([]string, len(all))
		for i, sn := range all {
			names[i] = sn.Name
		}
		return names
	})
}

// pick is the one record of those named ref: none is not found with the
// nearest of names, several are ambiguous and listed by UUID.
func pick[R any](field, ref, kind, plural string, named []R, uuid func(R) string, names func() []string) (R, error) {
	var zero R
	switch len(named) {
	case 0:
		return zero, apierr.NotFound(kind, ref, names())
	case 1:
		return named[0], nil
	}
	ids := make([]string, len(named))
	for i, r := range named {
		ids[i] = uuid(r)
	}
	slices.Sort(ids)
	return zero, apierr.BadField(field, "%s name %q is ambiguous: %d %s have it (%s); give the UUID", kind, ref, len(ids), plural, strings.Join(ids, ", "))
}
