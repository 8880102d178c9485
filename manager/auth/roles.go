// Package auth identifies clusterd's callers (client certificates, bearer
// tokens, or the anonymous role of a loopback plaintext listener) and
// authorizes every RPC against one table of roles.
package auth

import (
	"fmt"
	"sort"
	"strings"
)

// Role is what a principal may do. Roles nest: an operator may do what a
// viewer may, an admin what an operator may.
type Role int

// Roles, weakest first. Public marks RPCs anyone may call (health checks).
const (
	None Role = iota
	Public
	Viewer
	Operator
	Admin
)

var roleNames = map[Role]string{None: "none", Public: "public", Viewer: "viewer", Operator: "operator", Admin: "admin"}

func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Allows reports whether a principal with role r may call an RPC needing need.
func (r Role) Allows(need Role) bool { return need == Public || (r >= need && r >= Viewer) }

// RoleNames are the roles a principal can hold, for messages and completion.
var RoleNames = []string{"viewer", "operator", "admin"}

// ParseRole reads viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return Viewer, nil
	case "operator":
		return Operator, nil
	case "admin":
		return Admin, nil
	}
	return None, fmt.Errorf("role %q is not a role; use viewer, operator or admin", s)
}

// methodRoles is THE table: the least role each RPC needs. A test walks every
// service of the generated descriptors and fails on an RPC missing here, and
// docs/reference/roles.md is generated from it.
var methodRoles = map[string]Role{
	"/acli.v1.ClusterService/GetCluster":       Viewer,
	"/acli.v1.ClusterService/GetClusterStatus": Viewer,
	"/acli.v1.ClusterService/GetHaConfig":      Viewer,
	"/acli.v1.ClusterService/UpdateHaConfig":   Admin,
	"/acli.v1.ClusterService/GetAdsConfig":     Viewer,
	"/acli.v1.ClusterService/UpdateAdsConfig":  Admin,

	"/acli.v1.EventService/ListEvents":  Viewer,
	"/acli.v1.EventService/WatchEvents": Viewer,

	"/acli.v1.HostService/ListHosts":                 Viewer,
	"/acli.v1.HostService/GetHost":                   Viewer,
	"/acli.v1.HostService/EnterMaintenanceModeCheck": Viewer,
	"/acli.v1.HostService/EnterMaintenanceMode":      Operator,
	"/acli.v1.HostService/ExitMaintenanceMode":       Operator,
	"/acli.v1.HostService/EnterCvmMaintenanceMode":   Operator,
	"/acli.v1.HostService/ExitCvmMaintenanceMode":    Operator,
	"/acli.v1.HostService/UpdateHost":                Admin,
	"/acli.v1.HostService/AddHost":                   Admin,
	"/acli.v1.HostService/RemoveHost":                Admin,

	"/acli.v1.ImageService/ListImages":  Viewer,
	"/acli.v1.ImageService/GetImage":    Viewer,
	"/acli.v1.ImageService/CreateImage": Admin,
	"/acli.v1.ImageService/UpdateImage": Admin,
	"/acli.v1.ImageService/DeleteImage": Admin,

	"/acli.v1.StorageContainerService/ListContainers": Viewer,
	"/acli.v1.StorageContainerService/GetContainer":   Viewer,

	"/acli.v1.NetworkService/ListNetworks":        Viewer,
	"/acli.v1.NetworkService/GetNetwork":          Viewer,
	"/acli.v1.NetworkService/CreateNetwork":       Admin,
	"/acli.v1.NetworkService/DeleteNetwork":       Admin,
	"/acli.v1.NetworkService/AddDhcpPool":         Admin,
	"/acli.v1.NetworkService/UpdateDhcpDns":       Admin,
	"/acli.v1.NetworkService/ListNetworkVms":      Viewer,
	"/acli.v1.NetworkService/GetVirtualSwitch":    Viewer,
	"/acli.v1.NetworkService/UpdateVirtualSwitch": Admin,

	"/acli.v1.SimService/FailHost":     Admin,
	"/acli.v1.SimService/RecoverHost":  Admin,
	"/acli.v1.SimService/FailCvm":      Admin,
	"/acli.v1.SimService/RecoverCvm":   Admin,
	"/acli.v1.SimService/SetDirtyRate": Admin,

	"/acli.v1.TaskService/ListTasks":  Viewer,
	"/acli.v1.TaskService/GetTask":    Viewer,
	"/acli.v1.TaskService/WatchTask":  Viewer,
	"/acli.v1.TaskService/CancelTask": Operator,

	"/acli.v1.VmService/ListVms":          Viewer,
	"/acli.v1.VmService/GetVm":            Viewer,
	"/acli.v1.VmService/ListVmGroups":     Viewer,
	"/acli.v1.VmService/SetPowerState":    Operator,
	"/acli.v1.VmService/MigrateVm":        Operator,
	"/acli.v1.VmService/CreateVm":         Admin,
	"/acli.v1.VmService/UpdateVm":         Admin,
	"/acli.v1.VmService/DeleteVm":         Admin,
	"/acli.v1.VmService/CreateDisk":       Admin,
	"/acli.v1.VmService/DeleteDisk":       Admin,
	"/acli.v1.VmService/UpdateDisk":       Admin,
	"/acli.v1.VmService/UpdateBootDevice": Admin,
	"/acli.v1.VmService/CloneVm":          Admin,
	"/acli.v1.VmService/CreateNic":        Admin,
	"/acli.v1.VmService/DeleteNic":        Admin,
	"/acli.v1.VmService/UpdateNic":        Admin,
	"/acli.v1.VmService/AssignDevice":     Admin,
	"/acli.v1.VmService/DeassignDevice":   Admin,
	"/acli.v1.VmService/SetAffinity":      Admin,
	"/acli.v1.VmService/CreateVmGroup":    Admin,
	"/acli.v1.VmService/UpdateVmGroup":    Admin,
	"/acli.v1.VmService/DeleteVmGroup":    Admin,

	"/acli.v1.SnapshotService/ListSnapshots":   Viewer,
	"/acli.v1.SnapshotService/GetSnapshot":     Viewer,
	"/acli.v1.SnapshotService/CreateSnapshots": Operator,
	"/acli.v1.SnapshotService/DeleteSnapshot":  Admin,

	"/acli.v1.VolumeGroupService/ListVolumeGroups":  Viewer,
	"/acli.v1.VolumeGroupService/GetVolumeGroup":    Viewer,
	"/acli.v1.VolumeGroupService/ListSessions":      Viewer,
	"/acli.v1.VolumeGroupService/AttachExternal":    Operator,
	"/acli.v1.VolumeGroupService/DetachExternal":    Operator,
	"/acli.v1.VolumeGroupService/AttachToVm":        Operator,
	"/acli.v1.VolumeGroupService/DetachFromVm":      Operator,
	"/acli.v1.VolumeGroupService/CreateVolumeGroup": Admin,
	"/acli.v1.VolumeGroupService/CloneVolumeGroup":  Admin,
	"/acli.v1.VolumeGroupService/UpdateVolumeGroup": Admin,
	"/acli.v1.VolumeGroupService/DeleteVolumeGroup": Admin,
	"/acli.v1.VolumeGroupService/CreateVgDisk":      Admin,
	"/acli.v1.VolumeGroupService/DeleteVgDisk":      Admin,

	"/acli.v1.TokenService/WhoAmI":      Viewer,
	"/acli.v1.TokenService/CreateToken": Admin,
	"/acli.v1.TokenService/ListTokens":  Admin,
	"/acli.v1.TokenService/RevokeToken": Admin,

	"/acli.v1.AuditService/ListAudit": Admin,

	"/grpc.health.v1.Health/Check":                                   Public,
	"/grpc.health.v1.Health/List":                                    Public,
	"/grpc.health.v1.Health/Watch":                                   Public,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      Viewer,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Viewer,
}

// RoleFor returns the least role fullMethod needs; ok is false for an RPC
// the table does not know (refused: a new RPC is closed until it is listed).
func RoleFor(fullMethod string) (r Role, ok bool) {
	r, ok = methodRoles[fullMethod]
	return r, ok
}

// Methods lists every RPC of the table, sorted.
func Methods() []string {
	out := make([]string, 0, len(methodRoles))
	for m := range methodRoles {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Mutating reports whether an RPC changes state (audited even when it
// succeeds): everything above viewer.
func Mutating(fullMethod string) bool {
	r, ok := methodRoles[fullMethod]
	return !ok || r > Viewer
}
