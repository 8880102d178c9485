package state

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// The lookups features read through a Tx: by name, by hypervisor IP, by
// MAC, by NIC address, VMs in listing order with their encodings, hosts in
// IP order. They are kept in applyLocked, the one place a record becomes
// committed (or is undone), so they never disagree with the records.

// VmRecord is a committed VM and its protobuf encoding, made once per
// change so that a listing of thousands copies bytes instead of encoding.
// Both are immutable.
type VmRecord struct {
	Vm   *acliv1.Vm
	Wire []byte
}

// lookups are guarded by DB.mu.
type lookups struct {
	vmName   map[string][]string // name -> UUIDs (several VMs may share a name)
	macs     map[string]string   // MAC -> VM UUID
	nicCount map[string]int32    // network UUID -> NICs on it
	ipsUsed  map[string]int32    // network UUID -> addresses its NICs hold
	sorted   []*VmRecord         // by name then UUID: the listing order
	hostList []*acliv1.Host      // by hypervisor IP then name
	loading  bool                // Load appends to sorted and sorts once
}

func (ix *lookups) resetLookups() {
	*ix = lookups{vmName: map[string][]string{}, macs: map[string]string{}, nicCount: map[string]int32{}, ipsUsed: map[string]int32{}}
}

func vmRecordOrder(a, b *VmRecord) int {
	return cmp.Or(strings.Compare(a.Vm.Name, b.Vm.Name), strings.Compare(a.Vm.Uuid, b.Vm.Uuid))
}

func hostOrder(a, b *acliv1.Host) int {
	ia, _ := netip.ParseAddr(a.HypervisorIp)
	ib, _ := netip.ParseAddr(b.HypervisorIp)
	return cmp.Or(ia.Compare(ib), strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
}

// indexHostLocked replaces old by next (either nil) in the host list.
func (db *DB) indexHostLocked(old, next *acliv1.Host) {
	if old != nil {
		if i := slices.Index(db.hostList, old); i >= 0 {
			db.hostList = slices.Delete(db.hostList, i, i+1)
		}
	}
	if next != nil {
		i, _ := slices.BinarySearchFunc(db.hostList, next, hostOrder)
		db.hostList = slices.Insert(db.hostList, i, next)
	}
}

// indexVmLocked replaces old by next (either nil) in the VM indexes; wire
// is next's encoding (nil: made here).
func (db *DB) indexVmLocked(id string, old, next *acliv1.Vm, wire []byte) {
	if old == nil && next == nil {
		return
	}
	if old != nil {
		db.indexNicsLocked(id, old, -1)
	}
	if next != nil {
		db.indexNicsLocked(id, next, 1)
		if wire == nil {
			wire, _ = proto.Marshal(next)
		}
	}
	var i int
	found := false
	if old != nil {
		i, found = slices.BinarySearchFunc(db.sorted, &VmRecord{Vm: old}, vmRecordOrder)
	}
	switch {
	case next == nil:
		if found {
			db.sorted = slices.Delete(db.sorted, i, i+1)
		}
		db.unnameLocked(old)
	case found && old.Name == next.Name:
		db.sorted[i] = &VmRecord{Vm: next, Wire: wire} // same place: no shift
	default:
		if found {
			db.sorted = slices.Delete(db.sorted, i, i+1)
		}
		if old != nil {
			db.unnameLocked(old)
		}
		db.vmName[next.Name] = append(db.vmName[next.Name], id)
		r := &VmRecord{Vm: next, Wire: wire}
		if db.loading {
			db.sorted = append(db.sorted, r)
			return
		}
		j, _ := slices.BinarySearchFunc(db.sorted, r, vmRecordOrder)
		db.sorted = slices.Insert(db.sorted, j, r)
	}
}

func (db *DB) unnameLocked(v *acliv1.Vm) {
	ids := slices.DeleteFunc(db.vmName[v.Name], func(x string) bool { return x == v.Uuid })
	if len(ids) == 0 {
		delete(db.vmName, v.Name)
	} else {
		db.vmName[v.Name] = ids
	}
}

// indexNicsLocked adds (d 1) or removes (d -1) a VM's NICs in the MAC
// index and the per-network counts.
func (db *DB) indexNicsLocked(id string, v *acliv1.Vm, d int32) {
	for _, n := range v.Nics {
		if db.nicCount[n.NetworkUuid] += d; db.nicCount[n.NetworkUuid] == 0 {
			delete(db.nicCount, n.NetworkUuid)
		}
		switch {
		case d > 0:
			db.macs[n.Mac] = id
		case db.macs[n.Mac] == id:
			delete(db.macs, n.Mac)
		}
	}
}

// endLoadLocked sorts what Load appended.
func (db *DB) endLoadLocked() {
	db.loading = false
	slices.SortFunc(db.sorted, vmRecordOrder)
}

// match finds the record a committed index points to (id) if the
// transaction has not changed it away, else one the transaction writes.
func match[T interface {
	proto.Message
	comparable
}](tx *Tx, id, prefix string, get func(string) T, ok func(T) bool) T {
	var zero T
	if id != "" {
		if r := get(id); r != zero && ok(r) {
			return r
		}
	}
	for _, w := range tx.writes {
		if strings.HasPrefix(w.Key, prefix) {
			if r, _ := w.Msg.(T); r != zero && ok(r) {
				return r
			}
		}
	}
	return zero
}

// HostNamed is the host named name (nil if none).
func (tx *Tx) HostNamed(name string) *acliv1.Host {
	return match(tx, tx.db.hostName[name], HostPrefix, tx.Host, func(h *acliv1.Host) bool { return h.Name == name })
}

// HostByIP is the host with hypervisor IP ip (nil if none).
func (tx *Tx) HostByIP(ip string) *acliv1.Host {
	return match(tx, tx.db.hostIP[ip], HostPrefix, tx.Host, func(h *acliv1.Host) bool { return h.HypervisorIp == ip })
}

// NetworkNamed is the network named name (nil if none).
func (tx *Tx) NetworkNamed(name string) *acliv1.Network {
	n, _ := tx.db.nets.Named(name)
	return match(tx, n.GetUuid(), NetworkPrefix, tx.Network, func(n *acliv1.Network) bool { return n.Name == name })
}

// VmByMAC is the VM with a NIC of MAC mac (nil if none).
func (tx *Tx) VmByMAC(mac string) *acliv1.Vm {
	return match(tx, tx.db.macs[mac], VmPrefix, tx.Vm, func(v *acliv1.Vm) bool {
		return slices.ContainsFunc(v.Nics, func(n *acliv1.Nic) bool { return n.Mac == mac })
	})
}

// NicIPHolder is the VM whose NIC holds ip on network (nil if none).
func (tx *Tx) NicIPHolder(network, ip string) *acliv1.Vm {
	return match(tx, tx.db.nicIPs[nicIPKey(network, ip)], VmPrefix, tx.Vm, func(v *acliv1.Vm) bool { return hasIP(v, network, ip) })
}

// VmsNamed are the VMs named name, by UUID.
func (tx *Tx) VmsNamed(name string) []*acliv1.Vm {
	var out []*acliv1.Vm
	for _, id := range tx.db.vmName[name] {
		if _, staged := tx.staged[VmKey(id)]; !staged {
			out = append(out, tx.db.vms[id])
		}
	}
	for _, w := range tx.writes {
		if v, _ := w.Msg.(*acliv1.Vm); v != nil && v.Name == name && strings.HasPrefix(w.Key, VmPrefix) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b *acliv1.Vm) int { return strings.Compare(a.Uuid, b.Uuid) })
	return out
}

// VmNames are the committed VMs' names, each once, in no order.
func (tx *Tx) VmNames() []string {
	out := make([]string, 0, len(tx.db.vmName))
	for n := range tx.db.vmName {
		out = append(out, n)
	}
	return out
}

// NetworkUse is the number of NICs on network and of the addresses they
// hold.
func (tx *Tx) NetworkUse(network string) (nics, ips int32) {
	nics, ips = tx.db.nicCount[network], tx.db.ipsUsed[network]
	for _, w := range tx.writes {
		id, ok := strings.CutPrefix(w.Key, VmPrefix)
		if !ok {
			continue
		}
		next, _ := w.Msg.(*acliv1.Vm)
		for _, v := range []struct {
			vm *acliv1.Vm
			d  int32
		}{{tx.db.vms[id], -1}, {next, 1}} {
			for _, n := range v.vm.GetNics() {
				if n.NetworkUuid != network {
					continue
				}
				nics += v.d
				if n.Ip != "" && (v.d > 0 || tx.db.nicIPs[nicIPKey(network, n.Ip)] == id) {
					ips += v.d
				}
			}
		}
	}
	return nics, ips
}

// VmsByName are every VM with its encoding, by name then UUID (the
// listing order). Without staged writes it copies a kept list: no sort,
// no encoding.
func (tx *Tx) VmsByName() []*VmRecord {
	if len(tx.writes) == 0 {
		return slices.Clone(tx.db.sorted)
	}
	out := make([]*VmRecord, 0, len(tx.db.sorted)+len(tx.writes))
	for _, r := range tx.db.sorted {
		if _, staged := tx.staged[VmKey(r.Vm.Uuid)]; !staged {
			out = append(out, r)
		}
	}
	for _, w := range tx.writes {
		if v, _ := w.Msg.(*acliv1.Vm); v != nil && strings.HasPrefix(w.Key, VmPrefix) {
			wire, _ := proto.Marshal(v)
			out = append(out, &VmRecord{Vm: v, Wire: wire})
		}
	}
	slices.SortFunc(out, vmRecordOrder)
	return out
}

// VmRecordOf is VM id with its encoding (nil if none).
func (tx *Tx) VmRecordOf(id string) *VmRecord {
	v := tx.Vm(id)
	if v == nil {
		return nil
	}
	if _, staged := tx.staged[VmKey(id)]; !staged {
		if i, ok := slices.BinarySearchFunc(tx.db.sorted, &VmRecord{Vm: v}, vmRecordOrder); ok {
			return tx.db.sorted[i]
		}
	}
	wire, _ := proto.Marshal(v)
	return &VmRecord{Vm: v, Wire: wire}
}

// NumHosts is the number of committed hosts.
func (tx *Tx) NumHosts() int { return len(tx.db.hosts) }

// NumVms is the number of committed VMs.
func (tx *Tx) NumVms() int { return len(tx.db.vms) }
