package libvirt

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// bridgeKind is what a host's bridge is: libvirt plugs a NIC into an Open
// vSwitch bridge with a virtual port (and can tag it), into a Linux bridge
// as a plain port.
type bridgeKind int

const (
	noBridge bridgeKind = iota
	linuxBridge
	ovsBridge
)

func (k bridgeKind) String() string {
	return [...]string{"no bridge", "Linux bridge", "Open vSwitch bridge"}[k]
}

// bridgeOn says what bridge name is on a host; why is set when it is
// none, saying what was looked at.
func bridgeOn(ctx context.Context, sh hostShell, name string) (kind bridgeKind, why string, err error) {
	_, oerr := sh(ctx, "ovs-vsctl", "--timeout=5", "br-exists", name)
	if oerr == nil {
		return ovsBridge, "", nil
	}
	if err := ctx.Err(); err != nil {
		return noBridge, "", err
	}
	link, lerr := ipLink(ctx, sh, "dev", name)
	switch {
	case lerr != nil:
		return noBridge, fmt.Sprintf("no interface %s (%v)", name, lerr), nil
	case len(link) == 1 && link[0].kind() == "bridge":
		return linuxBridge, "", nil
	case exitCode(oerr) == 2:
		return noBridge, fmt.Sprintf("%s is a %s interface, no bridge", name, link[0].kindName()), nil
	}
	return noBridge, fmt.Sprintf("%s is a %s interface, no Linux bridge, and Open vSwitch does not answer (%v)", name, link[0].kindName(), oerr), nil
}

// ipLinkInfo is one interface as `ip -j -d link show` has it.
type ipLinkInfo struct {
	Name     string `json:"ifname"`
	Master   string `json:"master"`
	MTU      int    `json:"mtu"`
	LinkInfo *struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
}

func (l ipLinkInfo) kind() string {
	if l.LinkInfo == nil {
		return ""
	}
	return l.LinkInfo.Kind
}

func (l ipLinkInfo) kindName() string {
	if k := l.kind(); k != "" {
		return k
	}
	return "physical"
}

func ipLink(ctx context.Context, sh hostShell, sel ...string) ([]ipLinkInfo, error) {
	out, err := sh(ctx, append([]string{"ip", "-j", "-d", "link", "show"}, sel...)...)
	if err != nil {
		return nil, err
	}
	var links []ipLinkInfo
	if out == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("ip link show %s: %v", strings.Join(sel, " "), err)
	}
	return links, nil
}

// hostNICs are nics as host plugs them. A NIC whose virtual switch's
// bridge is an Open vSwitch bridge there is a port of it, tagged with its
// network's VLAN, as on AHV; otherwise it is on its network's own bridge
// (a Linux bridge, which libvirt cannot tag, or an Open vSwitch one). A
// host without a command channel has Linux bridges, as before bridges
// were probed. One probe per bridge.
func (d *Driver) hostNICs(ctx context.Context, host *acliv1.Host, nics []*acliv1.Nic) ([]NICSpec, error) {
	out := make([]NICSpec, len(nics))
	for i, n := range nics {
		out[i] = nicSpec(n)
	}
	if len(nics) == 0 {
		return out, nil
	}
	sh, err := d.shell(host)
	if err != nil {
		return out, nil
	}
	return plugNICs(ctx, sh, d.networkLookup(), nics, out)
}

// plugNICs puts each NIC of out (nics' specs) on the bridge sh's host
// plugs it into (hostNICs).
func plugNICs(ctx context.Context, sh hostShell, networks func(string) (driver.NicNetwork, bool), nics []*acliv1.Nic, out []NICSpec) ([]NICSpec, error) {
	kinds := map[string]bridgeKind{}
	kind := func(br string) (bridgeKind, error) {
		if k, ok := kinds[br]; ok {
			return k, nil
		}
		k, _, err := bridgeOn(ctx, sh, br)
		if err == nil {
			kinds[br] = k
		}
		return k, err
	}
	for i, n := range nics {
		if nn, ok := networks(n.NetworkUuid); ok && nn.Bridge != "" {
			k, err := kind(nn.Bridge)
			if err != nil {
				return nil, err
			}
			if k == ovsBridge {
				out[i].Bridge, out[i].OVS, out[i].VLAN = nn.Bridge, true, int(nn.VlanID)
				continue
			}
		}
		k, err := kind(out[i].Bridge)
		if err != nil {
			return nil, err
		}
		out[i].OVS = k == ovsBridge
	}
	return out, nil
}

var _ driver.NetworkUser = (*Driver)(nil)

// UseNetworks implements driver.NetworkUser.
func (d *Driver) UseNetworks(lookup func(networkUUID string) (driver.NicNetwork, bool)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.networks = lookup
}

// networkLookup reads a network; without the manager's, none is known.
func (d *Driver) networkLookup() func(string) (driver.NicNetwork, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.networks == nil {
		return func(string) (driver.NicNetwork, bool) { return driver.NicNetwork{}, false }
	}
	return d.networks
}

var _ driver.SwitchWirer = (*Driver)(nil)

// uplinkPort is the Open vSwitch port bonding a bridge's uplinks, named
// as on AHV (br0-up).
func uplinkPort(bridge string) string { return bridge + "-up" }

// ovsBondModes are acli's bond types as Open vSwitch's bond_mode.
var ovsBondModes = map[string]string{"kActiveBackup": "active-backup", "kBalanceSlb": "balance-slb", "kBalanceTcp": "balance-tcp"}

// hostSwitch is one host's side of a switch change, checked before any
// host changes.
type hostSwitch struct {
	host *acliv1.Host
	sh   hostShell
	kind bridgeKind
	old  []string // Linux bridge: the uplink ports it has
	was  bridgeWas
}

// WireSwitch implements driver.SwitchWirer with Config.NetworkBridges:
// each host's bridge of vs takes vs's uplinks (bonded as vs says on an
// Open vSwitch bridge; one uplink on a Linux bridge) and MTU. Every host is
// checked first, so a host that is down, lacks the bridge or an uplink
// refuses the change for all; a host that fails after that has the hosts
// changed before it put back (switchundo.go). A switch with no uplinks
// named leaves each host's uplinks as they are.
func (d *Driver) WireSwitch(ctx context.Context, vs *acliv1.VirtualSwitch) error {
	if !d.cfg.NetworkBridges {
		return nil // the hosts' bridges are theirs
	}
	hosts := d.hostRecords()
	plan := make([]hostSwitch, 0, len(hosts))
	for _, h := range hosts {
		p, err := d.checkSwitch(ctx, h, vs)
		if err != nil {
			return fmt.Errorf("host %s %w", h.Name, err)
		}
		plan = append(plan, p)
	}
	for i, p := range plan {
		if err := p.apply(ctx, vs); err != nil {
			return fmt.Errorf("host %s: %w; %s", p.host.Name, err, rollBack(ctx, vs, plan[:i+1]))
		}
	}
	return nil
}

// hostRecords are the driver's hosts, by name.
func (d *Driver) hostRecords() []*acliv1.Host {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*acliv1.Host, 0, len(d.members))
	for _, m := range d.members {
		out = append(out, &acliv1.Host{Uuid: m.uuid, Name: m.name, HypervisorIp: m.ip})
	}
	slices.SortFunc(out, func(a, b *acliv1.Host) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (d *Driver) checkSwitch(ctx context.Context, h *acliv1.Host, vs *acliv1.VirtualSwitch) (hostSwitch, error) {
	p := hostSwitch{host: h}
	if _, err := d.conn(h); err != nil {
		return p, fmt.Errorf("is down, so its bridge %s cannot change; recover it first", vs.BridgeName)
	}
	sh, err := d.shell(h)
	if err != nil {
		return p, err
	}
	p.sh = sh
	kind, why, err := bridgeOn(ctx, sh, vs.BridgeName)
	if err != nil {
		return p, fmt.Errorf("cannot be asked about bridge %s: %w", vs.BridgeName, err)
	}
	if kind == noBridge {
		return p, fmt.Errorf("has no bridge %s for virtual switch %s: %s", vs.BridgeName, vs.Name, why)
	}
	p.kind = kind
	if p.was, err = p.snapshot(ctx, vs); err != nil {
		return p, fmt.Errorf("cannot read bridge %s as it is, to put it back should the change fail: %w", vs.BridgeName, err)
	}
	if len(vs.Uplinks) == 0 {
		return p, nil
	}
	if kind == linuxBridge && len(vs.Uplinks) > 1 {
		return p, fmt.Errorf("has a Linux bridge %s, which takes one uplink (%s given); bonding several needs an Open vSwitch bridge", vs.BridgeName, strings.Join(vs.Uplinks, ", "))
	}
	if a := driver.ActiveUplink(vs, h.Uuid); a != "" && !slices.Contains(vs.Uplinks, a) {
		return p, fmt.Errorf("has active uplink %s outside its bond (%s)", a, strings.Join(vs.Uplinks, ", "))
	}
	all, err := ipLink(ctx, sh)
	if err != nil {
		return p, fmt.Errorf("cannot list its interfaces: %w", err)
	}
	for _, u := range vs.Uplinks {
		i := slices.IndexFunc(all, func(l ipLinkInfo) bool { return l.Name == u })
		if i < 0 {
			return p, fmt.Errorf("has no interface %s for the uplinks of %s", u, vs.BridgeName)
		}
		if m := all[i].Master; m != "" && m != vs.BridgeName && m != "ovs-system" {
			return p, fmt.Errorf("has interface %s in bridge %s, not %s", u, m, vs.BridgeName)
		}
		if kind == ovsBridge {
			if br, err := sh(ctx, "ovs-vsctl", "--timeout=5", "iface-to-br", u); err == nil && br != vs.BridgeName {
				return p, fmt.Errorf("has interface %s in Open vSwitch bridge %s, not %s", u, br, vs.BridgeName)
			}
		}
	}
	if kind == linuxBridge {
		for _, l := range all {
			if l.Master == vs.BridgeName && l.kind() != "tun" {
				p.old = append(p.old, l.Name)
			}
		}
	}
	return p, nil
}

func (p hostSwitch) apply(ctx context.Context, vs *acliv1.VirtualSwitch) error {
	if p.kind == ovsBridge {
		return p.applyOVS(ctx, vs)
	}
	return p.applyLinux(ctx, vs)
}

// applyOVS replaces the bridge's uplink port in one transaction: a port
// br-up over the uplinks, bonded, with the MTU asked of each interface.
func (p hostSwitch) applyOVS(ctx context.Context, vs *acliv1.VirtualSwitch) error {
	br, port := vs.BridgeName, uplinkPort(vs.BridgeName)
	mtu := "mtu_request=" + strconv.Itoa(int(vs.Mtu))
	args := []string{"ovs-vsctl", "--timeout=10"}
	if len(vs.Uplinks) == 0 {
		// The host keeps its uplinks; they take the MTU.
		args = append(args, "set", "interface", br, mtu)
		if _, err := p.sh(ctx, "ovs-vsctl", "--timeout=5", "port-to-br", port); err == nil {
			ifaces, err := p.sh(ctx, "ovs-vsctl", "--timeout=5", "list-ifaces", br)
			if err != nil {
				return err
			}
			for _, i := range strings.Fields(ifaces) {
				args = append(args, "--", "set", "interface", i, mtu)
			}
		}
		_, err := p.sh(ctx, args...)
		return err
	}
	if p.ovsWired(ctx, vs) {
		return nil // as asked already (a restart rewires): no uplink flap
	}
	args = append(args, "--if-exists", "del-port", br, port)
	refs := make([]string, len(vs.Uplinks))
	for i, u := range vs.Uplinks {
		refs[i] = "@i" + strconv.Itoa(i)
		args = append(args, "--", "--id="+refs[i], "create", "interface", "name="+u, mtu)
	}
	portArgs := []string{"--", "--id=@p", "create", "port", "name=" + port, "interfaces=[" + strings.Join(refs, ",") + "]"}
	if mode := ovsBondModes[vs.BondType]; mode != "" && len(vs.Uplinks) > 1 {
		portArgs = append(portArgs, "bond_mode="+mode)
	}
	if vs.Lacp {
		portArgs = append(portArgs, "lacp=active")
	}
	if a := driver.ActiveUplink(vs, p.host.Uuid); a != "" && len(vs.Uplinks) > 1 {
		portArgs = append(portArgs, "other_config:bond-primary="+a)
	}
	args = append(args, portArgs...)
	args = append(args, "--", "add", "bridge", br, "ports", "@p", "--", "set", "interface", br, mtu)
	_, err := p.sh(ctx, args...)
	return err
}

// ovsWired says whether the bridge's uplink port is already vs's: the
// same interfaces, bond, LACP, primary and MTU.
func (p hostSwitch) ovsWired(ctx context.Context, vs *acliv1.VirtualSwitch) bool {
	br, port := vs.BridgeName, uplinkPort(vs.BridgeName)
	args := []string{"ovs-vsctl", "--timeout=5", "--if-exists", "get", "port", port, "interfaces", "bond_mode", "lacp", "other_config:bond-primary",
		"--", "--if-exists", "get", "interface", br, "mtu_request"}
	for _, u := range vs.Uplinks {
		args = append(args, "--", "--if-exists", "get", "interface", u, "_uuid", "mtu_request")
	}
	out, err := p.sh(ctx, args...)
	lines := strings.Split(out, "\n")
	if err != nil || len(lines) != 5+2*len(vs.Uplinks) {
		return false
	}
	mtu := strconv.Itoa(int(vs.Mtu))
	mode, lacp, primary := "[]", "[]", ""
	if m := ovsBondModes[vs.BondType]; m != "" && len(vs.Uplinks) > 1 {
		mode = m
	}
	if vs.Lacp {
		lacp = "active"
	}
	if a := driver.ActiveUplink(vs, p.host.Uuid); a != "" && len(vs.Uplinks) > 1 {
		primary = a
	}
	if lines[1] != mode || lines[2] != lacp || strings.Trim(lines[3], `"`) != primary || lines[4] != mtu {
		return false
	}
	var ids []string
	for i := range vs.Uplinks {
		if lines[6+2*i] != mtu {
			return false
		}
		ids = append(ids, lines[5+2*i])
	}
	have := strings.Split(strings.Trim(lines[0], "[]"), ", ")
	slices.Sort(have)
	slices.Sort(ids)
	return slices.Equal(have, ids)
}

// applyLinux makes the one uplink the bridge's only non-VM port.
func (p hostSwitch) applyLinux(ctx context.Context, vs *acliv1.VirtualSwitch) error {
	mtu := strconv.Itoa(int(vs.Mtu))
	for _, o := range p.old {
		if slices.Contains(vs.Uplinks, o) || len(vs.Uplinks) == 0 {
			continue
		}
		if _, err := p.sh(ctx, "ip", "link", "set", "dev", o, "nomaster"); err != nil {
			return err
		}
	}
	ups := vs.Uplinks
	if len(ups) == 0 {
		ups = p.old
	}
	for _, u := range ups {
		if _, err := p.sh(ctx, "ip", "link", "set", "dev", u, "mtu", mtu, "master", vs.BridgeName, "up"); err != nil {
			return err
		}
	}
	_, err := p.sh(ctx, "ip", "link", "set", "dev", vs.BridgeName, "mtu", mtu)
	return err
}
