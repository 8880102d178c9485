package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// listing is the VM names in listing order, each checked against its
// encoding.
func listing(t *testing.T, tx *state.Tx) []string {
	t.Helper()
	var out []string
	for _, r := range tx.VmsByName() {
		var v acliv1.Vm
		if err := proto.Unmarshal(r.Wire, &v); err != nil || !proto.Equal(&v, r.Vm) {
			t.Errorf("the encoding of %s is not its record (%v)", r.Vm.Name, err)
		}
		out = append(out, r.Vm.Name+"/"+r.Vm.Uuid)
	}
	return out
}

func TestLookupsSeeTheTransactionsWrites(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	// h0 sorts first by name and last by IP; c shares a's name.
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		put(tx, host("h0", "127.41.0.10"))
		put(tx, withNIC(vm("c", "", gib), "10.0.0.7"))
		put(tx, edit(managed, func(n *acliv1.Network) {}))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		put(tx, edit(vm("c", "", gib), func(v *acliv1.Vm) { v.Name = "a" }))
		if got := tx.VmsNamed("a"); len(got) != 2 || got[1].Uuid != "uuid-c" {
			t.Errorf("staged rename: VmsNamed(a) = %v", got)
		}
		if tx.VmByMAC("50:6b:8d:00:00:7") != nil || tx.NicIPHolder("uuid-n1", "10.0.0.7") != nil {
			t.Error("a NIC the transaction removes is still found")
		}
		if nics, ips := tx.NetworkUse("uuid-n1"); nics != 0 || ips != 0 {
			t.Errorf("staged: n1 has %d NICs, %d IPs; want none", nics, ips)
		}
		if got := listing(t, tx); len(got) != 3 || got[1] != "a/uuid-c" {
			t.Errorf("staged listing %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *state.Tx) {
		var ips []string
		for _, h := range tx.Hosts() {
			ips = append(ips, h.Name)
		}
		if want := "h1 h2 h3 h0"; join(ips) != want {
			t.Errorf("hosts in order %q, want %q", join(ips), want)
		}
		if tx.HostNamed("h0").GetHypervisorIp() != "127.41.0.10" || tx.HostByIP("127.41.0.2").GetName() != "h2" || tx.HostNamed("nosuch") != nil {
			t.Error("host lookups wrong")
		}
		if got := listing(t, tx); join(got) != "a/uuid-a a/uuid-c b/uuid-b" {
			t.Errorf("listing %v", got)
		}
		if tx.NetworkNamed("n1").GetUuid() != "uuid-n1" {
			t.Error("network by name lost")
		}
	})
}

func TestFailedCommitUndoesTheIndexes(t *testing.T) {
	db, g, _ := gatedDB(t)
	first := updateAsync(db, func(tx *state.Tx) {
		put(tx, edit(withNIC(vm("c", "", gib), "10.0.0.9"), func(v *acliv1.Vm) { v.Name = "b" }))
		put(tx, edit(host("h3", "127.41.0.3"), func(h *acliv1.Host) { h.Name, h.HypervisorIp = "h9", "127.41.0.0" }))
	})
	waitVisible(t, db, "uuid-c")
	db.View(func(tx *state.Tx) {
		if len(tx.VmsNamed("b")) != 2 || tx.VmByMAC("50:6b:8d:00:00:9") == nil || tx.HostNamed("h9") == nil {
			t.Error("the commit on its way is not indexed")
		}
	})
	g.gate <- errors.New("boom")
	if r := <-first; r.err == nil {
		t.Fatal("the commit succeeded")
	}
	db.View(func(tx *state.Tx) {
		if got := tx.VmsNamed("b"); len(got) != 1 || tx.VmByMAC("50:6b:8d:00:00:9") != nil || tx.NicIPHolder("uuid-n1", "10.0.0.9") != nil {
			t.Errorf("after the undo: VmsNamed(b) = %d VMs, the MAC or IP still held", len(got))
		}
		if got := listing(t, tx); join(got) != "a/uuid-a b/uuid-b" {
			t.Errorf("listing after the undo %v", got)
		}
		if tx.HostNamed("h9") != nil || tx.HostNamed("h3") == nil || tx.Hosts()[2].Name != "h3" {
			t.Error("the host's undo is not in the indexes")
		}
	})
}

func TestLoadIndexesWhatWasCommitted(t *testing.T) {
	_, _, st := gatedDB(t)
	db2 := state.NewDB(st)
	if _, err := db2.Update(context.Background(), func(tx *state.Tx) error {
		put(tx, withNIC(vm("c", "", gib), "10.0.0.3"))
		put(tx, edit(vm("a", "", gib), func(v *acliv1.Vm) { v.Uuid = "uuid-0" }))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db3 := state.NewDB(st)
	if err := db3.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	db3.View(func(tx *state.Tx) {
		if got := listing(t, tx); join(got) != "a/uuid-0 a/uuid-a b/uuid-b c/uuid-c" {
			t.Errorf("loaded listing %v", got)
		}
		if tx.VmByMAC("50:6b:8d:00:00:3").GetName() != "c" || tx.NicIPHolder("uuid-n1", "10.0.0.3").GetName() != "c" {
			t.Error("loaded NIC indexes lost c")
		}
		if nics, ips := tx.NetworkUse("uuid-n1"); nics != 1 || ips != 1 {
			t.Errorf("loaded n1 use %d NICs %d IPs", nics, ips)
		}
	})
}

func join(s []string) string { return strings.Join(s, " ") }
