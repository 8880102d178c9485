// Package vmgroup holds the VM groups and VMs' host affinity: what an edit
// does to a group, and the service that commits it. A group's
// anti-affinity is a should-rule: the scheduler keeps its members on
// different hosts when it can (scheduler.VM.AntiAffinityGroups). Host
// affinity is a must-rule: the VM runs only on the listed hosts.
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

// AntiAffinity maps each VM to its anti-affinity groups, sorted.
func AntiAffinity(tx *state.Tx) map[string][]string {
	out := map[string][]string{}
	for _, g := range tx.VmGroups() {
		if !g.AntiAffinity {
			continue
		}
		for _, id := range g.VmUuids {
			out[id] = append(out[id], g.Uuid)
		}
	}
	for _, gs := range out {
		slices.Sort(gs)
	}
	return out
}

// exists reports whether VM id is committed.
func exists(tx *state.Tx) func(id string) bool {
	return func(id string) bool { return tx.Vm(id) != nil }
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
