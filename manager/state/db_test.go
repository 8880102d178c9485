package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

const gib = int64(1) << 30

func host(name, ip string, mut ...func(*acliv1.Host)) *acliv1.Host {
	h := &acliv1.Host{
		Uuid: "uuid-" + name, Name: name, HypervisorIp: ip, MemoryBytes: 8 * gib, Schedulable: true,
		NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp,
	}
	for _, f := range mut {
		f(h)
	}
	return h
}

func vm(name, on string, mem int64) *acliv1.Vm {
	v := &acliv1.Vm{Uuid: "uuid-" + name, Name: name, MemoryBytes: mem, PowerState: acliv1.PowerState_kOff}
	if on != "" {
		v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOn, "uuid-"+on, on
	}
	return v
}

// managed is network n1 with an address plan.
var managed = &acliv1.Network{Uuid: "uuid-n1", Name: "n1", IpConfig: "10.0.0.0/24"}

func withNIC(v *acliv1.Vm, ip string) *acliv1.Vm {
	v.Nics = append(v.Nics, &acliv1.Nic{Mac: "50:6b:8d:00:00:" + ip[len(ip)-1:], NetworkUuid: "uuid-n1", Ip: ip})
	return v
}

// macsOfB gives b's NICs MACs no other NIC has, so only the IP rule
// applies.
func macsOfB(v *acliv1.Vm) *acliv1.Vm {
	for i, n := range v.Nics {
		n.Mac = fmt.Sprintf("50:6b:8d:00:0b:%02x", i)
	}
	return v
}

func edit[T proto.Message](m T, f func(T)) T {
	c := proto.Clone(m).(T)
	f(c)
	return c
}

// newDB commits a 3-host RF2 cluster with VM a (4 GiB) on h1 and b off.
func newDB(t *testing.T) *state.DB {
	t.Helper()
	st, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return seedDB(t, st)
}

// seedDB is newDB over st.
func seedDB(t *testing.T, st store.Store) *state.DB {
	t.Helper()
	db := state.NewDB(st)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
		for _, h := range []*acliv1.Host{host("h1", "127.41.0.1"), host("h2", "127.41.0.2"), host("h3", "127.41.0.3")} {
			tx.Put(state.HostKey(h.Uuid), h, 0)
		}
		tx.Put(state.VmKey("uuid-a"), vm("a", "h1", 4*gib), 0)
		tx.Put(state.VmKey("uuid-b"), vm("b", "", 2*gib), 0)
		tx.Put(state.NetworkKey("uuid-n1"), &acliv1.Network{Uuid: "uuid-n1", Name: "n1"}, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func put(tx *state.Tx, m proto.Message) {
	switch r := m.(type) {
	case *acliv1.Host:
		tx.Put(state.HostKey(r.Uuid), r, state.AnyRev)
	case *acliv1.Vm:
		tx.Put(state.VmKey(r.Uuid), r, state.AnyRev)
	case *acliv1.Network:
		tx.Put(state.NetworkKey(r.Uuid), r, state.AnyRev)
	}
}

func TestUpdateChecksEveryRule(t *testing.T) {
	down := func(h *acliv1.Host) { h.NodeState, h.CvmState = acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown }
	cordoned := func(h *acliv1.Host) { h.Schedulable, h.SchedulableReason = false, "cordoned" }
	maint := func(h *acliv1.Host) {
		h.NodeState, h.MaintenanceRequested = acliv1.NodeState_EnteredMaintenanceMode, true
	}
	tests := []struct {
		name     string
		before   []proto.Message // committed first, unchecked order
		writes   []proto.Message
		arrive   *state.Arrival
		observed bool
		rule     string // "" = accepted
	}{
		{name: "power on on an up host", writes: []proto.Message{vm("b", "h2", 2*gib)}},
		{name: "running on no host", writes: []proto.Message{edit(vm("b", "h2", gib), func(v *acliv1.Vm) { v.HostUuid = "" })}, rule: state.RuleOneHost},
		{name: "running on an unknown host", writes: []proto.Message{vm("b", "h9", gib)}, rule: state.RuleOneHost},
		{name: "unknown host even when observed", writes: []proto.Message{vm("b", "h9", gib)}, observed: true, rule: state.RuleOneHost},
		{name: "placed on a down host", before: []proto.Message{host("h2", "127.41.0.2", down)}, writes: []proto.Message{vm("b", "h2", gib)}, rule: state.RulePlacement},
		{name: "placed on a cordoned host", before: []proto.Message{host("h2", "127.41.0.2", cordoned)}, writes: []proto.Message{vm("b", "h2", gib)}, rule: state.RulePlacement},
		{name: "placed on a host in maintenance", before: []proto.Message{host("h2", "127.41.0.2", maint)}, writes: []proto.Message{vm("b", "h2", gib)}, rule: state.RulePlacement},
		{name: "cordon and placement in one commit", writes: []proto.Message{host("h2", "127.41.0.2", cordoned), vm("b", "h2", gib)}, rule: state.RulePlacement},
		{name: "found running on a cordoned host (observed)", before: []proto.Message{host("h2", "127.41.0.2", cordoned)}, writes: []proto.Message{vm("b", "h2", gib)}, observed: true},
		{name: "a VM already there may change on a cordoned host", before: []proto.Message{host("h1", "127.41.0.1", cordoned)},
			writes: []proto.Message{edit(vm("a", "h1", 4*gib), func(v *acliv1.Vm) { v.Description = "x" })}},
		{name: "memory over-committed", writes: []proto.Message{vm("b", "h1", 5*gib)}, rule: state.RuleMemory},
		{name: "memory exactly full", writes: []proto.Message{vm("b", "h1", 4*gib)}},
		{name: "memory grows in place", writes: []proto.Message{vm("a", "h1", 9*gib)}, rule: state.RuleMemory},
		{name: "arrival counted", arrive: &state.Arrival{VM: "uuid-x", Host: "uuid-h1", Bytes: 3 * gib}, writes: []proto.Message{vm("b", "h1", 2*gib)}, rule: state.RuleMemory},
		{name: "own arrival not counted twice", arrive: &state.Arrival{VM: "uuid-b", Host: "uuid-h1", Bytes: 4 * gib}, writes: []proto.Message{vm("b", "h1", 4*gib)}},
		{name: "second host out on RF2", before: []proto.Message{host("h2", "127.41.0.2", maint)}, writes: []proto.Message{host("h3", "127.41.0.3", maint)}, rule: state.RuleRedundancy},
		{name: "host out when another failed", before: []proto.Message{host("h2", "127.41.0.2", down)}, writes: []proto.Message{host("h3", "127.41.0.3", maint)}, rule: state.RuleRedundancy},
		{name: "one host out on RF2", writes: []proto.Message{host("h3", "127.41.0.3", maint)}},
		{name: "entered maintenance with a VM running there", writes: []proto.Message{host("h1", "127.41.0.1", maint)}, rule: state.RulePlacement},
		{name: "entered maintenance with a VM running there, observed", writes: []proto.Message{host("h1", "127.41.0.1", maint)}, observed: true, rule: state.RulePlacement},
		{name: "a failure is never refused", before: []proto.Message{host("h2", "127.41.0.2", maint)}, writes: []proto.Message{host("h3", "127.41.0.3", down)}},
		{name: "host name taken", writes: []proto.Message{edit(host("h3", "127.41.0.3"), func(h *acliv1.Host) { h.Name = "h1" })}, rule: state.RuleName},
		{name: "host names swapped in one commit", writes: []proto.Message{
			edit(host("h1", "127.41.0.1"), func(h *acliv1.Host) { h.Name = "h3" }), edit(host("h3", "127.41.0.3"), func(h *acliv1.Host) { h.Name = "h1" })}},
		{name: "hypervisor IP taken", writes: []proto.Message{host("h4", "127.41.0.1")}, rule: state.RuleName},
		{name: "vm name is a UUID", writes: []proto.Message{edit(vm("b", "", gib), func(v *acliv1.Vm) { v.Name = "0f9c8f4e-8d7b-4d0a-9a53-0c1f2e3d4b5a" })}, rule: state.RuleName},
		{name: "vm names may repeat", writes: []proto.Message{edit(vm("b", "", gib), func(v *acliv1.Vm) { v.Name = "a" })}},
		{name: "network name taken", writes: []proto.Message{&acliv1.Network{Uuid: "uuid-n2", Name: "n1"}}, rule: state.RuleName},
		{name: "nic address taken on its network", before: []proto.Message{managed, withNIC(vm("a", "h1", 4*gib), "10.0.0.5")},
			writes: []proto.Message{macsOfB(withNIC(vm("b", "", gib), "10.0.0.5"))}, rule: state.RuleIP},
		{name: "nic address taken twice in one commit", before: []proto.Message{managed},
			writes: []proto.Message{withNIC(vm("a", "h1", 4*gib), "10.0.0.5"), macsOfB(withNIC(vm("b", "", gib), "10.0.0.5"))}, rule: state.RuleIP},
		{name: "nic address given to two NICs of one vm", before: []proto.Message{managed},
			writes: []proto.Message{macsOfB(withNIC(withNIC(vm("b", "", gib), "10.0.0.5"), "10.0.0.5"))}, rule: state.RuleIP},
		{name: "nic MAC taken by another vm", before: []proto.Message{managed, withNIC(vm("a", "h1", 4*gib), "10.0.0.5")},
			writes: []proto.Message{edit(withNIC(vm("b", "", gib), "10.0.0.6"), func(v *acliv1.Vm) { v.Nics[0].Mac = "50:6b:8d:00:00:5" })}, rule: state.RuleMAC},
		{name: "nic MAC given to two NICs of one vm", before: []proto.Message{managed},
			writes: []proto.Message{edit(withNIC(withNIC(vm("b", "", gib), "10.0.0.5"), "10.0.0.6"), func(v *acliv1.Vm) { v.Nics[1].Mac = v.Nics[0].Mac })}, rule: state.RuleMAC},
		{name: "nic MAC taken twice in one commit", before: []proto.Message{managed},
			writes: []proto.Message{withNIC(vm("a", "h1", 4*gib), "10.0.0.5"), edit(withNIC(vm("b", "", gib), "10.0.0.6"), func(v *acliv1.Vm) { v.Nics[0].Mac = "50:6b:8d:00:00:5" })}, rule: state.RuleMAC},
		{name: "nic MAC handed over in one commit", before: []proto.Message{managed, withNIC(vm("a", "h1", 4*gib), "10.0.0.5")},
			writes: []proto.Message{edit(withNIC(vm("b", "", gib), "10.0.0.6"), func(v *acliv1.Vm) { v.Nics[0].Mac = "50:6b:8d:00:00:5" }), vm("a", "h1", 4*gib)}},
		{name: "nic address handed over in one commit", before: []proto.Message{managed, withNIC(vm("a", "h1", 4*gib), "10.0.0.5")},
			writes: []proto.Message{vm("a", "h1", 4*gib), withNIC(vm("b", "", gib), "10.0.0.5")}},
		{name: "nic address freed by a delete", before: []proto.Message{managed, withNIC(vm("a", "h1", 4*gib), "10.0.0.5"), vm("a", "", 4*gib)},
			writes: []proto.Message{withNIC(vm("b", "", gib), "10.0.0.5")}},
		{name: "nic address outside its network", before: []proto.Message{managed},
			writes: []proto.Message{withNIC(vm("b", "", gib), "10.9.0.5")}, rule: state.RuleIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB(t)
			ctx := context.Background()
			if len(tt.before) > 0 {
				if _, err := db.Update(ctx, func(tx *state.Tx) error {
					for _, m := range tt.before {
						put(tx, m)
					}
					return nil
				}); err != nil {
					t.Fatalf("setting up: %v", err)
				}
			}
			if a := tt.arrive; a != nil {
				db.Arrive(a.VM, a.Host, a.Bytes)
			}
			var before []proto.Message
			db.View(func(tx *state.Tx) {
				for _, m := range tt.writes {
					if v, ok := m.(*acliv1.Vm); ok {
						before = append(before, tx.Vm(v.Uuid))
					}
				}
			})
			rev, err := db.Update(ctx, func(tx *state.Tx) error {
				if tt.observed {
					tx.Observed()
				}
				for _, m := range tt.writes {
					put(tx, m)
				}
				return nil
			})
			var ve *state.ViolationError
			if tt.rule == "" {
				if err != nil || rev == 0 {
					t.Fatalf("refused: rev %d, %v", rev, err)
				}
				return
			}
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a %s violation", err, tt.rule)
			}
			if got := ve.Violations[0].Rule; got != tt.rule || len(ve.Violations) != 1 {
				t.Errorf("violations %+v, want one %s", ve.Violations, tt.rule)
			}
			// Refused: nothing changed.
			i := 0
			db.View(func(tx *state.Tx) {
				for _, m := range tt.writes {
					if v, ok := m.(*acliv1.Vm); ok {
						if !proto.Equal(tx.Vm(v.Uuid), before[i].(*acliv1.Vm)) && before[i] != nil {
							t.Errorf("vm %s changed by a refused commit", v.Name)
						}
						i++
					}
				}
			})
		})
	}
}

func TestArrivalEndsWhenTheVMIsRecorded(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	id := db.Arrive("uuid-b", "uuid-h2", 2*gib)
	if got := db.Reserved("uuid-h2"); got != 2*gib {
		t.Fatalf("reserved %d, want 2 GiB", got)
	}
	if _, err := db.Update(ctx, func(tx *state.Tx) error { put(tx, vm("b", "h2", 2*gib)); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := db.Reserved("uuid-h2"); got != 0 {
		t.Errorf("reserved %d after the VM was recorded, want 0", got)
	}
	db.Depart(id) // a late release changes nothing
	if got := db.Reserved("uuid-h2"); got != 0 {
		t.Errorf("reserved %d after a late release, want 0", got)
	}
	db.View(func(tx *state.Tx) {
		if got := tx.MemoryUsed("uuid-h2"); got != 2*gib {
			t.Errorf("h2 uses %d, want 2 GiB", got)
		}
		if on := tx.VmsOn("uuid-h2"); len(on) != 1 || on[0].Name != "b" {
			t.Errorf("on h2: %v", on)
		}
	})
}

func TestUpdateComparesRevisions(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	var rev int64
	db.View(func(tx *state.Tx) { rev = tx.Rev(state.VmKey("uuid-a")) })
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		tx.Put(state.VmKey("uuid-a"), edit(vm("a", "h1", 4*gib), func(v *acliv1.Vm) { v.Description = "1" }), rev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := db.Update(ctx, func(tx *state.Tx) error {
		tx.Put(state.VmKey("uuid-a"), edit(vm("a", "h1", 4*gib), func(v *acliv1.Vm) { v.Description = "2" }), rev)
		return nil
	})
	if !store.IsConflict(err) {
		t.Fatalf("stale write: %v, want a conflict", err)
	}
	db.View(func(tx *state.Tx) {
		if d := tx.Vm("uuid-a").Description; d != "1" {
			t.Errorf("description %q, want 1", d)
		}
	})
}

func TestLoadReadsWhatWasCommitted(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db := state.NewDB(st)
	ctx := context.Background()
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		put(tx, host("h1", "127.41.0.1"))
		put(tx, vm("a", "h1", gib))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db2 := state.NewDB(st)
	if err := db2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	db2.View(func(tx *state.Tx) {
		if tx.Host("uuid-h1") == nil || tx.MemoryUsed("uuid-h1") != gib {
			t.Errorf("loaded host %v using %d", tx.Host("uuid-h1"), tx.MemoryUsed("uuid-h1"))
		}
	})
	st.Close()
}

func TestUpdateWithoutWritesCommitsNothing(t *testing.T) {
	db := newDB(t)
	rev, err := db.Update(context.Background(), func(*state.Tx) error { return nil })
	if rev != 0 || err != nil {
		t.Errorf("rev %d, err %v", rev, err)
	}
	boom := errors.New("boom")
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error { put(tx, vm("b", "h1", gib)); return boom }); err != boom {
		t.Errorf("err %v, want fn's", err)
	}
	db.View(func(tx *state.Tx) {
		if state.Placed(tx.Vm("uuid-b")) {
			t.Error("a failed fn's write was committed")
		}
	})
}

func TestHostUseFollowsCommits(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	want := func(host string, vcpus, vms int32) {
		t.Helper()
		if c, n := db.HostUse(host); c != vcpus || n != vms {
			t.Errorf("%s: %d vCPUs, %d VMs; want %d, %d", host, c, n, vcpus, vms)
		}
	}
	want("uuid-h1", 0, 1) // a gives no vCPUs
	commit := func(v *acliv1.Vm) {
		t.Helper()
		if _, err := db.Update(ctx, func(tx *state.Tx) error { put(tx, v); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	commit(edit(vm("b", "h1", 2*gib), func(v *acliv1.Vm) { v.NumVcpus = 4 }))
	want("uuid-h1", 4, 2)
	commit(edit(vm("b", "h2", 2*gib), func(v *acliv1.Vm) { v.NumVcpus = 2 })) // moved and resized
	want("uuid-h1", 0, 1)
	want("uuid-h2", 2, 1)
	commit(edit(vm("b", "", 2*gib), func(v *acliv1.Vm) { v.NumVcpus = 2 })) // off
	want("uuid-h2", 0, 0)
}
