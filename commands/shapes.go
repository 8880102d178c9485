package commands

import (
	"context"
	"net/netip"
	"strconv"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// acli's shapes of entities: the protobuf text *.get prints and the JSON
// its -o json carries, with acli's field names (memory_mb, state,
// mac_addr, vm_uuid, iscsi_target_name ...) in acli's alphabetical order.
// Fields acli has no name for keep the API's.

const mib = 1 << 20

// hostIPs maps host UUIDs to hypervisor IPs: acli's vm.get names a VM's
// host by its IP (host_name: "10.0.0.21").
type hostIPs map[string]string

func loadHostIPs(ctx context.Context, r *Req) hostIPs {
	c, err := r.Client(ctx)
	if err != nil {
		return nil
	}
	resp, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil
	}
	out := hostIPs{}
	for _, h := range resp.GetHosts() {
		out[h.GetUuid()] = h.GetHypervisorIp()
	}
	return out
}

// acliNamed shapes one entity for a *.get: its name (what acli prints
// before `{` and keys the JSON by) and its fields.
func acliNamed(v proto.Message, ips hostIPs) render.Named {
	switch x := v.(type) {
	case *acliv1.Vm:
		return render.Named{Name: x.GetName(), Msg: vmMsg(x, ips)}
	case *acliv1.Host:
		name := x.GetHypervisorIp()
		if name == "" {
			name = x.GetName()
		}
		return render.Named{Name: name, Msg: hostMsg(x)}
	case *acliv1.Network:
		return render.Named{Name: x.GetName(), Msg: netMsg(x)}
	case *acliv1.VirtualSwitch:
		return render.Named{Name: x.GetName(), Msg: vswitchMsg(x)}
	case *acliv1.Nic:
		return render.Named{Name: x.GetMac(), Msg: nicMsg(x)}
	case *acliv1.VolumeGroup:
		return render.Named{Name: x.GetName(), Msg: vgMsg(x)}
	case *acliv1.Task:
		return render.Named{Name: x.GetUuid(), Msg: taskMsg(x)}
	}
	m := render.FromProto(v)
	name, _ := m.Get("name").(string)
	if name == "" {
		name, _ = m.Get("uuid").(string)
	}
	return render.Named{Name: name, Msg: m}
}

func vmMsg(v *acliv1.Vm, ips hostIPs) *render.Msg {
	cfg := &render.Msg{}
	if v.GetAgentVm() {
		cfg.Set("agent_vm", true)
	}
	cfg.Set("allow_live_migrate", !v.GetPassthrough() && !v.GetCpuPassthrough() && !v.GetAgentVm() && len(v.GetDevices()) == 0)
	cfg.SetNonEmpty("annotation", v.GetDescription())
	boot := &render.Msg{}
	if bus, idx, ok := strings.Cut(v.GetBootDiskAddr(), "."); ok {
		n, _ := strconv.ParseInt(idx, 10, 32)
		boot.Set("disk_address", (&render.Msg{}).Set("bus", bus).Set("index", n))
	}
	if v.GetUefiBoot() {
		boot.Set("uefi_boot", true)
	}
	if len(boot.Fields) > 0 {
		cfg.Set("boot", boot)
	}
	setTrue(cfg, "cpu_passthrough", v.GetCpuPassthrough())
	var disks []any
	for _, d := range v.GetDisks() {
		dm := &render.Msg{}
		dm.Set("addr", (&render.Msg{}).Set("bus", d.GetBus()).Set("index", int64(d.GetIndex())))
		if d.GetCdrom() {
			dm.Set("cdrom", true)
		}
		dm.SetNonEmpty("container_name", d.GetContainer())
		dm.SetNonEmpty("device_uuid", d.GetUuid())
		if d.GetCdrom() && d.GetSizeBytes() == 0 {
			dm.Set("empty", true)
		}
		dm.SetNonEmpty("path", d.GetPath())
		dm.SetNonEmpty("served_by_cvm_ip", d.GetServedByCvmIp())
		dm.SetNonEmpty("source_image_uuid", d.GetSourceImageUuid())
		dm.SetNonEmpty("source_vmdisk_uuid", d.GetSourceVmdiskUuid())
		if d.GetSizeBytes() > 0 {
			dm.Set("vmdisk_size", d.GetSizeBytes())
		}
		dm.SetNonEmpty("vmdisk_nfs_path", d.GetVmdiskPath()) // with include_vmdisk_paths=1
		dm.SetNonEmpty("vmdisk_uuid", d.GetUuid())
		dm.SetNonEmpty("volume_group_uuid", d.GetVolumeGroupUuid())
		disks = append(disks, dm)
	}
	cfg.Set("disk_list", disks)
	if l := vmDeviceList(v, acliv1.DeviceKind_kGpuPassthrough); len(l) > 0 {
		cfg.Set("gpu_list", l)
	}
	cfg.Set("ha_priority", int64(v.GetHaPriority()))
	setTrue(cfg, "hardware_virtualization", v.GetHardwareVirtualization())
	if len(v.GetHostAffinity()) > 0 {
		cfg.Set("host_affinity_uuid_list", strs(v.GetHostAffinity()))
	}
	cfg.Set("memory_mb", v.GetMemoryBytes()/mib)
	setTrue(cfg, "memory_overcommit", v.GetMemoryOvercommit())
	cfg.Set("name", v.GetName())
	var nics []any
	for _, n := range v.GetNics() {
		nics = append(nics, nicMsg(n))
	}
	cfg.Set("nic_list", nics)
	cfg.Set("num_cores_per_vcpu", int64(v.GetNumCoresPerVcpu()))
	if n := v.GetNumThreadsPerCore(); n > 1 {
		cfg.Set("num_threads_per_core", int64(n))
	}
	cfg.Set("num_vcpus", int64(v.GetNumVcpus()))
	if n := v.GetNumVnumaNodes(); n > 0 {
		cfg.Set("num_vnuma_nodes", int64(n))
	}
	setTrue(cfg, "passthrough", v.GetPassthrough())
	if l := vmDeviceList(v, acliv1.DeviceKind_kPcieDevice); len(l) > 0 {
		cfg.Set("pcie_device_list", l)
	}
	setTrue(cfg, "vcpu_hard_pin", v.GetVcpuHardPin())
	cfg.Set("vm_type", render.Enum("kGuestVM"))
	if len(v.GetVolumeGroupUuids()) > 0 {
		cfg.Set("volume_group_uuid_list", strs(v.GetVolumeGroupUuids()))
	}
	if v.GetVirtualTpm() {
		cfg.Set("vtpm_config", (&render.Msg{}).Set("is_enabled", true))
	}

	m := &render.Msg{}
	m.SetNonEmpty("busy_task_uuid", v.GetBusyTaskUuid())
	m.Set("config", cfg)
	m.SetNonEmpty("create_time", ts(v.GetCreateTime()))
	host := v.GetHostName()
	if ip := ips[v.GetHostUuid()]; ip != "" {
		host = ip
	}
	m.SetNonEmpty("host_name", host)
	m.SetNonEmpty("host_uuid", v.GetHostUuid())
	m.SetNonEmpty("original_host_uuid", v.GetOriginalHostUuid())
	m.Set("state", render.Enum(powerStateName(v.GetPowerState())))
	m.Set("uuid", v.GetUuid())
	return m
}

// setTrue sets a flag acli prints only when it is on.
func setTrue(m *render.Msg, key string, on bool) {
	if on {
		m.Set(key, true)
	}
}

func powerStateName(p acliv1.PowerState) string {
	if p == 0 {
		return "kOff"
	}
	return p.String()
}

// kName spells an enum as acli's protobuf constants do: kAcropolisNormal.
func kName(s string, zero bool) string {
	if zero {
		return ""
	}
	if strings.HasPrefix(s, "k") {
		return s
	}
	return "k" + s
}

func hostMsg(h *acliv1.Host) *render.Msg {
	m := &render.Msg{}
	m.Set("connected", h.GetConnected())
	m.SetNonEmpty("cvm_ip", h.GetCvmIp())
	m.Set("cvm_state", render.Enum(kName(h.GetCvmState().String(), h.GetCvmState() == 0)))
	m.SetNonEmpty("hypervisor_address", h.GetHypervisorIp())
	m.SetNonEmpty("hypervisor_dns_name", h.GetHypervisorDnsName())
	m.SetNonEmpty("hypervisor_type", h.GetHypervisorType())
	m.SetNonEmpty("last_heartbeat", ts(h.GetLastHeartbeat()))
	m.SetNonEmpty("libvirt_uri", h.GetLibvirtUri())
	m.Set("mem_usage_bytes", h.GetMemoryUsedBytes())
	m.Set("memory_size_bytes", h.GetMemoryBytes())
	m.SetNonEmpty("name", h.GetName())
	m.Set("node_state", render.Enum(kName(h.GetNodeState().String(), h.GetNodeState() == 0)))
	m.SetNonEmpty("node_type", h.GetNodeType())
	m.Set("num_cpu_cores", int64(h.GetCpuCores()))
	m.Set("num_vms", int64(h.GetNumVms()))
	if l := hostDeviceList(h); len(l) > 0 {
		m.Set("passthrough_device_list", l)
	}
	m.Set("schedulable", h.GetSchedulable())
	m.SetNonEmpty("schedulable_reason", h.GetSchedulableReason())
	m.Set("uuid", h.GetUuid())
	m.Set("vcpus_used", int64(h.GetVcpusUsed()))
	return m
}

// nicMsg is a NIC as acli's vm.get nic_list and vm.nic_get print it.
func nicMsg(n *acliv1.Nic) *render.Msg {
	nm := &render.Msg{}
	nm.SetNonEmpty("ip_address", n.GetIp())
	nm.Set("is_connected", !n.GetDisconnected())
	nm.SetNonEmpty("mac_addr", n.GetMac())
	nm.SetNonEmpty("model", n.GetModel())
	nm.SetNonEmpty("network_name", n.GetNetworkName())
	nm.SetNonEmpty("network_uuid", n.GetNetworkUuid())
	var trunk []any
	for _, id := range n.GetTrunkedNetworks() {
		trunk = append(trunk, int64(id))
	}
	if len(trunk) > 0 {
		nm.Set("trunked_networks", trunk)
	}
	nm.Set("type", render.Enum("kNormalNic"))
	mode := "kAccess"
	if n.GetVlanMode() == acliv1.NetworkMode_kTrunked {
		mode = "kTrunked"
	}
	nm.Set("vlan_mode", render.Enum(mode))
	return nm
}

// ipConfigMsg is a managed network's ip_config as acli prints it: the
// gateway, DHCP options, network, pools ("start end") and prefix.
func ipConfigMsg(n *acliv1.Network) *render.Msg {
	p, err := netip.ParsePrefix(n.GetIpConfig())
	if err != nil {
		if n.GetIpConfig() == "" {
			return nil
		}
		return (&render.Msg{}).Set("network", n.GetIpConfig())
	}
	m := &render.Msg{}
	m.SetNonEmpty("default_router", n.GetDefaultGateway())
	if len(n.GetDnsServers())+len(n.GetDnsDomains()) > 0 {
		opts := &render.Msg{}
		if len(n.GetDnsServers()) > 0 {
			opts.Set("domain_name_servers", strs(n.GetDnsServers()))
		}
		if len(n.GetDnsDomains()) > 0 {
			opts.Set("domain_search", strs(n.GetDnsDomains()))
		}
		m.Set("dhcp_options", opts)
	}
	m.Set("network_address", p.Masked().Addr().String())
	var pools []any
	for _, pl := range n.GetDhcpPools() {
		pools = append(pools, (&render.Msg{}).Set("range", pl.GetStart()+" "+pl.GetEnd()))
	}
	if len(pools) > 0 {
		m.Set("pool", pools)
	}
	m.Set("prefix_length", int64(p.Bits()))
	return m
}

func netMsg(n *acliv1.Network) *render.Msg {
	m := &render.Msg{}
	m.Set("identifier", int64(n.GetVlanId()))
	m.Set("ip_config", ipConfigMsg(n))
	m.Set("name", n.GetName())
	m.Set("num_nics", int64(n.GetNumNics()))
	m.Set("type", render.Enum("kBridged"))
	m.Set("uuid", n.GetUuid())
	m.Set("vlan_mode", render.Enum(enumText(n.GetMode().String(), n.GetMode() == 0)))
	m.SetNonEmpty("vswitch_name", n.GetVswitchName())
	return m
}

func vswitchMsg(vs *acliv1.VirtualSwitch) *render.Msg {
	m := &render.Msg{}
	var active []any
	for _, u := range vs.GetActiveUplinks() {
		active = append(active, (&render.Msg{}).Set("host_name", u.GetHostName()).Set("host_uuid", u.GetHostUuid()).Set("interface", u.GetInterface()))
	}
	if len(active) > 0 {
		m.Set("active_uplinks", active)
	}
	m.Set("bond_type", render.Enum(vs.GetBondType()))
	m.SetNonEmpty("bridge_name", vs.GetBridgeName())
	m.SetNonEmpty("description", vs.GetDescription())
	m.Set("lacp", vs.GetLacp())
	m.Set("logical_timestamp", vs.GetLogicalTimestamp())
	m.Set("mtu", int64(vs.GetMtu()))
	m.Set("name", vs.GetName())
	if len(vs.GetUplinks()) > 0 {
		m.Set("uplinks", strs(vs.GetUplinks()))
	}
	return m
}

func vgMsg(g *acliv1.VolumeGroup) *render.Msg {
	m := &render.Msg{}
	var att []any
	for _, u := range g.GetVmUuids() {
		att = append(att, (&render.Msg{}).Set("vm_uuid", u))
	}
	for _, iqn := range g.GetExternalInitiators() {
		att = append(att, (&render.Msg{}).Set("external_initiator_name", iqn))
	}
	m.Set("attachment_list", att)
	m.SetNonEmpty("description", g.GetDescription())
	var disks []any
	for _, d := range g.GetDisks() {
		dm := &render.Msg{}
		dm.SetNonEmpty("container_name", d.GetContainer())
		dm.Set("index", int64(d.GetIndex()))
		dm.SetNonEmpty("source_vmdisk_uuid", d.GetSourceVmdiskUuid())
		dm.Set("vmdisk_size", d.GetSizeBytes())
		dm.SetNonEmpty("vmdisk_uuid", d.GetUuid())
		disks = append(disks, dm)
	}
	m.Set("disk_list", disks)
	m.SetNonEmpty("iscsi_target_name", g.GetIscsiTarget())
	m.SetNonEmpty("iscsi_target_prefix", g.GetIscsiTargetPrefix())
	m.Set("load_balance_vm_attachments", g.GetLoadBalanceVmAttachments())
	m.Set("name", g.GetName())
	var sessions []any
	for _, s := range g.GetSessions() {
		sessions = append(sessions, render.FromProto(s))
	}
	m.Set("session_list", sessions)
	m.Set("uuid", g.GetUuid())
	return m
}

// usecs is acli's task time: ISO 8601 with microseconds, in UTC.
func usecs(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return ""
	}
	return t.AsTime().UTC().Format("2006-01-02T15:04:05.000000")
}

var entityTypes = map[acliv1.EntityKind]string{
	acliv1.EntityKind_kVm:          "kVM",
	acliv1.EntityKind_kHost:        "kNode",
	acliv1.EntityKind_kVolumeGroup: "kVolumeGroup",
	acliv1.EntityKind_kNetwork:     "kNetwork",
}

func taskMsg(k *acliv1.Task) *render.Msg {
	m := &render.Msg{}
	m.Set("cancellable", k.GetCancellable())
	m.Set("canceled", k.GetStatus() == acliv1.TaskStatus_kAborted)
	m.SetNonEmpty("complete_time_usecs", usecs(k.GetCompleteTime()))
	m.Set("component", "Acropolis")
	m.SetNonEmpty("create_time_usecs", usecs(k.GetCreateTime()))
	var ents []any
	for _, e := range k.GetEntities() {
		typ, ok := entityTypes[e.GetKind()]
		if !ok {
			typ = e.GetKind().String()
		}
		em := (&render.Msg{}).Set("entity_id", e.GetUuid())
		em.SetNonEmpty("entity_name", e.GetName())
		ents = append(ents, em.Set("entity_type", render.Enum(typ)))
	}
	m.Set("entity_list", ents)
	var msgs []any
	for _, s := range k.GetMessages() {
		msgs = append(msgs, s)
	}
	m.Set("message_list", msgs)
	m.Set("operation_type", render.Enum(k.GetOperation().String()))
	m.SetNonEmpty("parent_task_uuid", k.GetParentTaskUuid())
	m.Set("percentage_complete", int64(k.GetPercent()))
	m.SetNonEmpty("principal", k.GetPrincipal())
	m.SetNonEmpty("progress_message", k.GetProgressMessage())
	if k.GetError() != "" || k.GetErrorCode() != 0 {
		resp := (&render.Msg{}).Set("error_code", int64(k.GetErrorCode()))
		resp.SetNonEmpty("error_detail", k.GetError())
		m.Set("response", resp)
	}
	m.SetNonEmpty("start_time_usecs", usecs(k.GetStartTime()))
	m.Set("status", render.Enum(enumText(k.GetStatus().String(), k.GetStatus() == 0)))
	m.Set("subtask_uuid_list", strs(k.GetSubtaskUuids()))
	m.Set("uuid", k.GetUuid())
	var vs []any
	for _, v := range k.GetViolations() {
		vs = append(vs, render.FromProto(v))
	}
	m.Set("violation_list", vs)
	return m
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// acliGetDoc is a *.get result as acli gives it: protobuf text by default,
// JSON data keyed by entity name (a task's is the task itself, as acli's
// task.get), and the readable block for -o wide and -o block.
func acliGetDoc[T proto.Message](ctx context.Context, r *Req, items []T, block *render.Block) render.Doc {
	var ips hostIPs
	for _, it := range items {
		if v, ok := any(it).(*acliv1.Vm); ok && v.GetHostUuid() != "" {
			ips = loadHostIPs(ctx, r)
			break
		}
	}
	named := make([]render.Named, len(items))
	for i, it := range items {
		named[i] = acliNamed(it, ips)
	}
	var data any = render.Keyed(named)
	if len(items) > 0 {
		if _, ok := any(items[0]).(*acliv1.Task); ok {
			tasks := make([]any, len(named))
			for i, n := range named {
				tasks[i] = n.Msg
			}
			data = tasks
			if len(tasks) == 1 {
				data = named[0].Msg
			}
		}
	}
	return render.Doc{Data: data, Block: block, Proto: named}
}

// hostListData is host.list's JSON: every API field, plus the names acli's
// scripts read (.data[].hypervisorAddress, compute_only).
func hostListData(hosts []*acliv1.Host) []*render.Msg {
	out := make([]*render.Msg, len(hosts))
	for i, h := range hosts {
		m := render.FromProto(h)
		m.Set("hypervisorAddress", h.GetHypervisorIp())
		m.Set("compute_only", false)
		out[i] = m
	}
	return out
}

// netListData is net.list's JSON: every API field, plus acli's id (the
// VLAN, .data[0].id) and type.
func netListData(nets []*acliv1.Network) []*render.Msg {
	out := make([]*render.Msg, len(nets))
	for i, n := range nets {
		m := render.FromProto(n)
		m.Set("id", int64(n.GetVlanId()))
		m.Set("type", "kBridged")
		out[i] = m
	}
	return out
}
