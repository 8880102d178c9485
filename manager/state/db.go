package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/store"
)

// Store keys of the records the rules are checked on.
const (
	ClusterKey    = "/cluster"
	HostPrefix    = "/hosts/"
	VmPrefix      = "/vms/"
	NetworkPrefix = "/networks/"
	// SwitchPrefix holds the virtual switches changed from their
	// defaults, each under its name.
	SwitchPrefix = "/vswitches/"
	// VmGroupPrefix holds the VM groups.
	VmGroupPrefix = "/vmgroups/"
)

// HostKey, VmKey and NetworkKey are the store keys of one record.
func HostKey(id string) string     { return HostPrefix + id }
func VmKey(id string) string       { return VmPrefix + id }
func NetworkKey(id string) string  { return NetworkPrefix + id }
func SwitchKey(name string) string { return SwitchPrefix + name }
func VmGroupKey(id string) string  { return VmGroupPrefix + id }

// AnyRev in a Put or Delete skips the revision compare.
const AnyRev = -1

// DB is the committed cluster state and the one path that changes it:
// Update serialises every commit, checks the rules on the state the commit
// would leave, writes it to the store and only then makes it the committed
// state. Records are immutable messages; a change swaps them.
type DB struct {
	st store.Store

	wmu   sync.Mutex // serialises Update's checks: each against the last
	group            // commits checked, not yet durable (group.go), under wmu

	mu       sync.RWMutex // guards the fields below
	cluster  *acliv1.Cluster
	hosts    map[string]*acliv1.Host
	hostName map[string]string // name -> UUID
	hostIP   map[string]string // hypervisor IP -> UUID
	vms      map[string]*acliv1.Vm
	onHost   map[string]map[string]struct{} // host UUID -> VMs placed there
	used     map[string]int64               // host UUID -> memory of VMs placed there
	vcpus    map[string]int32               // host UUID -> vCPUs of VMs placed there
	nets     *Index[*acliv1.Network]
	switches *Index[*acliv1.VirtualSwitch] // by name: their key
	groups   *Index[*acliv1.VmGroup]
	nicIPs   map[string]string // network UUID/IP -> VM UUID (rules_net.go)
	revs     map[string]int64  // key -> mod revision of the records above
	arrivals map[uint64]Arrival
	nextArr  uint64
	reserved map[string]int64 // host UUID -> memory held by arrivals
	imgs     map[string]*acliv1.Image
	snaps    map[string]*acliv1.Snapshot
	vgs      map[string]*acliv1.VolumeGroup
	vgsOfVm  map[string][]string     // VM UUID -> volume groups attached to it (storage.go)
	stored   map[string]ContainerUse // container -> what its vDisks and images take
	capacity func(container string) int64
	holds    holdTable // the busy table (holds.go), under its own lock
	lookups
	changes atomic.Uint64 // records applied or undone so far
}

// Arrival is memory held on a host for a VM on its way there (a power-on,
// a migration, an HA restart) until the VM is recorded there or the move is
// given up.
type Arrival struct {
	VM, Host string
	Bytes    int64
}

// NewDB returns an empty DB over st; Load fills it.
func NewDB(st store.Store) *DB {
	db := &DB{st: st}
	db.reset()
	return db
}

func (db *DB) reset() {
	db.cluster = nil
	db.hosts, db.hostName, db.hostIP = map[string]*acliv1.Host{}, map[string]string{}, map[string]string{}
	db.vms, db.onHost, db.used = map[string]*acliv1.Vm{}, map[string]map[string]struct{}{}, map[string]int64{}
	db.vcpus = map[string]int32{}
	db.nets, db.nicIPs = NewIndex((*acliv1.Network).GetName), map[string]string{}
	db.switches = NewIndex((*acliv1.VirtualSwitch).GetName)
	db.groups = NewIndex((*acliv1.VmGroup).GetName)
	db.revs = map[string]int64{}
	db.arrivals, db.reserved = map[uint64]Arrival{}, map[string]int64{}
	db.pending, db.endedByPending = map[string]*batch{}, map[uint64]Arrival{}
	db.settledBy = map[string]int64{}
	if db.holds.m == nil {
		db.holds.m = map[string]string{} // tasks outlive a reload
	}
	db.imgs, db.snaps, db.vgs = map[string]*acliv1.Image{}, map[string]*acliv1.Snapshot{}, map[string]*acliv1.VolumeGroup{}
	db.vgsOfVm = map[string][]string{}
	db.stored = map[string]ContainerUse{}
	db.resetLookups()
}

// Load reads the committed records from the store. A record that does not
// decode is an error naming its key.
func (db *DB) Load(ctx context.Context) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	db.reset()
	db.loading = true
	defer db.endLoadLocked()
	kv, err := db.st.Get(ctx, ClusterKey)
	switch {
	case err == nil:
		if err := db.loadKV(kv); err != nil {
			return err
		}
	case err != store.ErrNotFound:
		return fmt.Errorf("loading the cluster record: %w", err)
	}
	for _, prefix := range []string{HostPrefix, NetworkPrefix, VmPrefix, ImagePrefix, SnapshotPrefix, VgPrefix, SwitchPrefix, VmGroupPrefix} {
		kvs, err := db.st.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("loading %s: %w", prefix, err)
		}
		for _, kv := range kvs {
			if err := db.loadKV(kv); err != nil {
				return err
			}
		}
	}
	return nil
}

func (db *DB) loadKV(kv store.KV) error {
	msg := newRecord(kv.Key)
	if err := proto.Unmarshal(kv.Value, msg); err != nil {
		return fmt.Errorf("loading %s: %w", kv.Key, err)
	}
	db.applyEncoded(kv.Key, msg, kv.Value, kv.ModRev)
	return nil
}

// newRecord is the codec's table: the message a key holds (nil for keys the
// DB does not keep).
func newRecord(key string) proto.Message {
	switch {
	case key == ClusterKey:
		return &acliv1.Cluster{}
	case strings.HasPrefix(key, HostPrefix):
		return &acliv1.Host{}
	case strings.HasPrefix(key, VmPrefix):
		return &acliv1.Vm{}
	case strings.HasPrefix(key, NetworkPrefix):
		return &acliv1.Network{}
	case strings.HasPrefix(key, ImagePrefix):
		return &acliv1.Image{}
	case strings.HasPrefix(key, SnapshotPrefix):
		return &acliv1.Snapshot{}
	case strings.HasPrefix(key, VgPrefix):
		return &acliv1.VolumeGroup{}
	case strings.HasPrefix(key, SwitchPrefix):
		return &acliv1.VirtualSwitch{}
	case strings.HasPrefix(key, VmGroupPrefix):
		return &acliv1.VmGroup{}
	}
	return nil
}

// Placed reports whether a VM uses its host's resources: it runs or is
// paused there.
func Placed(v *acliv1.Vm) bool {
	return v != nil && v.HostUuid != "" && (v.PowerState == acliv1.PowerState_kOn || v.PowerState == acliv1.PowerState_kPaused)
}

// applyLocked makes one written record committed (msg nil: deleted) and
// returns the arrivals it ended.
func (db *DB) applyLocked(key string, msg proto.Message, rev int64) (ended []heldArrival) {
	return db.applyEncoded(key, msg, nil, rev)
}

// applyEncoded is applyLocked with msg's encoding when the caller has it
// (nil: encoded here if an index keeps it).
func (db *DB) applyEncoded(key string, msg proto.Message, wire []byte, rev int64) (ended []heldArrival) {
	db.changes.Add(1)
	delete(db.settledBy, key)
	if msg == nil {
		delete(db.revs, key)
	} else {
		db.revs[key] = rev
	}
	db.accountLocked(db.recordLocked(key), msg)
	switch {
	case key == ClusterKey:
		c, _ := msg.(*acliv1.Cluster)
		db.cluster = c
	case strings.HasPrefix(key, HostPrefix):
		id := strings.TrimPrefix(key, HostPrefix)
		if old := db.hosts[id]; old != nil {
			delete(db.hostName, old.Name)
			delete(db.hostIP, old.HypervisorIp)
		}
		h, _ := msg.(*acliv1.Host)
		db.indexHostLocked(db.hosts[id], h)
		if h == nil {
			delete(db.hosts, id)
			return nil
		}
		db.hosts[id], db.hostName[h.Name], db.hostIP[h.HypervisorIp] = h, id, id
	case strings.HasPrefix(key, VmPrefix):
		id := strings.TrimPrefix(key, VmPrefix)
		db.indexIPsLocked(id, db.vms[id], false)
		db.indexIPsLocked(id, msg, true)
		if old := db.vms[id]; Placed(old) {
			delete(db.onHost[old.HostUuid], id)
			db.used[old.HostUuid] -= MemoryReserved(old)
			db.vcpus[old.HostUuid] -= old.NumVcpus
		}
		v, _ := msg.(*acliv1.Vm)
		db.indexVmLocked(id, db.vms[id], v, wire)
		if v == nil {
			delete(db.vms, id)
			return nil
		}
		db.vms[id] = v
		if Placed(v) {
			if db.onHost[v.HostUuid] == nil {
				db.onHost[v.HostUuid] = map[string]struct{}{}
			}
			db.onHost[v.HostUuid][id] = struct{}{}
			db.used[v.HostUuid] += MemoryReserved(v)
			db.vcpus[v.HostUuid] += v.NumVcpus
			// It has arrived: what was held for it there is its own now.
			for n, a := range db.arrivals {
				if a.VM == id && a.Host == v.HostUuid {
					ended = append(ended, heldArrival{n, a})
					db.departLocked(n)
				}
			}
		}
	case strings.HasPrefix(key, NetworkPrefix):
		putOrDeleteIn(db.nets, strings.TrimPrefix(key, NetworkPrefix), msg)
	case strings.HasPrefix(key, SwitchPrefix):
		putOrDeleteIn(db.switches, strings.TrimPrefix(key, SwitchPrefix), msg)
	case strings.HasPrefix(key, VmGroupPrefix):
		putOrDeleteIn(db.groups, strings.TrimPrefix(key, VmGroupPrefix), msg)
	case strings.HasPrefix(key, ImagePrefix):
		putOrDelete(db.imgs, strings.TrimPrefix(key, ImagePrefix), msg)
	case strings.HasPrefix(key, SnapshotPrefix):
		putOrDelete(db.snaps, strings.TrimPrefix(key, SnapshotPrefix), msg)
	case strings.HasPrefix(key, VgPrefix):
		db.putVgLocked(strings.TrimPrefix(key, VgPrefix), msg)
	}
	return ended
}

func putOrDelete[T proto.Message](records map[string]T, id string, msg proto.Message) {
	if r, ok := msg.(T); ok {
		records[id] = r
		return
	}
	delete(records, id)
}

func putOrDeleteIn[T proto.Message](ix *Index[T], id string, msg proto.Message) {
	if r, ok := msg.(T); ok {
		ix.Put(id, r)
		return
	}
	ix.Delete(id)
}

// Arrive holds bytes of host's memory for vm until Depart(id) or until vm
// is committed as placed on host, whichever comes first. Commits count it,
// so a VM on its way somewhere is never over-committed by another.
func (db *DB) Arrive(vm, host string, bytes int64) uint64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.nextArr++
	db.arrivals[db.nextArr] = Arrival{VM: vm, Host: host, Bytes: bytes}
	db.reserved[host] += bytes
	return db.nextArr
}

// Depart ends an arrival (a no-op once it ended).
func (db *DB) Depart(id uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.departLocked(id)
}

func (db *DB) departLocked(id uint64) {
	delete(db.endedByPending, id)
	a, ok := db.arrivals[id]
	if !ok {
		return
	}
	delete(db.arrivals, id)
	if db.reserved[a.Host] -= a.Bytes; db.reserved[a.Host] == 0 {
		delete(db.reserved, a.Host)
	}
}

// Reserved is the memory held on host for VMs on their way there.
func (db *DB) Reserved(host string) int64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.reserved[host]
}

// MemoryTaken is the memory of the VMs committed on host plus what is held
// there for arrivals, read at one instant: a VM that arrives moves from one
// to the other in the commit that records it, so the sum never counts it
// twice nor misses it.
func (db *DB) MemoryTaken(host string) int64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.used[host] + db.reserved[host]
}

// HostUse is the vCPUs and the number of the VMs committed on host.
func (db *DB) HostUse(host string) (vcpus, vms int32) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.vcpus[host], int32(len(db.onHost[host]))
}

// Write is one staged change: Msg nil deletes Key; Rev is the mod revision
// the key must have now (0: must not exist, AnyRev: no check).
type Write struct {
	Key string
	Msg proto.Message
	Rev int64
}

// Tx is one transaction: reads see the committed state with the
// transaction's own writes over it.
type Tx struct {
	db       *DB
	readOnly bool
	writes   []Write
	holds    []holdOp
	staged   map[string]int // key -> index in writes
	observed bool
}

// Changes counts the records applied (or undone) so far: a reader that
// makes several Views sees one state when it did not move between them.
func (db *DB) Changes() uint64 { return db.changes.Load() }

// View runs fn on the committed state. fn must not write.
func (db *DB) View(fn func(tx *Tx)) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	fn(&Tx{db: db, readOnly: true})
}

// ViewDurable is View once no commit in flight writes key: a revision read
// there is the store's, fit to hand to a client. It waits at most until ctx
// ends.
func (db *DB) ViewDurable(ctx context.Context, key string, fn func(tx *Tx)) error {
	for {
		db.mu.RLock()
		// pending changes under mu too.
		p := db.pending[key]
		if p == nil {
			fn(&Tx{db: db, readOnly: true})
			db.mu.RUnlock()
			return nil
		}
		db.mu.RUnlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Update runs fn, checks the rules on the state its writes would leave and
// commits them in one store transaction, returning the store's revision.
// A broken rule refuses the whole commit with a *ViolationError; a failed
// revision compare with the store's conflict error. Nothing is committed
// when fn returns an error or writes nothing (the revision is then 0).
//
// Commits are checked one at a time, each against the state the earlier
// ones leave, and sent to the store in groups (group.go): fn may run more
// than once, so it must only read the Tx and stage writes.
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) (int64, error) {
	for {
		c, wait, err := db.stage(ctx, fn)
		if err != nil || (c == nil && wait == nil) {
			return 0, err
		}
		if wait != nil {
			// It writes what a commit still in flight writes: it is
			// checked again once that one is settled.
			<-wait.done
			continue
		}
		<-c.b.done
		if c.b.err == nil {
			return c.b.rev, nil
		}
		if c.err == errRetry {
			continue
		}
		return 0, c.err
	}
}

// Put stages msg at key; rev is the mod revision key must have now (0: it
// must not exist, AnyRev: no check).
func (tx *Tx) Put(key string, msg proto.Message, rev int64) {
	tx.stage(Write{Key: key, Msg: msg, Rev: rev})
}

// Delete stages the removal of key (rev as for Put).
func (tx *Tx) Delete(key string, rev int64) { tx.stage(Write{Key: key, Rev: rev}) }

func (tx *Tx) stage(w Write) {
	if tx.readOnly {
		panic("state: write in a View")
	}
	if i, ok := tx.staged[w.Key]; ok {
		tx.writes[i].Msg = w.Msg // the first write's compare stands
		return
	}
	tx.staged[w.Key] = len(tx.writes)
	tx.writes = append(tx.writes, w)
}

// Observed marks the transaction as recording what the hosts report (a VM
// found running where clusterd did not put it): the placement rules judge
// decisions, and a report is not one.
func (tx *Tx) Observed() { tx.observed = true }

// Writes are the staged writes in order.
func (tx *Tx) Writes() []Write { return tx.writes }

func (tx *Tx) staging(key string) (proto.Message, bool) {
	i, ok := tx.staged[key]
	if !ok {
		return nil, false
	}
	return tx.writes[i].Msg, true
}

// Cluster is the cluster record (nil before one is written).
func (tx *Tx) Cluster() *acliv1.Cluster {
	if m, ok := tx.staging(ClusterKey); ok {
		c, _ := m.(*acliv1.Cluster)
		return c
	}
	return tx.db.cluster
}

// Host is a host by UUID (nil if none).
func (tx *Tx) Host(id string) *acliv1.Host {
	if m, ok := tx.staging(HostKey(id)); ok {
		h, _ := m.(*acliv1.Host)
		return h
	}
	return tx.db.hosts[id]
}

// Vm is a VM by UUID (nil if none).
func (tx *Tx) Vm(id string) *acliv1.Vm {
	if m, ok := tx.staging(VmKey(id)); ok {
		v, _ := m.(*acliv1.Vm)
		return v
	}
	return tx.db.vms[id]
}

// Network is a network by UUID (nil if none).
func (tx *Tx) Network(id string) *acliv1.Network {
	if m, ok := tx.staging(NetworkKey(id)); ok {
		n, _ := m.(*acliv1.Network)
		return n
	}
	n, _ := tx.db.nets.Get(id)
	return n
}

// FindNetwork is the committed network ref names (UUID or name), or nil.
func (tx *Tx) FindNetwork(ref string) *acliv1.Network {
	n, _ := tx.db.nets.Find(ref)
	return n
}

// NetworkNames are the committed networks' names, sorted.
func (tx *Tx) NetworkNames() []string { return tx.db.nets.Names() }

// Switch is the committed virtual switch called name (nil while it has its
// defaults).
func (tx *Tx) Switch(name string) *acliv1.VirtualSwitch {
	if m, ok := tx.staging(SwitchKey(name)); ok {
		vs, _ := m.(*acliv1.VirtualSwitch)
		return vs
	}
	vs, _ := tx.db.switches.Get(name)
	return vs
}

// SwitchNames are the names of the stored virtual switches, sorted.
func (tx *Tx) SwitchNames() []string { return tx.db.switches.Names() }

// VmGroup is a VM group by UUID (nil if none).
func (tx *Tx) VmGroup(id string) *acliv1.VmGroup {
	if m, ok := tx.staging(VmGroupKey(id)); ok {
		g, _ := m.(*acliv1.VmGroup)
		return g
	}
	g, _ := tx.db.groups.Get(id)
	return g
}

// FindVmGroup is the committed VM group ref names (UUID or name), or nil.
func (tx *Tx) FindVmGroup(ref string) *acliv1.VmGroup {
	g, _ := tx.db.groups.Find(ref)
	return g
}

// VmGroupNames are the committed VM groups' names, sorted.
func (tx *Tx) VmGroupNames() []string { return tx.db.groups.Names() }

// VmGroups are every VM group, ordered by UUID.
func (tx *Tx) VmGroups() []*acliv1.VmGroup {
	return collect(tx, tx.db.groups.All(), VmGroupPrefix, tx.VmGroup)
}

// Rev is the committed mod revision of key (0: none), or a pending token
// while the commit that wrote it is in flight (see Pending): either is what
// a Put or Delete of key compares against.
func (tx *Tx) Rev(key string) int64 { return tx.db.revs[key] }

// Hosts are every host, ordered by hypervisor IP then name.
func (tx *Tx) Hosts() []*acliv1.Host {
	if !slices.ContainsFunc(tx.writes, func(w Write) bool { return strings.HasPrefix(w.Key, HostPrefix) }) {
		return slices.Clone(tx.db.hostList)
	}
	out := collect(tx, tx.db.hosts, HostPrefix, tx.Host)
	slices.SortFunc(out, hostOrder)
	return out
}

// VmsOn are the VMs placed on host (running or paused there), by UUID.
func (tx *Tx) VmsOn(host string) []*acliv1.Vm {
	ids := make([]string, 0, len(tx.db.onHost[host]))
	for id := range tx.db.onHost[host] {
		if _, ok := tx.staged[VmKey(id)]; !ok {
			ids = append(ids, id)
		}
	}
	for _, w := range tx.writes {
		if id, ok := strings.CutPrefix(w.Key, VmPrefix); ok {
			if v, _ := w.Msg.(*acliv1.Vm); Placed(v) && v.HostUuid == host {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	out := make([]*acliv1.Vm, len(ids))
	for i, id := range ids {
		out[i] = tx.Vm(id)
	}
	return out
}

// MemoryUsed is the memory of the VMs placed on host, as the transaction
// would leave it.
func (tx *Tx) MemoryUsed(host string) int64 {
	used := tx.db.used[host]
	for _, w := range tx.writes {
		id, ok := strings.CutPrefix(w.Key, VmPrefix)
		if !ok {
			continue
		}
		if old := tx.db.vms[id]; Placed(old) && old.HostUuid == host {
			used -= MemoryReserved(old)
		}
		if v, _ := w.Msg.(*acliv1.Vm); Placed(v) && v.HostUuid == host {
			used += MemoryReserved(v)
		}
	}
	return used
}

// Reserved is the memory held on host for VMs on their way there, less
// what this transaction records as arrived (or as going elsewhere).
func (tx *Tx) Reserved(host string) int64 {
	r := tx.db.reserved[host]
	if r == 0 {
		return 0
	}
	for _, a := range tx.db.arrivals {
		if a.Host != host {
			continue
		}
		if _, ok := tx.staging(VmKey(a.VM)); ok {
			if v := tx.Vm(a.VM); Placed(v) && v.HostUuid == host {
				r -= a.Bytes
			}
		}
	}
	return r
}

// Vms are every VM, ordered by UUID.
func (tx *Tx) Vms() []*acliv1.Vm {
	return collect(tx, tx.db.vms, VmPrefix, tx.Vm)
}

// Networks are every network, ordered by UUID.
func (tx *Tx) Networks() []*acliv1.Network {
	return collect(tx, tx.db.nets.All(), NetworkPrefix, tx.Network)
}

func collect[T proto.Message](tx *Tx, committed map[string]T, prefix string, get func(string) T) []T {
	ids := make([]string, 0, len(committed)+len(tx.writes))
	for id := range committed {
		ids = append(ids, id)
	}
	for _, w := range tx.writes {
		if id, ok := strings.CutPrefix(w.Key, prefix); ok {
			if _, seen := committed[id]; !seen {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		if r := get(id); r.ProtoReflect().IsValid() {
			out = append(out, r)
		}
	}
	return out
}

// Follow makes changes another manager committed the committed state here,
// without checking them (they were checked where they were committed): a
// follower's read copy is kept this way. A record that does not decode is
// an error naming its key; keys the DB does not keep are skipped.
func (db *DB) Follow(evs []store.Event) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, ev := range evs {
		msg := newRecord(ev.KV.Key)
		if msg == nil {
			continue
		}
		if ev.Delete {
			db.applyLocked(ev.KV.Key, nil, 0)
			continue
		}
		if err := proto.Unmarshal(ev.KV.Value, msg); err != nil {
			return fmt.Errorf("following %s: %w", ev.KV.Key, err)
		}
		db.applyEncoded(ev.KV.Key, msg, ev.KV.Value, ev.KV.ModRev)
	}
	return nil
}
