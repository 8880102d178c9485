package vm

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Resolve finds a committed VM by UUID or unique name; field names the
// request's field in errors. A reference longer than any name is refused
// before it is compared with every name.
func Resolve(tx *state.Tx, field, ref string) (*acliv1.Vm, error) {
	if ref == "" {
		return nil, apierr.BadField(field, "%s is required: give a VM name or UUID", field)
	}
	if err := state.CheckRef(field, ref); err != nil {
		return nil, err
	}
	if v := tx.Vm(strings.ToLower(ref)); v != nil {
		return v, nil
	}
	switch vs := tx.VmsNamed(ref); len(vs) {
	case 0:
		return nil, apierr.NotFound("vm", ref, tx.VmNames())
	case 1:
		return vs[0], nil
	default:
		ids := make([]string, len(vs))
		for i, v := range vs {
			ids[i] = v.Uuid
		}
		return nil, apierr.BadField(field, "vm name %q is ambiguous: %d VMs have it (%s); give the UUID", ref, len(ids), strings.Join(ids, ", "))
	}
}

// resolve is Resolve on the committed state, with the VM's revision.
func (s *Service) resolve(field, ref string) (v *acliv1.Vm, rev int64, err error) {
	s.db.View(func(tx *state.Tx) {
		if v, err = Resolve(tx, field, ref); err == nil {
			rev = tx.Rev(state.VmKey(v.Uuid))
		}
	})
	return v, rev, err
}

// ListVms lists the VMs by name, filtered by host and power state, each
// with the task changing it.
func (s *Service) ListVms(ctx context.Context, req *acliv1.ListVmsRequest) (*acliv1.ListVmsResponse, error) {
	var out *acliv1.ListVmsResponse
	var err error
	s.db.View(func(tx *state.Tx) {
		hostFilter := ""
		if req.Host != "" {
			var h *acliv1.Host
			if h, err = tx.FindHost("host", req.Host); err != nil {
				return
			}
			hostFilter = h.Uuid
		}
		recs := tx.VmsByName()
		size := 0
		recs = slices.DeleteFunc(recs, func(rec *state.VmRecord) bool {
			drop := (hostFilter != "" && rec.Vm.HostUuid != hostFilter) ||
				(req.PowerState != acliv1.PowerState_POWER_STATE_UNSPECIFIED && rec.Vm.PowerState != req.PowerState)
			if !drop {
				size += len(rec.Wire) + 64
			}
			return drop
		})
		out = listResponse(recs, s.db.Holder, size)
	})
	return out, err
}

// listResponse encodes the VMs from their kept encodings: each is written
// as an occurrence of ListVmsResponse.vms (field 1) in the message's raw
// field data, which protobuf marshals verbatim and every client decodes
// as the repeated field. A busy VM gets busy_task_uuid (field 20)
// appended to its record; a later field occurrence is valid protobuf and
// sets the field.
func listResponse(recs []*state.VmRecord, busy func(id string) string, size int) *acliv1.ListVmsResponse {
	const vmsField, busyField = 1, 20
	buf := make([]byte, 0, size)
	for _, r := range recs {
		buf = protowire.AppendTag(buf, vmsField, protowire.BytesType)
		t := busy(r.Vm.Uuid)
		if t == "" {
			buf = protowire.AppendBytes(buf, r.Wire)
			continue
		}
		extra := protowire.SizeTag(busyField) + protowire.SizeBytes(len(t))
		buf = protowire.AppendVarint(buf, uint64(len(r.Wire)+extra))
		buf = append(buf, r.Wire...)
		buf = protowire.AppendTag(buf, busyField, protowire.BytesType)
		buf = protowire.AppendString(buf, t)
	}
	resp := &acliv1.ListVmsResponse{}
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(buf))
	return resp
}

// GetVm is one VM as the API shows it: its record with what storage
// computes (disk paths and serving CVMs, volume groups) and its task.
func (s *Service) GetVm(ctx context.Context, req *acliv1.GetVmRequest) (*acliv1.Vm, error) {
	v, _, err := s.resolve("vm", req.Vm)
	if err != nil {
		return nil, err
	}
	out := s.c.Storage(v, req.IncludeVmdiskPaths)
	if t := s.db.Holder(v.Uuid); t != "" {
		if out == v {
			out = proto.Clone(v).(*acliv1.Vm)
		}
		out.BusyTaskUuid = t
	}
	return out, nil
}
