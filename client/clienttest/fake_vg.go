package clienttest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeStorage is the fake's volume groups and event log (guarded by f.mu).
// Sessions are derived on read: external initiators spread their disks
// over the up CVMs in host order, VMs use the CVM of their host.
type fakeStorage struct {
	vgs    []*acliv1.VolumeGroup // in creation order
	since  map[string]*timestamppb.Timestamp
	events []*acliv1.Event
	// notify is closed and replaced on every event, waking watchers.
	notify chan struct{}
}

// PublishEvent appends an event to the fake's log (and to every watch).
func (f *Fake) PublishEvent(typ, severity, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(typ, severity, "", nil, fmt.Sprintf(format, args...))
}

func (f *Fake) publish(typ, severity, taskUUID string, refs []*acliv1.EntityRef, msg string) {
	s := &f.storage
	ev := &acliv1.Event{Seq: uint64(len(s.events) + 1), Time: f.stamp(), Type: typ,
		Message: msg, Entities: refs, Severity: severity, TaskUuid: taskUUID}
	if taskUUID != "" {
		ev.Principal = "anonymous"
	}
	s.events = append(s.events, ev)
	if s.notify != nil {
		close(s.notify)
	}
	s.notify = make(chan struct{})
}

func (f *Fake) volumeGroup(ref string) (*acliv1.VolumeGroup, error) {
	for _, vg := range f.storage.vgs {
		if vg.Uuid == ref || vg.Name == ref {
			return vg, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "volume group %q not found", ref)
}

// sessions derives the sessions of vg from the hosts and VMs as they are.
func (f *Fake) sessions(vg *acliv1.VolumeGroup) []*acliv1.IscsiSession {
	if f.storage.since == nil {
		f.storage.since = map[string]*timestamppb.Timestamp{}
	}
	var up []*acliv1.Host
	for _, h := range f.hosts {
		if h.CvmState == acliv1.CvmState_kCvmUp {
			up = append(up, h)
		}
	}
	var out []*acliv1.IscsiSession
	add := func(ini, vmUUID string, d int, cvm *acliv1.Host, preferred string) {
		s := &acliv1.IscsiSession{InitiatorIqn: ini, TargetIqn: fmt.Sprintf("%s-tgt%d", vg.IscsiTarget, vg.Disks[d].Index),
			VolumeGroupUuid: vg.Uuid, VolumeGroupName: vg.Name, DiskIndex: vg.Disks[d].Index, Port: 3205,
			State: acliv1.IscsiSessionState_kSessionActive, PreferredCvmIp: preferred, VmUuid: vmUUID}
		if vmUUID != "" {
			s.Port = 3261
		}
		if cvm == nil {
			s.State, s.CvmIp = acliv1.IscsiSessionState_kSessionDown, preferred
		} else {
			s.CvmIp, s.CvmHostUuid = cvm.CvmIp, cvm.Uuid
		}
		if s.PreferredCvmIp == "" {
			s.PreferredCvmIp = s.CvmIp
		}
		key := fmt.Sprintf("%s/%s/%d@%s", vg.Uuid, ini, s.DiskIndex, s.CvmIp)
		if f.storage.since[key] == nil {
			f.storage.since[key] = f.stamp()
		}
		s.Since = f.storage.since[key]
		out = append(out, s)
	}
	for _, ini := range vg.ExternalInitiators {
		for d := range vg.Disks {
			var cvm *acliv1.Host
			if len(up) > 0 {
				cvm = up[d%len(up)]
			}
			pref := f.hosts[d%len(f.hosts)].CvmIp
			add(ini, "", d, cvm, pref)
		}
	}
	for _, id := range vg.VmUuids {
		v := f.vms[id]
		if v == nil || v.PowerState != acliv1.PowerState_kOn {
			continue
		}
		h, _ := f.host(v.HostUuid)
		for d := range vg.Disks {
			cvm := h
			if h == nil || h.CvmState != acliv1.CvmState_kCvmUp {
				cvm = nil
				if len(up) > 0 {
					cvm = up[0]
				}
			}
			pref := ""
			if h != nil {
				pref = h.CvmIp
			}
			add("iqn.2010-06.dev.acli:vm-"+id, id, d, cvm, pref)
		}
	}
	slices.SortStableFunc(out, func(a, b *acliv1.IscsiSession) int {
		if c := strings.Compare(a.InitiatorIqn, b.InitiatorIqn); c != 0 {
			return c
		}
		return int(a.DiskIndex - b.DiskIndex)
	})
	return out
}

func (f *Fake) vgOut(vg *acliv1.VolumeGroup) *acliv1.VolumeGroup {
	out := proto.Clone(vg).(*acliv1.VolumeGroup)
	out.Sessions = f.sessions(vg)
	return out
}

// vgTask records a finished-later task on vg and its event.
func (f *Fake) vgTask(op acliv1.TaskOperation, vg *acliv1.VolumeGroup, msg string) *acliv1.Task {
	t := f.newTask(op, acliv1.EntityKind_kVolumeGroup, vg.Uuid, vg.Name)
	f.publish("vg", "info", t.Uuid, t.Entities, msg)
	return t
}

type vgSvc struct {
	acliv1.UnimplementedVolumeGroupServiceServer
	f *Fake
}

func (s vgSvc) ListVolumeGroups(context.Context, *acliv1.ListVolumeGroupsRequest) (*acliv1.ListVolumeGroupsResponse, error) {
	s.f.count("ListVolumeGroups")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	out := &acliv1.ListVolumeGroupsResponse{}
	for _, vg := range s.f.storage.vgs {
		out.VolumeGroups = append(out.VolumeGroups, s.f.vgOut(vg))
	}
	slices.SortFunc(out.VolumeGroups, func(a, b *acliv1.VolumeGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s vgSvc) GetVolumeGroup(_ context.Context, r *acliv1.GetVolumeGroupRequest) (*acliv1.VolumeGroup, error) {
	s.f.count("GetVolumeGroup")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	return s.f.vgOut(vg), nil
}

func (s vgSvc) ListSessions(_ context.Context, r *acliv1.ListSessionsRequest) (*acliv1.ListSessionsResponse, error) {
	s.f.count("ListSessions")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vgs := s.f.storage.vgs
	if r.GetVolumeGroup() != "" {
		vg, err := s.f.volumeGroup(r.GetVolumeGroup())
		if err != nil {
			return nil, err
		}
		vgs = []*acliv1.VolumeGroup{vg}
	}
	out := &acliv1.ListSessionsResponse{}
	for _, vg := range vgs {
		out.Sessions = append(out.Sessions, s.f.sessions(vg)...)
	}
	return out, nil
}

func (s vgSvc) CreateVolumeGroup(_ context.Context, r *acliv1.CreateVolumeGroupRequest) (*acliv1.Task, error) {
	s.f.count("CreateVolumeGroup")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if _, err := s.f.volumeGroup(r.GetName()); err == nil {
		return nil, status.Errorf(codes.AlreadyExists, "volume group %q already exists", r.GetName())
	}
	prefix := r.GetIscsiTargetPrefix()
	if prefix == "" {
		prefix = r.GetName()
	}
	vg := &acliv1.VolumeGroup{Uuid: s.f.uuid("0e00"), Name: r.GetName(), Description: r.GetDescription(),
		LoadBalanceVmAttachments: r.GetLoadBalanceVmAttachments(), IscsiTargetPrefix: prefix}
	vg.IscsiTarget = "iqn.2010-06.dev.acli:" + prefix + "-" + vg.Uuid[len(vg.Uuid)-8:]
	s.f.storage.vgs = append(s.f.storage.vgs, vg)
	return s.f.vgTask(acliv1.TaskOperation_kVgCreate, vg, "volume group "+vg.Name+" created"), nil
}

func (s vgSvc) UpdateVolumeGroup(_ context.Context, r *acliv1.UpdateVolumeGroupRequest) (*acliv1.Task, error) {
	s.f.count("UpdateVolumeGroup")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	if r.Name != nil {
		vg.Name = r.GetName()
	}
	if r.Description != nil {
		vg.Description = r.GetDescription()
	}
	if r.LoadBalanceVmAttachments != nil {
		vg.LoadBalanceVmAttachments = r.GetLoadBalanceVmAttachments()
	}
	return s.f.vgTask(acliv1.TaskOperation_kVgUpdate, vg, "volume group "+vg.Name+" updated"), nil
}

func (s vgSvc) DeleteVolumeGroup(_ context.Context, r *acliv1.DeleteVolumeGroupRequest) (*acliv1.Task, error) {
	s.f.count("DeleteVolumeGroup")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	if len(vg.ExternalInitiators) > 0 || len(vg.VmUuids) > 0 {
		return nil, preconditionErr("volume group "+vg.Name+" is attached; detach it first", "vg/"+vg.Name, "detach its initiators and VMs first")
	}
	s.f.storage.vgs = slices.DeleteFunc(s.f.storage.vgs, func(x *acliv1.VolumeGroup) bool { return x == vg })
	return s.f.vgTask(acliv1.TaskOperation_kVgDelete, vg, "volume group "+vg.Name+" deleted"), nil
}

func (s vgSvc) CreateVgDisk(_ context.Context, r *acliv1.CreateVgDiskRequest) (*acliv1.Task, error) {
	s.f.count("CreateVgDisk")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	if r.GetSizeBytes() <= 0 {
		return nil, badRequest("size must be positive", "size_bytes", "must be greater than 0")
	}
	idx := int32(0)
	for slices.ContainsFunc(vg.Disks, func(d *acliv1.VgDisk) bool { return d.Index == idx }) {
		idx++
	}
	container := r.GetContainer()
	if container == "" {
		container = "default-container"
	}
	vg.Disks = append(vg.Disks, &acliv1.VgDisk{Index: idx, Uuid: s.f.uuid("0dd0"), SizeBytes: r.GetSizeBytes(), Container: container})
	return s.f.vgTask(acliv1.TaskOperation_kVgDiskCreate, vg, fmt.Sprintf("volume group %s disk %d created", vg.Name, idx)), nil
}

func (s vgSvc) DeleteVgDisk(_ context.Context, r *acliv1.DeleteVgDiskRequest) (*acliv1.Task, error) {
	s.f.count("DeleteVgDisk")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(vg.Disks, func(d *acliv1.VgDisk) bool { return d.Index == r.GetIndex() })
	if i < 0 {
		return nil, status.Errorf(codes.NotFound, "vg disk %q not found", fmt.Sprint(r.GetIndex()))
	}
	vg.Disks = slices.Delete(vg.Disks, i, i+1)
	return s.f.vgTask(acliv1.TaskOperation_kVgDiskDelete, vg, fmt.Sprintf("volume group %s disk %d deleted", vg.Name, r.GetIndex())), nil
}

func (s vgSvc) AttachExternal(_ context.Context, r *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	s.f.count("AttachExternal")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	if slices.Contains(vg.ExternalInitiators, r.GetInitiatorName()) {
		return nil, status.Errorf(codes.AlreadyExists, "initiator %q is already attached", r.GetInitiatorName())
	}
	vg.ExternalInitiators = append(vg.ExternalInitiators, r.GetInitiatorName())
	slices.Sort(vg.ExternalInitiators)
	return s.f.vgTask(acliv1.TaskOperation_kVgAttachExternal, vg, "volume group "+vg.Name+" attached to initiator "+r.GetInitiatorName()), nil
}

func (s vgSvc) DetachExternal(_ context.Context, r *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	s.f.count("DetachExternal")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	i := slices.Index(vg.ExternalInitiators, r.GetInitiatorName())
	if i < 0 {
		return nil, status.Errorf(codes.NotFound, "initiator %q not found", r.GetInitiatorName())
	}
	vg.ExternalInitiators = slices.Delete(vg.ExternalInitiators, i, i+1)
	return s.f.vgTask(acliv1.TaskOperation_kVgDetachExternal, vg, "volume group "+vg.Name+" detached from initiator "+r.GetInitiatorName()), nil
}

func (s vgSvc) AttachToVm(_ context.Context, r *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return s.vmAttach("AttachToVm", r, true)
}

func (s vgSvc) DetachFromVm(_ context.Context, r *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return s.vmAttach("DetachFromVm", r, false)
}

func (s vgSvc) vmAttach(method string, r *acliv1.AttachToVmRequest, attach bool) (*acliv1.Task, error) {
	s.f.count(method)
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	vg, err := s.f.volumeGroup(r.GetVolumeGroup())
	if err != nil {
		return nil, err
	}
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	i := slices.Index(vg.VmUuids, v.Uuid)
	switch {
	case attach && i >= 0:
		return nil, status.Errorf(codes.AlreadyExists, "volume group %s is already attached to vm %s", vg.Name, v.Name)
	case attach:
		vg.VmUuids = append(vg.VmUuids, v.Uuid)
		v.VolumeGroupUuids = append(v.VolumeGroupUuids, vg.Uuid)
		return s.f.vgTask(acliv1.TaskOperation_kVgAttachToVm, vg, "volume group "+vg.Name+" attached to vm "+v.Name), nil
	case i < 0:
		return nil, status.Errorf(codes.NotFound, "attached vm %q not found", r.GetVm())
	}
	vg.VmUuids = slices.Delete(vg.VmUuids, i, i+1)
	v.VolumeGroupUuids = slices.DeleteFunc(v.VolumeGroupUuids, func(id string) bool { return id == vg.Uuid })
	return s.f.vgTask(acliv1.TaskOperation_kVgDetachFromVm, vg, "volume group "+vg.Name+" detached from vm "+v.Name), nil
}

type eventSvc struct {
	acliv1.UnimplementedEventServiceServer
	f *Fake
}

func (s eventSvc) ListEvents(_ context.Context, r *acliv1.ListEventsRequest) (*acliv1.ListEventsResponse, error) {
	s.f.count("ListEvents")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	limit := int(r.GetLimit())
	if limit <= 0 {
		limit = 100
	}
	var out []*acliv1.Event
	for _, e := range s.f.storage.events {
		if r.GetType() == "" || e.Type == r.GetType() {
			out = append(out, e)
		}
	}
	out = out[max(0, len(out)-limit):]
	return &acliv1.ListEventsResponse{Events: out}, nil
}

// WatchEvents replays the events after since_seq (when set), then streams
// new ones until the client goes.
func (s eventSvc) WatchEvents(r *acliv1.WatchEventsRequest, stream acliv1.EventService_WatchEventsServer) error {
	s.f.count("WatchEvents")
	s.f.mu.Lock()
	next := len(s.f.storage.events) // index of the next event to send
	if r.GetSinceSeq() > 0 {
		next = min(next, int(r.GetSinceSeq()))
	}
	s.f.mu.Unlock()
	for {
		s.f.mu.Lock()
		pending := s.f.storage.events[next:]
		next = len(s.f.storage.events)
		if s.f.storage.notify == nil {
			s.f.storage.notify = make(chan struct{})
		}
		wake := s.f.storage.notify
		s.f.mu.Unlock()
		for _, e := range pending {
			if r.GetType() != "" && e.Type != r.GetType() {
				continue
			}
			if err := stream.Send(e); err != nil {
				return err
			}
		}
		select {
		case <-wake:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}
