package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// TestIndexesFollowRandomChanges applies random creates, renames (onto
// shared names), NIC changes and deletes of VMs and hosts, some of them
// undone as a failed transaction undoes them, and after each compares every
// index with what a scan of the records gives.
func TestIndexesFollowRandomChanges(t *testing.T) {
	db := NewDB(nil)
	rnd := rand.New(rand.NewPCG(41, 12))
	db.applyLocked(NetworkKey("n1"), &acliv1.Network{Uuid: "n1", Name: "net1", IpConfig: "10.0.0.0/16"}, 1)
	db.applyLocked(NetworkKey("n2"), &acliv1.Network{Uuid: "n2", Name: "net2"}, 1)
	randomVm := func(id string) *acliv1.Vm {
		v := &acliv1.Vm{Uuid: id, Name: fmt.Sprintf("vm%d", rnd.IntN(8)), MemoryBytes: 1 << 30}
		for range rnd.IntN(3) {
			n := &acliv1.Nic{Mac: fmt.Sprintf("50:6b:8d:00:%02x:%02x", rnd.IntN(4), rnd.IntN(40)), NetworkUuid: []string{"n1", "n2"}[rnd.IntN(2)]}
			if n.NetworkUuid == "n1" && rnd.IntN(2) == 0 {
				n.Ip = fmt.Sprintf("10.0.0.%d", rnd.IntN(30))
			}
			if !slices.ContainsFunc(v.Nics, func(x *acliv1.Nic) bool { return x.Mac == n.Mac || n.Ip != "" && x.Ip == n.Ip }) {
				v.Nics = append(v.Nics, n)
			}
		}
		return v
	}
	for step := range 3000 {
		key, rev := "", int64(step+2)
		var msg proto.Message
		if rnd.IntN(8) == 0 {
			id := fmt.Sprintf("g%d", rnd.IntN(4))
			key = VgKey(id)
			if rnd.IntN(3) > 0 {
				vg := &acliv1.VolumeGroup{Uuid: id, Name: id}
				for range rnd.IntN(3) {
					vg.VmUuids = append(vg.VmUuids, fmt.Sprintf("v%03d", rnd.IntN(60)))
				}
				msg = vg
			}
		} else if rnd.IntN(5) == 0 {
			id := fmt.Sprintf("h%d", rnd.IntN(6))
			key = HostKey(id)
			if rnd.IntN(4) > 0 {
				msg = &acliv1.Host{Uuid: id, Name: fmt.Sprintf("host%d", rnd.IntN(9)), HypervisorIp: fmt.Sprintf("127.41.%d.%d", rnd.IntN(2), rnd.IntN(12))}
			}
		} else {
			id := fmt.Sprintf("v%03d", rnd.IntN(60))
			key = VmKey(id)
			if rnd.IntN(5) > 0 {
				v := randomVm(id)
				// No other VM holds one of its MACs or addresses: the IP rule,
				// and MACs are made unique.
				clash := false
				for _, n := range v.Nics {
					if o := db.macs[n.Mac]; o != "" && o != id {
						clash = true
					}
					if o := db.nicIPs[nicIPKey(n.NetworkUuid, n.Ip)]; n.Ip != "" && o != "" && o != id {
						clash = true
					}
				}
				if clash {
					continue
				}
				msg = v
			}
		}
		prev, prevRev := db.recordLocked(key), db.revs[key]
		db.applyLocked(key, msg, rev)
		if rnd.IntN(4) == 0 { // a failed transaction's undo
			db.applyLocked(key, prev, prevRev)
		}
		checkIndexes(t, db, step)
		if t.Failed() {
			return
		}
	}
}

// checkIndexes compares the indexes with a scan of the records.
func checkIndexes(t *testing.T, db *DB, step int) {
	t.Helper()
	tx := &Tx{db: db, readOnly: true}
	var hosts []*acliv1.Host
	for _, h := range db.hosts {
		hosts = append(hosts, h)
		if got := tx.HostNamed(h.Name); got != h && db.hostName[h.Name] == h.Uuid {
			t.Errorf("step %d: HostNamed(%s) = %v", step, h.Name, got)
		}
	}
	slices.SortFunc(hosts, hostOrder)
	if got := tx.Hosts(); !slices.Equal(got, hosts) {
		t.Errorf("step %d: Hosts() = %d hosts out of order", step, len(got))
	}
	var recs []*VmRecord
	names := map[string][]string{}
	macs, nics, ips := map[string]string{}, map[string]int32{}, map[string]int32{}
	for id, v := range db.vms {
		wire, _ := proto.Marshal(v)
		recs = append(recs, &VmRecord{Vm: v, Wire: wire})
		names[v.Name] = append(names[v.Name], id)
		for _, n := range v.Nics {
			macs[n.Mac] = id
			nics[n.NetworkUuid]++
			if n.Ip != "" {
				ips[n.NetworkUuid]++
				if got := tx.NicIPHolder(n.NetworkUuid, n.Ip); got != v {
					t.Errorf("step %d: NicIPHolder(%s) = %s, want %s", step, n.Ip, got.GetUuid(), id)
				}
			}
		}
	}
	slices.SortFunc(recs, vmRecordOrder)
	got := tx.VmsByName()
	if len(got) != len(recs) {
		t.Fatalf("step %d: %d VMs listed, %d recorded", step, len(got), len(recs))
	}
	for i := range recs {
		if got[i].Vm != recs[i].Vm || string(got[i].Wire) != string(recs[i].Wire) {
			t.Fatalf("step %d: listing[%d] is %s, want %s (or its encoding is stale)", step, i, got[i].Vm.Uuid, recs[i].Vm.Uuid)
		}
	}
	for name, ids := range names {
		slices.Sort(ids)
		var have []string
		for _, v := range tx.VmsNamed(name) {
			have = append(have, v.Uuid)
		}
		if !slices.Equal(have, ids) {
			t.Errorf("step %d: VmsNamed(%s) = %v, want %v", step, name, have, ids)
		}
	}
	if len(tx.VmNames()) != len(names) {
		t.Errorf("step %d: %d VM names, want %d", step, len(tx.VmNames()), len(names))
	}
	for mac, id := range macs {
		if got := tx.VmByMAC(mac); got.GetUuid() != id {
			t.Errorf("step %d: VmByMAC(%s) = %s, want %s", step, mac, got.GetUuid(), id)
		}
	}
	if len(db.macs) != len(macs) {
		t.Errorf("step %d: %d MACs indexed, %d on NICs", step, len(db.macs), len(macs))
	}
	for _, n := range []string{"n1", "n2"} {
		if gn, gi := tx.NetworkUse(n); gn != nics[n] || gi != ips[n] {
			t.Errorf("step %d: NetworkUse(%s) = %d NICs %d IPs, want %d %d", step, n, gn, gi, nics[n], ips[n])
		}
	}
	attached := map[string]int{}
	for _, g := range db.vgs {
		for _, id := range g.VmUuids {
			attached[id]++
		}
	}
	for i := range 60 {
		id := fmt.Sprintf("v%03d", i)
		if got := len(tx.VolumeGroupsOf(id)); got != attached[id] {
			t.Errorf("step %d: VolumeGroupsOf(%s) = %d, want %d", step, id, got, attached[id])
		}
	}
	if tx.NetworkNamed("net1").GetUuid() != "n1" || !strings.HasPrefix(tx.NetworkNamed("net2").GetName(), "net2") {
		t.Errorf("step %d: networks by name lost", step)
	}
}
