// Package vmgroup holds the VM groups: their table and what an edit does to
// a group. A group's anti-affinity is a should-rule: the scheduler keeps its
// members on different hosts when it can (scheduler.VM.AntiAffinityGroups).
package vmgroup

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Prefix is where groups are stored, one record per group under Key.
const Prefix = "/vmgroups/"

// Key is the store key of group id.
func Key(id string) string { return Prefix + id }

// Rec is a committed group and its store revision.
type Rec struct {
	PB  *acliv1.VmGroup
	Rev int64
}

// Table holds the committed groups by UUID and name. Its owner guards it
// with the model lock.
type Table struct {
	ix *state.Index[*Rec]
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{ix: state.NewIndex(func(r *Rec) string { return r.PB.Name })}
}

// Put records g at rev, replacing the group with its UUID.
func (t *Table) Put(g *acliv1.VmGroup, rev int64) { t.ix.Put(g.Uuid, &Rec{PB: g, Rev: rev}) }

// Delete forgets group id.
func (t *Table) Delete(id string) { t.ix.Delete(id) }

// Named is the group called name, or nil.
func (t *Table) Named(name string) *Rec {
	r, _ := t.ix.Named(name)
	return r
}

// Lookup finds a group by UUID or name; not found names the nearest.
func (t *Table) Lookup(ref string) (*Rec, error) {
	if r, ok := t.ix.Find(ref); ok {
		return r, nil
	}
	return nil, apierr.NotFound("vm_group", ref, t.ix.Names())
}

// AntiAffinity maps each VM to its anti-affinity groups, sorted.
func (t *Table) AntiAffinity() map[string][]string {
	out := map[string][]string{}
	for _, g := range t.ix.All() {
		if !g.PB.AntiAffinity {
			continue
		}
		for _, id := range g.PB.VmUuids {
			out[id] = append(out[id], g.PB.Uuid)
		}
	}
	for _, gs := range out {
		slices.Sort(gs)
	}
	return out
}

// List is every group by name, members that no longer exist left out.
func (t *Table) List(exists func(vm string) bool) []*acliv1.VmGroup {
	out := make([]*acliv1.VmGroup, 0, t.ix.Len())
	for _, r := range t.ix.All() {
		out = append(out, Out(r.PB, exists))
	}
	slices.SortFunc(out, func(a, b *acliv1.VmGroup) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Out is g without the members that no longer exist.
func Out(g *acliv1.VmGroup, exists func(vm string) bool) *acliv1.VmGroup {
	g = proto.Clone(g).(*acliv1.VmGroup)
	g.VmUuids = slices.DeleteFunc(g.VmUuids, func(id string) bool { return !exists(id) })
	return g
}

// Ref names g in tasks and events.
func Ref(g *acliv1.VmGroup) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kVmGroup, Uuid: g.Uuid, Name: g.Name}
}

// Member is a VM named in an edit.
type Member struct{ UUID, Name string }

// Edit is what adding, removing and setting anti-affinity make of cur (its
// gone members already left out by Out), and the task's message. Adding a
// member twice changes nothing; removing a VM that is not a member is
// refused.
func Edit(cur *acliv1.VmGroup, add, remove []Member, antiAffinity *bool) (*acliv1.VmGroup, string, error) {
	g := proto.Clone(cur).(*acliv1.VmGroup)
	var changes []string
	for _, v := range add {
		if !slices.Contains(g.VmUuids, v.UUID) {
			g.VmUuids = append(g.VmUuids, v.UUID)
			changes = append(changes, "added "+v.Name)
		}
	}
	for _, v := range remove {
		i := slices.Index(g.VmUuids, v.UUID)
		if i < 0 {
			return nil, "", apierr.Precondition("NOT_MEMBER", "vm:"+v.Name, "vm %s is not a member of vm group %s", v.Name, cur.Name)
		}
		g.VmUuids = slices.Delete(g.VmUuids, i, i+1)
		changes = append(changes, "removed "+v.Name)
	}
	if antiAffinity != nil && *antiAffinity != g.AntiAffinity {
		g.AntiAffinity = *antiAffinity
		if g.AntiAffinity {
			changes = append(changes, "anti-affinity set")
		} else {
			changes = append(changes, "anti-affinity unset")
		}
	}
	if len(changes) == 0 {
		return g, fmt.Sprintf("vm group %s unchanged", cur.Name), nil
	}
	return g, fmt.Sprintf("vm group %s: %s", cur.Name, strings.Join(changes, ", ")), nil
}
