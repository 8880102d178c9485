package commands

import (
	"context"
	"slices"
	"strings"
	"sync"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
)

// Kind is a kind of entity positionals and keys refer to.
type Kind string

// Entity kinds.
const (
	KindHost      Kind = "host"
	KindVM        Kind = "vm"
	KindNetwork   Kind = "network"
	KindTask      Kind = "task"
	KindVMGroup   Kind = "vm_group"
	KindVG        Kind = "vg"
	KindImage     Kind = "image"
	KindContainer Kind = "container"
	KindToken     Kind = "token"
	KindSnapshot  Kind = "snapshot"
)

// Entity is what globs match and completion offers: a name, the UUID, and
// other spellings that identify it (a host's hypervisor IP).
type Entity struct {
	Name    string
	UUID    string
	Aliases []string
}

// is reports whether ref names the entity, as the server resolves it: the
// UUID in any case, the name, or an alias.
func (e Entity) is(ref string) bool {
	return ref == e.Name || strings.EqualFold(ref, e.UUID) || slices.Contains(e.Aliases, ref)
}

// KindSpec says how to talk about a kind and how to list its live names.
type KindSpec struct {
	Singular, Plural string // for questions: "Delete 2 VMs?"
	List             func(ctx context.Context, c *client.Client) ([]Entity, error)
	// Partial: List returns only some entities (the newest tasks), so a
	// name it lacks may still exist.
	Partial bool
}

// kindSpecs lists every entity kind; add one entry for a new kind.
func kindSpecs() map[Kind]*KindSpec {
	return map[Kind]*KindSpec{
		KindHost: {Singular: "host", Plural: "hosts", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetHosts()))
			for _, h := range resp.GetHosts() {
				out = append(out, Entity{Name: h.GetName(), UUID: h.GetUuid(), Aliases: []string{h.GetHypervisorIp()}})
			}
			return out, nil
		}},
		KindVM: {Singular: "VM", Plural: "VMs", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Vm.ListVms(ctx, &acliv1.ListVmsRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetVms()))
			for _, v := range resp.GetVms() {
				out = append(out, Entity{Name: v.GetName(), UUID: v.GetUuid()})
			}
			return out, nil
		}},
		KindNetwork: {Singular: "network", Plural: "networks", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Network.ListNetworks(ctx, &acliv1.ListNetworksRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetNetworks()))
			for _, n := range resp.GetNetworks() {
				out = append(out, Entity{Name: n.GetName(), UUID: n.GetUuid()})
			}
			return out, nil
		}},
		KindVG: {Singular: "volume group", Plural: "volume groups", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.VolumeGroup.ListVolumeGroups(ctx, &acliv1.ListVolumeGroupsRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetVolumeGroups()))
			for _, g := range resp.GetVolumeGroups() {
				out = append(out, Entity{Name: g.GetName(), UUID: g.GetUuid()})
			}
			return out, nil
		}},
		KindImage: {Singular: "image", Plural: "images", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Image.ListImages(ctx, &acliv1.ListImagesRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetImages()))
			for _, im := range resp.GetImages() {
				out = append(out, Entity{Name: im.GetName(), UUID: im.GetUuid()})
			}
			return out, nil
		}},
		KindContainer: {Singular: "container", Plural: "containers", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Container.ListContainers(ctx, &acliv1.ListContainersRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetContainers()))
			for _, ct := range resp.GetContainers() {
				out = append(out, Entity{Name: ct.GetName(), UUID: ct.GetUuid()})
			}
			return out, nil
		}},
		KindSnapshot: {Singular: "snapshot", Plural: "snapshots", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Snapshot.ListSnapshots(ctx, &acliv1.ListSnapshotsRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetSnapshots()))
			for _, s := range resp.GetSnapshots() {
				out = append(out, Entity{Name: s.GetName(), UUID: s.GetUuid()})
			}
			return out, nil
		}},
		KindTask: {Singular: "task", Plural: "tasks", Partial: true, List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Task.ListTasks(ctx, &acliv1.ListTasksRequest{IncludeCompleted: true, Limit: 200})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetTasks()))
			for _, t := range resp.GetTasks() {
				out = append(out, Entity{Name: t.GetUuid(), UUID: t.GetUuid()})
			}
			return out, nil
		}},
		KindToken: {Singular: "token", Plural: "tokens", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Token.ListTokens(ctx, &acliv1.ListTokensRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetTokens()))
			for _, t := range resp.GetTokens() {
				out = append(out, Entity{Name: t.GetId(), UUID: t.GetId()})
			}
			return out, nil
		}},
		KindVMGroup: {Singular: "VM group", Plural: "VM groups", List: func(ctx context.Context, c *client.Client) ([]Entity, error) {
			resp, err := c.Vm.ListVmGroups(ctx, &acliv1.ListVmGroupsRequest{})
			if err != nil {
				return nil, err
			}
			out := make([]Entity, 0, len(resp.GetGroups()))
			for _, g := range resp.GetGroups() {
				out = append(out, Entity{Name: g.GetName(), UUID: g.GetUuid()})
			}
			return out, nil
		}},
	}
}

// kindTable is built on first use, not at start-up (acli --version).
var kindTable = sync.OnceValue(kindSpecs)

// LookupKind returns how to list and name a kind (nil for unknown kinds).
func LookupKind(k Kind) *KindSpec { return kindTable()[k] }

// ListEntities lists live entities of a kind.
func ListEntities(ctx context.Context, c *client.Client, k Kind) ([]Entity, error) {
	spec := LookupKind(k)
	if spec == nil {
		return nil, nil
	}
	return spec.List(ctx, c)
}

// Count renders "VM web01" or "2 VMs" for questions.
func (s *KindSpec) Count(names []string) string {
	if len(names) == 1 {
		return s.Singular + " " + names[0]
	}
	return itoa(len(names)) + " " + s.Plural
}
