package state_test

import (
	"context"
	"errors"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// The scheduler's view counts what a commit counts: VMs placed on a host,
// memory held for arrivals, and the transaction's own writes.
func TestScheduleCountsWhatCommitsCount(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Hold(vm("b", "", 2*gib), "uuid-h2")
	cordoned := edit(host("h3", "127.41.0.3"), func(h *acliv1.Host) { h.Schedulable, h.SchedulableReason = false, "disk swap" })
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		put(tx, cordoned)
		put(tx, edit(vm("c", "h1", gib), func(v *acliv1.Vm) { v.NumVcpus, v.CpuPassthrough = 2, true }))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var s *scheduler.Snapshot
	var cands []scheduler.Candidate
	db.View(func(tx *state.Tx) {
		s = tx.Schedule(map[string][]string{"uuid-a": {"g1"}})
		cands = tx.Candidates()
	})
	if len(s.Hosts) != 3 || len(cands) != 3 {
		t.Fatalf("%d hosts, %d candidates; want 3 of each", len(s.Hosts), len(cands))
	}
	h1, h2, h3 := s.Hosts[0], s.Hosts[1], s.Hosts[2]
	if h1.UUID != "uuid-h1" || h1.MemoryUsedBytes != 5*gib || h1.VCPUsUsed != 2 {
		t.Errorf("h1: %+v; want 5 GiB and 2 vCPUs used (a and c)", h1)
	}
	if h2.MemoryUsedBytes != 2*gib {
		t.Errorf("h2 uses %d bytes; want the 2 GiB held for b", h2.MemoryUsedBytes)
	}
	if h3.Schedulable || h3.UnschedulableReason != "disk swap" {
		t.Errorf("h3: %+v; want unschedulable for disk swap", h3)
	}
	if c := cands[0]; c.NumVms != 2 || c.MemoryUsedBytes != 5*gib || c.VcpusUsed != 2 {
		t.Errorf("candidate h1: %+v; want 2 VMs, 5 GiB, 2 vCPUs", c)
	}
	if cands[2].Unavailable == "" {
		t.Error("candidate h3 is available; want it refused as cordoned")
	}
	byName := map[string]scheduler.VM{}
	for _, v := range s.VMs {
		byName[v.Name] = v
	}
	if a := byName["a"]; !a.Running() || a.Host != "uuid-h1" || len(a.AntiAffinityGroups) != 1 {
		t.Errorf("a: %+v; want running on h1 in group g1", a)
	}
	if c := byName["c"]; !c.Passthrough || c.PinnedBy == "" {
		t.Errorf("c: %+v; want pinned by its CPU passthrough", c)
	}
	if b := byName["b"]; b.Running() {
		t.Errorf("b: %+v; want off", b)
	}

	// A staged write counts before it is committed.
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		put(tx, edit(vm("b", "h2", 2*gib), func(v *acliv1.Vm) { v.NumVcpus = 3 }))
		if vcpus, vms := tx.HostUse("uuid-h2"); vcpus != 3 || vms != 1 {
			t.Errorf("staged b on h2: %d vCPUs, %d VMs; want 3, 1", vcpus, vms)
		}
		if got := tx.MemoryTaken("uuid-h2"); got != 2*gib {
			t.Errorf("staged b on h2 takes %d bytes there; want its 2 GiB once (the hold ends as it arrives)", got)
		}
		if vcpus, vms := tx.HostUse("uuid-h1"); vcpus != 2 || vms != 2 {
			t.Errorf("h1: %d vCPUs, %d VMs; want 2, 2", vcpus, vms)
		}
		return errStop
	}); err != errStop {
		t.Fatalf("got %v; want the test's own stop", err)
	}
}

var errStop = errors.New("stop before committing")

// A host reads with why nothing may be placed there, keeping the
// operator's cordon reason over the state's.
func TestHostViewSaysWhyAHostIsUnavailable(t *testing.T) {
	db := newDB(t)
	down := edit(host("h2", "127.41.0.2"), func(h *acliv1.Host) { h.NodeState = acliv1.NodeState_kNodeDown })
	cordoned := edit(host("h3", "127.41.0.3"), func(h *acliv1.Host) { h.Schedulable, h.SchedulableReason = false, "disk swap" })
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error { put(tx, down); put(tx, cordoned); return nil }); err != nil {
		t.Fatal(err)
	}
	var views []*acliv1.Host
	db.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			views = append(views, tx.HostView(h))
		}
	})
	h1, h2, h3 := views[0], views[1], views[2]
	if !h1.Schedulable || !h1.Connected || h1.MemoryUsedBytes != 4*gib || h1.NumVms != 1 {
		t.Errorf("h1: %v; want schedulable, connected, a's 4 GiB", h1)
	}
	if h2.Schedulable || h2.Connected || h2.SchedulableReason != "host is down" {
		t.Errorf("h2: %v; want unschedulable because it is down, not connected", h2)
	}
	if h3.Schedulable || h3.SchedulableReason != "disk swap" {
		t.Errorf("h3: %v; want the operator's reason kept", h3)
	}
}
