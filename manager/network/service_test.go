package network_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/network"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/tasks/taskstest"
)

// wirer records the switches and NICs it is asked to wire; refuse makes
// it fail.
type wirer struct {
	switches []*acliv1.VirtualSwitch
	nics     []string
	refuse   error
}

func (w *wirer) WireSwitch(_ context.Context, vs *acliv1.VirtualSwitch) error {
	if w.refuse != nil {
		return w.refuse
	}
	w.switches = append(w.switches, vs)
	return nil
}

func (w *wirer) UpdateNic(_ context.Context, h *acliv1.Host, v *acliv1.Vm, nic *acliv1.Nic) error {
	if w.refuse != nil {
		return w.refuse
	}
	w.nics = append(w.nics, h.Name+" "+v.Name+" "+network.NicText(nic))
	return nil
}

// newService is a service over a DB with host h1, VM a running there and
// VM b off.
func newService(t *testing.T) (*network.Service, *taskstest.Starter, *wirer) {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		tx.Put(state.HostKey("uuid-h1"), &acliv1.Host{Uuid: "uuid-h1", Name: "h1", HypervisorIp: "127.44.0.1", MemoryBytes: 8 << 30,
			Schedulable: true, NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}, 0)
		tx.Put(state.VmKey("uuid-a"), &acliv1.Vm{Uuid: "uuid-a", Name: "a", MemoryBytes: 1 << 30, PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h1"}, 0)
		tx.Put(state.VmKey("uuid-b"), &acliv1.Vm{Uuid: "uuid-b", Name: "b", MemoryBytes: 1 << 30}, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ft := taskstest.New(db)
	w := &wirer{}
	s := &network.Service{DB: db, Tasks: ft, Hosts: w}
	return s, ft, w
}

var bg = context.Background()

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestServiceNetworksAndNics(t *testing.T) {
	s, ft, _ := newService(t)
	must[*acliv1.Task](t)(s.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", VlanId: 10, IpConfig: "10.44.0.1/24", VswitchName: "vs0"}))
	wantErr(t, errOf(s.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod"})), codes.AlreadyExists, "network names are unique")
	must[*acliv1.Task](t)(s.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.44.0.10", End: "10.44.0.11"}))
	must[*acliv1.Task](t)(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod"}))
	must[*acliv1.Task](t)(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod", Mac: "50:6b:8d:00:00:01"}))
	wantErr(t, errOf(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod"})), codes.FailedPrecondition, "no free address left")
	wantErr(t, errOf(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod", Mac: "50:6b:8d:00:00:01"})), codes.AlreadyExists, "vm b has a NIC with this MAC")
	wantErr(t, errOf(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prd"})), codes.NotFound, `did you mean "prod"`)
	wantErr(t, errOf(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "c", Network: "prod"})), codes.NotFound, `vm "c" not found`)

	n := must[*acliv1.Network](t)(s.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"}))
	if n.NumNics != 2 || n.NumIpsUsed != 2 || n.DefaultGateway != "10.44.0.1" {
		t.Fatalf("network %v", n)
	}
	vms := must[*acliv1.ListNetworkVmsResponse](t)(s.ListNetworkVms(bg, &acliv1.ListNetworkVmsRequest{Network: "prod"}))
	if len(vms.Vms) != 2 || vms.Vms[0].VmName != "a" || vms.Vms[0].Ip != "10.44.0.10" || vms.Vms[1].Ip != "10.44.0.11" {
		t.Fatalf("list_vms %v", vms.Vms)
	}
	wantErr(t, errOf(s.DeleteNetwork(bg, &acliv1.DeleteNetworkRequest{Network: "prod"})), codes.FailedPrecondition, "network prod has 2 NICs; delete them first")
	must[*acliv1.Task](t)(s.DeleteNic(bg, &acliv1.DeleteNicRequest{Vm: "b", Mac: "50:6b:8d:00:00:01"}))
	// The freed address is the next one given out.
	must[*acliv1.Task](t)(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod"}))
	vms = must[*acliv1.ListNetworkVmsResponse](t)(s.ListNetworkVms(bg, &acliv1.ListNetworkVmsRequest{Network: "prod"}))
	if vms.Vms[1].Ip != "10.44.0.11" {
		t.Fatalf("b's new NIC has %s", vms.Vms[1].Ip)
	}
	if h := ft.Held(); len(h) != 0 {
		t.Fatalf("locks left held: %v", h)
	}
}

// A refused commit gives back the address its task claimed, and a NIC
// update on a running VM reaches its host before the record.
func TestServiceClaimsAndHosts(t *testing.T) {
	s, ft, w := newService(t)
	must[*acliv1.Task](t)(s.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", IpConfig: "10.44.0.0/24", VswitchName: "vs0"}))
	must[*acliv1.Task](t)(s.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.44.0.10", End: "10.44.0.20"}))
	// Another task holds .10 while it creates a NIC elsewhere.
	other, err := ft.Begin(bg, "vm", acliv1.TaskOperation_kVmClone, []*acliv1.EntityRef{{Name: "x"}}, "ip:x")
	if err != nil {
		t.Fatal(err)
	}
	n := must[*acliv1.Network](t)(s.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"}))
	if _, ok := other.Hold("ip:" + n.Uuid + "/10.44.0.10"); !ok {
		t.Fatal("hold refused")
	}
	ft.FailNext = errors.New("store down")
	wantErr(t, errOf(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod"})), codes.Unknown, "store down")
	must[*acliv1.Task](t)(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod", Mac: "50:6b:8d:00:00:02", VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{30, 20}}))
	vms := must[*acliv1.ListNetworkVmsResponse](t)(s.ListNetworkVms(bg, &acliv1.ListNetworkVmsRequest{Network: "prod"}))
	if vms.Vms[0].Ip != "10.44.0.11" {
		t.Fatalf("NIC got %s, want .11 (.10 held by another task, .11 given back by the failed one)", vms.Vms[0].Ip)
	}
	f := false
	must[*acliv1.Task](t)(s.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "a", Mac: "50:6b:8d:00:00:02", Connected: &f}))
	if !slices.Equal(w.nics, []string{"h1 a trunked [20 30], disconnected"}) {
		t.Fatalf("host saw %q", w.nics)
	}
	w.refuse = errors.New("no such interface")
	tr := true
	wantErr(t, errOf(s.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "a", Mac: "50:6b:8d:00:00:02", Connected: &tr})), codes.Unknown, "no such interface")
	var nic *acliv1.Nic
	s.DB.View(func(tx *state.Tx) { nic = tx.Vm("uuid-a").Nics[0] })
	if !nic.Disconnected {
		t.Fatal("a refused host change reached the record")
	}
	other.Drop()
}

func TestServiceVirtualSwitch(t *testing.T) {
	s, _, w := newService(t)
	mtu := int32(9000)
	w.refuse = errors.New("host h1: uplink eth9 missing")
	wantErr(t, errOf(s.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", Mtu: &mtu})), codes.FailedPrecondition, "virtual switch vs0: host h1: uplink eth9 missing")
	if vs := must[*acliv1.VirtualSwitch](t)(s.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{Name: "vs0"})); vs.Mtu != 1500 {
		t.Fatalf("a refused wiring changed the record: %v", vs)
	}
	w.refuse = nil
	must[*acliv1.Task](t)(s.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", Mtu: &mtu}))
	if vs := must[*acliv1.VirtualSwitch](t)(s.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{Name: "vs0"})); vs.Mtu != 9000 || vs.LogicalTimestamp == 0 {
		t.Fatalf("after update: %v", vs)
	}
	if len(w.switches) != 1 || w.switches[0].Mtu != 9000 {
		t.Fatalf("hosts wired %v", w.switches)
	}
	wantErr(t, errOf(s.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{Name: "vs1"})), codes.NotFound, `virtual switch "vs1" not found`)
}

func errOf[T any](_ T, err error) error { return err }

// NICs name their VM by UUID or unique name, resolved in the committed
// state; an ambiguous name is refused and names both UUIDs.
func TestServiceNicVmByUuidOrUniqueName(t *testing.T) {
	s, ft, _ := newService(t)
	_, err := s.DB.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.VmKey("uuid-d1"), &acliv1.Vm{Uuid: "uuid-d1", Name: "dup", MemoryBytes: 1 << 30}, 0)
		tx.Put(state.VmKey("uuid-d2"), &acliv1.Vm{Uuid: "uuid-d2", Name: "dup", MemoryBytes: 1 << 30}, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	must[*acliv1.Task](t)(s.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod"}))
	wantErr(t, errOf(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "dup", Network: "prod"})), codes.InvalidArgument, "ambiguous: 2 VMs have it (uuid-d1, uuid-d2)")
	must[*acliv1.Task](t)(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "UUID-D2", Network: "prod"}))
	var d1, d2 *acliv1.Vm
	s.DB.View(func(tx *state.Tx) { d1, d2 = tx.Vm("uuid-d1"), tx.Vm("uuid-d2") })
	if len(d1.Nics) != 0 || len(d2.Nics) != 1 {
		t.Fatalf("NICs: d1 %v, d2 %v", d1.Nics, d2.Nics)
	}
	wantErr(t, errOf(s.DeleteNic(bg, &acliv1.DeleteNicRequest{Vm: "", Mac: d2.Nics[0].Mac})), codes.InvalidArgument, "vm is required")
	if h := ft.Held(); len(h) != 0 {
		t.Fatalf("locks left held: %v", h)
	}
}

// A host plugging a NIC reads its network's VLAN and its virtual switch's
// bridge, as committed (a renamed bridge included); an unknown network is
// not found.
func TestServiceNicNetwork(t *testing.T) {
	s, _, _ := newService(t)
	must[*acliv1.Task](t)(s.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", VlanId: 10}))
	n := must[*acliv1.Network](t)(s.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"}))
	if got, ok := s.NicNetwork(n.Uuid); !ok || got != (driver.NicNetwork{VlanID: 10, Bridge: "br0"}) {
		t.Fatalf("NicNetwork(prod) = %+v %v, want VLAN 10 on br0", got, ok)
	}
	must[*acliv1.Task](t)(s.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{BridgeName: proto.String("br1")}))
	if got, _ := s.NicNetwork(n.Uuid); got.Bridge != "br1" {
		t.Fatalf("NicNetwork(prod) after bridge_name=br1: %+v", got)
	}
	if got, ok := s.NicNetwork("4f3c0000-0000-4000-8000-000000000000"); ok {
		t.Fatalf("NicNetwork of no network: %+v, true", got)
	}
}

// racer commits, the first time its task holds an address, another VM's
// NIC with that address: a task that held it and committed between the
// request's read of the addresses in use and this hold.
type racer struct {
	*taskstest.Starter
	once bool
}

type racerTask struct {
	tasks.Quick
	r *racer
}

func (r *racer) Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (tasks.Quick, error) {
	q, err := r.Starter.Begin(ctx, kind, op, refs, locks...)
	if err != nil {
		return nil, err
	}
	return racerTask{q, r}, nil
}

func (rt racerTask) Hold(lock string) (string, bool) {
	if network, addr, ok := strings.Cut(strings.TrimPrefix(lock, "ip:"), "/"); ok && !rt.r.once {
		rt.r.once = true
		_, err := rt.r.DB.Update(bg, func(tx *state.Tx) error {
			b := proto.Clone(tx.Vm("uuid-b")).(*acliv1.Vm)
			b.Nics = append(b.Nics, &acliv1.Nic{Mac: "50:6b:8d:00:00:09", NetworkUuid: network, Ip: addr})
			tx.Put(state.VmKey("uuid-b"), b, tx.Rev(state.VmKey("uuid-b")))
			return nil
		})
		if err != nil {
			panic(err)
		}
	}
	return rt.Quick.Hold(lock)
}

// An address another task gave out after this request read the pool is
// passed over for the next free one, not refused.
func TestServiceNicSkipsAnAddressGivenOutMeanwhile(t *testing.T) {
	s, ft, _ := newService(t)
	must[*acliv1.Task](t)(s.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", IpConfig: "10.44.0.1/24"}))
	must[*acliv1.Task](t)(s.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.44.0.10", End: "10.44.0.11"}))
	s.Tasks = &racer{Starter: ft}
	must[*acliv1.Task](t)(s.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod"}))
	vms := must[*acliv1.ListNetworkVmsResponse](t)(s.ListNetworkVms(bg, &acliv1.ListNetworkVmsRequest{Network: "prod"}))
	if len(vms.Vms) != 2 || vms.Vms[0].VmName != "a" || vms.Vms[0].Ip != "10.44.0.11" || vms.Vms[1].Ip != "10.44.0.10" {
		t.Fatalf("list_vms %v", vms.Vms)
	}
}
