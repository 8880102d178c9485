package commands

import (
	"slices"
	"strconv"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
)

// Human views of volume groups, their sessions and events.

func vgTable(vgs []*acliv1.VolumeGroup) *render.TableData {
	t := &render.TableData{Headers: []string{"Volume group name", "Volume group UUID", "Disks", "Size",
		"External initiators", "VMs", "Sessions", "iSCSI target"}}
	t.Rows = make([][]string, 0, len(vgs))
	for _, g := range vgs {
		var size int64
		for _, d := range g.GetDisks() {
			size += d.GetSizeBytes()
		}
		t.Rows = append(t.Rows, []string{g.GetName(), g.GetUuid(), itoa(len(g.GetDisks())), FormatSize(size),
			itoa(len(g.GetExternalInitiators())), itoa(len(g.GetVmUuids())), itoa(len(g.GetSessions())), g.GetIscsiTarget()})
	}
	t.Narrow = 2 // acli's vg.list: name and UUID
	return t
}

// vgBlock is vg.get: settings, disks, attachments and a Sessions section
// with one line per session. vmNames maps attached VM UUIDs to names.
func vgBlock(g *acliv1.VolumeGroup, vmNames map[string]string) *render.Block {
	b := &render.Block{}
	b.Add("Name", g.GetName()).
		Add("UUID", g.GetUuid()).
		Add("Description", g.GetDescription()).
		Add("iSCSI target", g.GetIscsiTarget()).
		Add("iSCSI target prefix", g.GetIscsiTargetPrefix()).
		Add("Load balance VM attachments", yesNo(g.GetLoadBalanceVmAttachments()))
	disks := b.Section("Disks")
	for _, d := range g.GetDisks() {
		disks.Section(i32(d.GetIndex())).
			Add("UUID", d.GetUuid()).
			Add("Size", FormatSize(d.GetSizeBytes())).
			Add("Container", d.GetContainer())
	}
	b.Add("External initiators", strings.Join(g.GetExternalInitiators(), ","))
	vms := make([]string, 0, len(g.GetVmUuids()))
	for _, id := range g.GetVmUuids() {
		vms = append(vms, hostRef(vmNames[id], id))
	}
	b.Add("VMs", strings.Join(vms, ", "))
	ss := b.Section("Sessions")
	for _, s := range g.GetSessions() {
		ss.Add(s.GetInitiatorIqn()+"/"+i32(s.GetDiskIndex()), sessionLine(s))
	}
	return b
}

// sessionLine is "127.20.0.32:3205 kSessionActive since 2026-01-02T03:04:05Z
// (preferred 127.20.0.31)": where a session is served and since when.
func sessionLine(s *acliv1.IscsiSession) string {
	line := s.GetCvmIp() + ":" + i32(s.GetPort()) + " " + enumText(s.GetState().String(), s.GetState() == 0)
	if t := ts(s.GetSince()); t != "" {
		line += " since " + t
	}
	if p := s.GetPreferredCvmIp(); p != "" && p != s.GetCvmIp() {
		line += " (preferred " + p + ")"
	}
	return line
}

// vgDiskTable lists a VG's vDisks with their targets and the CVMs that
// serve their sessions now.
func vgDiskTable(g *acliv1.VolumeGroup) *render.TableData {
	t := &render.TableData{Headers: []string{"Index", "vDisk UUID", "Size", "Container", "Target IQN", "Served by CVM"}}
	for _, d := range g.GetDisks() {
		var cvms []string
		target := ""
		for _, s := range g.GetSessions() {
			if s.GetDiskIndex() != d.GetIndex() {
				continue
			}
			target = s.GetTargetIqn()
			if !slices.Contains(cvms, s.GetCvmIp()) {
				cvms = append(cvms, s.GetCvmIp())
			}
		}
		if target == "" && g.GetIscsiTarget() != "" {
			target = g.GetIscsiTarget() + "-tgt" + i32(d.GetIndex())
		}
		slices.Sort(cvms)
		t.Rows = append(t.Rows, []string{i32(d.GetIndex()), d.GetUuid(), FormatSize(d.GetSizeBytes()), d.GetContainer(),
			target, strings.Join(cvms, ",")})
	}
	return t
}

func sessionTable(ss []*acliv1.IscsiSession) *render.TableData {
	t := &render.TableData{Headers: []string{"Volume group", "Initiator IQN", "Target IQN", "vDisk", "CVM IP", "Port",
		"State", "Since", "Preferred CVM"}}
	t.Rows = make([][]string, 0, len(ss))
	for _, s := range ss {
		t.Rows = append(t.Rows, []string{s.GetVolumeGroupName(), s.GetInitiatorIqn(), s.GetTargetIqn(), i32(s.GetDiskIndex()),
			s.GetCvmIp(), i32(s.GetPort()), enumText(s.GetState().String(), s.GetState() == 0), ts(s.GetSince()),
			s.GetPreferredCvmIp()})
	}
	return t
}

// eventTime keeps milliseconds: a failover and its moves happen within one
// second.
func eventTime(e *acliv1.Event) string {
	if e.GetTime() == nil {
		return ""
	}
	return e.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func eventTable(evs []*acliv1.Event) *render.TableData {
	t := &render.TableData{Headers: []string{"Seq", "Time", "Type", "Severity", "Message", "Entities"}}
	t.Rows = make([][]string, 0, len(evs))
	for _, e := range evs {
		t.Rows = append(t.Rows, []string{u64(e.GetSeq()), eventTime(e), e.GetType(), e.GetSeverity(), e.GetMessage(),
			entities(e.GetEntities())})
	}
	return t
}

// eventLine is one event of event.watch: time (local on a terminal, as
// event.list shows it), type (padded so messages line up), message.
func eventLine(p *render.Printer, e *acliv1.Event) string {
	typ := e.GetType()
	if n := len("migration"); len(typ) < n {
		typ += strings.Repeat(" ", n-len(typ))
	}
	when := ""
	if e.GetTime() != nil {
		when = p.EventTime(e.GetTime().AsTime())
	}
	return when + "  " + typ + "  " + e.GetMessage()
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }
