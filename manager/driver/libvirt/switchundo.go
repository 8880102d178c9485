package libvirt

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// A switch change that fails on one host after every host passed the
// checks is put back on the hosts already changed (and on the one that
// failed, which may be half changed): each host's bridge is read before
// any host changes, and restored from what was read.

// bridgeWas is a host's bridge before a switch change.
type bridgeWas struct {
	// mtu of the bridge and of its uplinks (and of the new uplinks, for a
	// Linux bridge): ip's MTU, or Open vSwitch's mtu_request ("[]": none).
	mtu map[string]string
	// Open vSwitch: the uplink port (nil: there was none).
	port *ovsPortWas
	// Linux bridge: its uplink ports.
	ports []string
}

// ovsPortWas is an uplink bond port's settings, as ovs-vsctl sets them.
type ovsPortWas struct {
	ifaces              []string
	mode, lacp, primary string // "" when unset
}

// snapshot reads the host's bridge as vs's change would leave it to put back.
func (p hostSwitch) snapshot(ctx context.Context, vs *acliv1.VirtualSwitch) (bridgeWas, error) {
	if p.kind == ovsBridge {
		return ovsSnapshot(ctx, p.sh, vs.BridgeName)
	}
	was := bridgeWas{mtu: map[string]string{}}
	all, err := ipLink(ctx, p.sh)
	if err != nil {
		return was, err
	}
	for _, l := range all {
		switch {
		case l.Name == vs.BridgeName || slices.Contains(vs.Uplinks, l.Name):
		case l.Master == vs.BridgeName && l.kind() != "tun":
			was.ports = append(was.ports, l.Name)
		default:
			continue
		}
		was.mtu[l.Name] = strconv.Itoa(l.MTU)
	}
	return was, nil
}

// ovsRows are the columns of table's rows that match, as ovs-vsctl's
// find reads them in JSON.
func ovsRows(ctx context.Context, sh hostShell, columns, table string, match ...string) ([][]json.RawMessage, error) {
	out, err := sh(ctx, append([]string{"ovs-vsctl", "--timeout=5", "--format=json", "--columns=" + columns, "find", table}, match...)...)
	if err != nil {
		return nil, err
	}
	var t struct{ Data [][]json.RawMessage }
	if err := json.Unmarshal([]byte(out), &t); err != nil {
		return nil, fmt.Errorf("ovs-vsctl find %s: %v", table, err)
	}
	return t.Data, nil
}

// ovsAtoms reads an OVSDB JSON value: an atom, ["uuid", id], or a
// ["set", [...]] / ["map", [[k, v]...]] of them, as strings (a map's as k=v).
func ovsAtoms(raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return []string{n.String()}
	}
	var pair []json.RawMessage
	if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
		return nil
	}
	var tag string
	json.Unmarshal(pair[0], &tag)
	switch tag {
	case "uuid":
		json.Unmarshal(pair[1], &s)
		return []string{s}
	case "set":
		var items []json.RawMessage
		json.Unmarshal(pair[1], &items)
		var out []string
		for _, i := range items {
			out = append(out, ovsAtoms(i)...)
		}
		return out
	case "map":
		var kvs [][]json.RawMessage
		json.Unmarshal(pair[1], &kvs)
		var out []string
		for _, kv := range kvs {
			if len(kv) == 2 {
				out = append(out, strings.Join(ovsAtoms(kv[0]), "")+"="+strings.Join(ovsAtoms(kv[1]), ""))
			}
		}
		return out
	}
	return nil
}

func ovsSnapshot(ctx context.Context, sh hostShell, br string) (bridgeWas, error) {
	was := bridgeWas{mtu: map[string]string{}}
	ifaces, err := ovsRows(ctx, sh, "_uuid,name,mtu_request", "interface")
	if err != nil {
		return was, err
	}
	names, mtus := map[string]string{}, map[string]string{}
	for _, r := range ifaces {
		if len(r) != 3 {
			return was, errors.New("ovs-vsctl find interface: rows of 3 columns expected")
		}
		id, name := strings.Join(ovsAtoms(r[0]), ""), strings.Join(ovsAtoms(r[1]), "")
		names[id], mtus[name] = name, cmp.Or(strings.Join(ovsAtoms(r[2]), ""), "[]")
	}
	was.mtu[br] = cmp.Or(mtus[br], "[]")
	ports, err := ovsRows(ctx, sh, "interfaces,bond_mode,lacp,other_config", "port", "name="+uplinkPort(br))
	if err != nil || len(ports) == 0 {
		return was, err
	}
	r := ports[0]
	if len(r) != 4 {
		return was, errors.New("ovs-vsctl find port: rows of 4 columns expected")
	}
	was.port = &ovsPortWas{mode: strings.Join(ovsAtoms(r[1]), ""), lacp: strings.Join(ovsAtoms(r[2]), "")}
	for _, id := range ovsAtoms(r[0]) {
		was.port.ifaces = append(was.port.ifaces, names[id])
		was.mtu[names[id]] = mtus[names[id]]
	}
	for _, kv := range ovsAtoms(r[3]) {
		if v, ok := strings.CutPrefix(kv, "bond-primary="); ok {
			was.port.primary = v
		}
	}
	return was, nil
}

// restore puts the host's bridge back as snapshot read it.
func (p hostSwitch) restore(ctx context.Context, vs *acliv1.VirtualSwitch) error {
	br, was := vs.BridgeName, p.was
	if p.kind == ovsBridge {
		port := uplinkPort(br)
		args := []string{"ovs-vsctl", "--timeout=10", "--if-exists", "del-port", br, port}
		if w := was.port; w != nil {
			refs := make([]string, len(w.ifaces))
			for i, u := range w.ifaces {
				refs[i] = "@i" + strconv.Itoa(i)
				args = append(args, "--", "--id="+refs[i], "create", "interface", "name="+u, "mtu_request="+was.mtu[u])
			}
			args = append(args, "--", "--id=@p", "create", "port", "name="+port, "interfaces=["+strings.Join(refs, ",")+"]")
			for k, v := range map[string]string{"bond_mode": w.mode, "lacp": w.lacp, "other_config:bond-primary": w.primary} {
				if v != "" {
					args = append(args, k+"="+v)
				}
			}
			args = append(args, "--", "add", "bridge", br, "ports", "@p")
		}
		args = append(args, "--", "set", "interface", br, "mtu_request="+was.mtu[br])
		_, err := p.sh(ctx, args...)
		return err
	}
	var errs []error
	run := func(argv ...string) {
		if _, err := p.sh(ctx, argv...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range vs.Uplinks {
		if !slices.Contains(was.ports, u) {
			run("ip", "link", "set", "dev", u, "nomaster")
			if m := was.mtu[u]; m != "" {
				run("ip", "link", "set", "dev", u, "mtu", m)
			}
		}
	}
	for _, o := range was.ports {
		run("ip", "link", "set", "dev", o, "mtu", was.mtu[o], "master", br)
	}
	run("ip", "link", "set", "dev", br, "mtu", was.mtu[br])
	return errors.Join(errs...)
}

// rollBack puts back the hosts of plan (changed, or failed half-way), in
// reverse order, and says which could not be.
func rollBack(ctx context.Context, vs *acliv1.VirtualSwitch, plan []hostSwitch) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var back, kept []string
	for _, p := range slices.Backward(plan) {
		if err := p.restore(ctx, vs); err != nil {
			kept = append(kept, fmt.Sprintf("host %s could not be put back (%v)", p.host.Name, err))
			continue
		}
		back = append(back, p.host.Name)
	}
	slices.Reverse(back)
	var msg []string
	if len(back) > 0 {
		msg = append(msg, "put back as it was on host "+strings.Join(back, ", "))
	}
	return strings.Join(append(msg, kept...), "; ")
}
