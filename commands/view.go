package commands

import (
	"strconv"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Human views of entities. Column orders follow acli so scripts that read
// tables by position keep working; new columns go only at the end.

func yesNo(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func i32(n int32) string { return strconv.FormatInt(int64(n), 10) }

func sizeOrEmpty(n int64) string {
	if n == 0 {
		return ""
	}
	return FormatSize(n)
}

// enumText prints an enum the acli way, blank when unset.
func enumText(s string, zero bool) string {
	if zero {
		return ""
	}
	return s
}

func hostTable(hosts []*acliv1.Host) *render.TableData {
	t := &render.TableData{Headers: []string{
		"Hypervisor IP", "Hypervisor DNS Name", "Host UUID", "Node state", "Connected", "Node type",
		"Schedulable", "Hypervisor Name", "CVM IP",
		"Schedulable reason", "CVM state", "VMs",
	}}
	t.Rows = make([][]string, 0, len(hosts))
	for _, h := range hosts {
		dns := h.GetHypervisorDnsName()
		if dns == "" {
			dns = h.GetHypervisorIp()
		}
		t.Rows = append(t.Rows, []string{
			h.GetHypervisorIp(), dns, h.GetUuid(), enumText(h.GetNodeState().String(), h.GetNodeState() == 0),
			yesNo(h.GetConnected()), h.GetNodeType(), yesNo(h.GetSchedulable()), h.GetName(), h.GetCvmIp(),
			h.GetSchedulableReason(), enumText(h.GetCvmState().String(), h.GetCvmState() == 0), i32(h.GetNumVms()),
		})
	}
	t.Narrow = 9 // acli's columns end with CVM IP
	return t
}

func hostBlock(h *acliv1.Host) *render.Block {
	b := &render.Block{}
	b.Add("Name", h.GetName()).
		Add("UUID", h.GetUuid()).
		Add("Hypervisor IP", h.GetHypervisorIp()).
		Add("Hypervisor DNS name", h.GetHypervisorDnsName()).
		Add("Hypervisor type", h.GetHypervisorType()).
		Add("Node type", h.GetNodeType()).
		Add("Node state", enumText(h.GetNodeState().String(), h.GetNodeState() == 0)).
		Add("Connected", yesNo(h.GetConnected())).
		Add("Schedulable", yesNo(h.GetSchedulable())).
		Add("Schedulable reason", h.GetSchedulableReason()).
		Add("Last heartbeat", ts(h.GetLastHeartbeat()))
	res := b.Section("Resources")
	res.Add("CPU cores", i32(h.GetCpuCores())).
		Add("vCPUs used", i32(h.GetVcpusUsed())).
		Add("Memory", sizeOrEmpty(h.GetMemoryBytes())).
		Add("Memory used", FormatSize(h.GetMemoryUsedBytes())).
		Add("VMs", i32(h.GetNumVms()))
	cvm := b.Section("CVM")
	cvm.Add("IP", h.GetCvmIp()).
		Add("State", enumText(h.GetCvmState().String(), h.GetCvmState() == 0))
	if h.GetCvmSshPort() != 0 {
		cvm.Add("SSH port", i32(h.GetCvmSshPort()))
	}
	if h.GetSshPort() != 0 || h.GetSshHostKeyFingerprint() != "" {
		ssh := b.Section("SSH")
		ssh.Add("Port", i32(h.GetSshPort())).Add("Host key", h.GetSshHostKeyFingerprint())
	}
	if h.GetLibvirtUri() != "" {
		b.Add("libvirt URI", h.GetLibvirtUri())
	}
	hostDevicesBlock(b, h)
	return b
}

func vmTable(vms []*acliv1.Vm) *render.TableData {
	t := &render.TableData{Headers: []string{"VM name", "VM UUID", "Power state", "Host", "vCPUs", "Memory"}}
	t.Rows = make([][]string, 0, len(vms))
	for _, v := range vms {
		t.Rows = append(t.Rows, []string{
			v.GetName(), v.GetUuid(), enumText(v.GetPowerState().String(), v.GetPowerState() == 0),
			v.GetHostName(), i32(v.GetNumVcpus()), FormatSize(v.GetMemoryBytes()),
		})
	}
	t.Narrow = 2 // acli's vm.list: VM name, VM UUID
	return t
}

func vmBlock(v *acliv1.Vm) *render.Block {
	b := &render.Block{}
	b.Add("Name", v.GetName()).
		Add("UUID", v.GetUuid()).
		Add("Description", v.GetDescription()).
		Add("Power state", enumText(v.GetPowerState().String(), v.GetPowerState() == 0)).
		Add("Host", hostRef(v.GetHostName(), v.GetHostUuid())).
		Add("vCPUs", i32(v.GetNumVcpus())).
		Add("Cores per vCPU", i32(v.GetNumCoresPerVcpu())).
		Add("Memory", FormatSize(v.GetMemoryBytes())).
		Add("HA priority", i32(v.GetHaPriority())).
		Add("Agent VM", yesNo(v.GetAgentVm())).
		Add("Passthrough", yesNo(v.GetPassthrough())).
		Add("Created", ts(v.GetCreateTime()))
	vmSettingsBlock(b, v)
	vmDevicesBlock(b, v)
	if v.GetOriginalHostUuid() != "" {
		b.Add("Original host", v.GetOriginalHostUuid())
	}
	if len(v.GetHostAffinity()) > 0 {
		b.Add("Host affinity", strings.Join(v.GetHostAffinity(), ","))
	}
	if v.GetBusyTaskUuid() != "" {
		b.Add("Busy with task", v.GetBusyTaskUuid())
	}
	if v.GetBootDiskAddr() != "" {
		b.Add("Boot device", v.GetBootDiskAddr())
	}
	disks := b.Section("Disks")
	for _, d := range v.GetDisks() {
		s := disks.Section(diskAddr(d))
		s.Add("UUID", d.GetUuid()).
			Add("Size", FormatSize(d.GetSizeBytes())).
			Add("Container", d.GetContainer())
		if d.GetCdrom() {
			s.Add("CD-ROM", "True")
		}
		if d.GetVolumeGroupUuid() != "" {
			s.Add("Volume group", d.GetVolumeGroupUuid())
		}
		if d.GetSourceImageUuid() != "" {
			s.Add("Source image", d.GetSourceImageUuid())
		}
		if d.GetSourceVmdiskUuid() != "" {
			s.Add("Source vmdisk", d.GetSourceVmdiskUuid())
		}
		if d.GetVmdiskPath() != "" {
			s.Add("vmdisk path", d.GetVmdiskPath())
		}
		if d.GetServedByCvmIp() != "" {
			s.Add("Served by CVM", d.GetServedByCvmIp()+" ("+d.GetPath()+")")
		}
	}
	nics := b.Section("NICs")
	for _, n := range v.GetNics() {
		s := nics.Section(n.GetMac())
		s.Add("Network", n.GetNetworkName()).
			Add("Network UUID", n.GetNetworkUuid()).
			Add("IP", n.GetIp()).
			Add("Model", n.GetModel())
	}
	if len(v.GetVolumeGroupUuids()) > 0 {
		b.Add("Volume groups", strings.Join(v.GetVolumeGroupUuids(), ","))
	}
	return b
}

func hostRef(name, uuid string) string {
	switch {
	case name != "" && uuid != "":
		return name + " (" + uuid + ")"
	case uuid != "":
		return uuid
	}
	return name
}

func diskAddr(d *acliv1.Disk) string { return d.GetBus() + "." + i32(d.GetIndex()) }

func diskTable(disks []*acliv1.Disk) *render.TableData {
	t := &render.TableData{Headers: []string{"Device bus", "Device index", "Disk UUID", "Size", "Container", "CD-ROM", "Served by CVM", "Path"}}
	for _, d := range disks {
		t.Rows = append(t.Rows, []string{d.GetBus(), i32(d.GetIndex()), d.GetUuid(), FormatSize(d.GetSizeBytes()),
			d.GetContainer(), yesNo(d.GetCdrom()), d.GetServedByCvmIp(), d.GetPath()})
	}
	return t
}

func nicTable(nics []*acliv1.Nic) *render.TableData {
	t := &render.TableData{Headers: []string{"MAC address", "Network name", "Network UUID", "IP address", "Model"}}
	for _, n := range nics {
		t.Rows = append(t.Rows, []string{n.GetMac(), n.GetNetworkName(), n.GetNetworkUuid(), n.GetIp(), n.GetModel()})
	}
	return t
}

func netTable(nets []*acliv1.Network) *render.TableData {
	t := &render.TableData{Headers: []string{"Network name", "Network UUID", "Type", "Identifier", "VLAN mode", "Virtual switch", "IP config", "NICs"}, Narrow: 4}
	for _, n := range nets {
		t.Rows = append(t.Rows, []string{n.GetName(), n.GetUuid(), "kBridged", i32(n.GetVlanId()),
			enumText(n.GetMode().String(), n.GetMode() == 0), n.GetVswitchName(), n.GetIpConfig(), i32(n.GetNumNics())})
	}
	return t
}

func netPools(n *acliv1.Network) string {
	var s []string
	for _, p := range n.GetDhcpPools() {
		s = append(s, p.GetStart()+"-"+p.GetEnd())
	}
	return strings.Join(s, ", ")
}

// netVmsTable is acli's net.list_vms; the address is under -o wide.
func netVmsTable(vms []*acliv1.NetworkVm) *render.TableData {
	t := &render.TableData{Headers: []string{"VM UUID", "VM name", "MAC address", "IP address"}, Narrow: 3}
	for _, v := range vms {
		t.Rows = append(t.Rows, []string{v.GetVmUuid(), v.GetVmName(), v.GetMac(), v.GetIp()})
	}
	return t
}

func vswitchBlock(vs *acliv1.VirtualSwitch) *render.Block {
	b := &render.Block{}
	b.Add("Name", vs.GetName()).
		Add("Bridge", vs.GetBridgeName()).
		Add("MTU", i32(vs.GetMtu())).
		Add("Bond type", vs.GetBondType()).
		Add("LACP", strconv.FormatBool(vs.GetLacp())).
		Add("Uplinks", strings.Join(vs.GetUplinks(), ", ")).
		Add("Description", vs.GetDescription())
	if len(vs.GetActiveUplinks()) > 0 {
		active := b.Section("Active uplinks")
		for _, u := range vs.GetActiveUplinks() {
			active.Add(u.GetHostName(), u.GetInterface())
		}
	}
	return b
}

func nicBlock(n *acliv1.Nic) *render.Block {
	b := &render.Block{}
	mode := "kAccess"
	if n.GetVlanMode() == acliv1.NetworkMode_kTrunked {
		mode = "kTrunked"
	}
	var trunk []string
	for _, id := range n.GetTrunkedNetworks() {
		trunk = append(trunk, strconv.Itoa(int(id)))
	}
	b.Add("MAC address", n.GetMac()).
		Add("Network", n.GetNetworkName()).
		Add("Network UUID", n.GetNetworkUuid()).
		Add("IP address", n.GetIp()).
		Add("Model", n.GetModel()).
		Add("VLAN mode", mode).
		Add("Trunked networks", strings.Join(trunk, ", ")).
		Add("Connected", strconv.FormatBool(!n.GetDisconnected()))
	return b
}

func netBlock(n *acliv1.Network) *render.Block {
	b := &render.Block{}
	b.Add("Name", n.GetName()).
		Add("UUID", n.GetUuid()).
		Add("Type", enumText(n.GetMode().String(), n.GetMode() == 0)).
		Add("VLAN ID", i32(n.GetVlanId())).
		Add("Virtual switch", n.GetVswitchName()).
		Add("IP config", n.GetIpConfig())
	for _, f := range [][2]string{{"Gateway", n.GetDefaultGateway()}, {"DHCP pools", netPools(n)},
		{"DNS servers", strings.Join(n.GetDnsServers(), ", ")}, {"DNS domains", strings.Join(n.GetDnsDomains(), ", ")}} {
		if f[1] != "" {
			b.Add(f[0], f[1])
		}
	}
	b.Add("NICs", i32(n.GetNumNics()))
	return b
}

func entities(refs []*acliv1.EntityRef) string {
	var parts []string
	for _, e := range refs {
		n := e.GetName()
		if n == "" {
			n = e.GetUuid()
		}
		parts = append(parts, n)
	}
	return strings.Join(parts, ",")
}

func taskTable(tasks []*acliv1.Task) *render.TableData {
	// acli's columns, then the rest for -o wide.
	t := &render.TableData{Headers: []string{"Task UUID", "Parent Task UUID", "Component", "Sequence-id", "Type", "Status", "Percent", "Entities", "Created"}, Narrow: 6}
	for _, k := range tasks {
		seq := ""
		if k.GetSequenceId() > 0 {
			seq = strconv.FormatInt(k.GetSequenceId(), 10)
		}
		t.Rows = append(t.Rows, []string{k.GetUuid(), k.GetParentTaskUuid(), "Acropolis", seq, enumText(k.GetOperation().String(), k.GetOperation() == 0),
			enumText(k.GetStatus().String(), k.GetStatus() == 0), i32(k.GetPercent()), entities(k.GetEntities()), ts(k.GetCreateTime())})
	}
	return t
}

func taskBlock(k *acliv1.Task) *render.Block {
	b := &render.Block{}
	b.Add("UUID", k.GetUuid()).
		Add("Type", render.OpName(k.GetOperation())).
		Add("Started by", k.GetPrincipal()).
		Add("Status", enumText(k.GetStatus().String(), k.GetStatus() == 0)).
		Add("Percent", i32(k.GetPercent())).
		Add("Progress", k.GetProgressMessage()).
		Add("Parent task", k.GetParentTaskUuid()).
		Add("Created", ts(k.GetCreateTime())).
		Add("Started", ts(k.GetStartTime())).
		Add("Completed", ts(k.GetCompleteTime()))
	if k.GetError() != "" {
		b.Add("Error", k.GetError())
	}
	ents := b.Section("Entities")
	for _, e := range k.GetEntities() {
		ents.Add(strings.TrimPrefix(e.GetKind().String(), "k"), hostRef(e.GetName(), e.GetUuid()))
	}
	if len(k.GetSubtaskUuids()) > 0 {
		b.Add("Subtasks", strings.Join(k.GetSubtaskUuids(), ","))
	}
	if len(k.GetMessages()) > 0 {
		msgs := b.Section("Messages")
		for i, m := range k.GetMessages() {
			msgs.Add(strconv.Itoa(i+1), m)
		}
	}
	return b
}

func clusterStatusBlock(s *acliv1.ClusterStatus) *render.Block {
	b := &render.Block{}
	b.Add("Store", s.GetStore()).
		Add("Store location", s.GetStoreLocation()).
		Add("Leader", s.GetLeader())
	ms := b.Section("Managers")
	for _, m := range s.GetManagers() {
		role := "follower"
		if m.GetLeader() {
			role = "leader"
		}
		ms.Add(m.GetAddress(), role)
	}
	ss := b.Section("Store members")
	for _, m := range s.GetStoreMembers() {
		var parts []string
		switch {
		case m.GetHealthy():
			parts = append(parts, "healthy")
		case m.GetError() != "":
			parts = append(parts, "unhealthy: "+m.GetError())
		default:
			parts = append(parts, "unhealthy")
		}
		if m.GetLeader() {
			parts = append(parts, "store leader")
		}
		if m.GetVersion() != "" {
			parts = append(parts, "etcd "+m.GetVersion())
		}
		ss.Add(m.GetName(), m.GetEndpoint()+" "+strings.Join(parts, ", "))
	}
	return b
}

func clusterBlock(c *acliv1.Cluster) *render.Block {
	b := &render.Block{}
	b.Add("Name", c.GetName()).
		Add("UUID", c.GetUuid()).
		Add("Redundancy factor", i32(c.GetRedundancyFactor())).
		Add("iSCSI data services IP", c.GetIscsiDataServicesIp()).
		Add("Driver", c.GetDriver()).
		Add("Version", c.GetVersion()).
		Add("Hosts", i32(c.GetNumHosts())).
		Add("VMs", i32(c.GetNumVms())).
		Add("Created", ts(c.GetCreateTime()))
	return b
}
