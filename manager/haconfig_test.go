package manager_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// HA's guarantee keeps memory for the worst host failure, per host segment: a power-on that
// would take it is refused (exit 5) naming the reservation, and so is
// turning the guarantee on over a cluster already too full; with a host
// out, its share is in use and power-ons go through.
func TestHAGuarantee(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3}) // 3 x 256 GiB
	c := newClients(h.Conn)
	cfg, err := c.cl.GetHaConfig(bg, &acliv1.GetHaConfigRequest{})
	if err != nil || !cfg.FailoverEnabled || cfg.NumHostFailuresToTolerate != 1 || cfg.ReservationType != acliv1.HaReservationType_kAcropolisHANoReservations {
		t.Fatalf("default HA %v %v", cfg, err)
	}
	vmOn(t, c, "a", 200*gib, "h1")
	vmOn(t, c, "b", 200*gib, "h2")
	vmOn(t, c, "c", 150*gib, "h3")
	// 550 GiB run; the two hosts left after a failure hold 512.
	wantCode(t, errOf(c.cl.UpdateHaConfig(bg, &acliv1.UpdateHaConfigRequest{ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments})),
		codes.FailedPrecondition, "the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.20.0.21) fails, vm a (204800 MiB) fits in the free memory of none of the hosts left (the most any has is 108544 MiB)")
	succeed(t, c)(power(c, "c", acliv1.PowerTransition_kPowerOff))
	final := succeed(t, c)(c.cl.UpdateHaConfig(bg, &acliv1.UpdateHaConfigRequest{ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}))
	if messages(final) != "HA updated: reservation_type=kAcropolisHAReserveSegments" {
		t.Fatalf("update: %q", messages(final))
	}
	cfg, _ = c.cl.GetHaConfig(bg, &acliv1.GetHaConfigRequest{})
	// The worst failure (h1 or h2) restarts 200 GiB; 768 - 400 - 200 are left.
	if cfg.ReservedMemoryBytes != 200*gib || cfg.UnreservedMemoryBytes != 168*gib {
		t.Fatalf("guarantee %v", cfg)
	}
	wantCode(t, errOf(power(c, "c", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition, "vm c cannot power on: the HA reservation (kAcropolisHAReserveSegments)")
	// Segments, not totals: 100 GiB on h3 leaves 512 GiB for 500 after any
	// failure, but then h2's 200 GiB VM fits on no single host left.
	createVm(t, c, "d", 100*gib)
	wantCode(t, errOf(power(c, "d", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition,
		"vm d cannot power on: the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.20.0.21) fails, vm a (204800 MiB) fits")
	createVm(t, c, "e", 50*gib)
	succeed(t, c)(power(c, "e", acliv1.PowerTransition_kPowerOn))
	wantCode(t, errOf(c.cl.UpdateHaConfig(bg, &acliv1.UpdateHaConfigRequest{NumHostFailuresToTolerate: proto.Int32(3)})), codes.InvalidArgument,
		"num_host_failures_to_tolerate 3 is out of range; use 1 to 2")
	// A host out uses the reservation: the power-on fits again.
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h3"}); err != nil {
		t.Fatal(err)
	}
	haTask(t, c, "h3")
	c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h3"})
	checkInvariants(t, h)
}

// With failover off a failed host's VMs are not restarted; an event says so.
func TestHAFailoverDisabled(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	vmOn(t, c, "web", 4*gib, "h2")
	succeed(t, c)(c.cl.UpdateHaConfig(bg, &acliv1.UpdateHaConfigRequest{EnableFailover: proto.Bool(false)}))
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h2"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "ha"})
		if len(evs.GetEvents()) > 0 {
			if m := evs.Events[len(evs.Events)-1].Message; !strings.Contains(m, "host h2 (127.20.0.22) is down and its VMs are not restarted: HA failover is disabled") {
				t.Fatalf("ha event %q", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ha event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := getVm(t, c, "web"); v.HostName != "h2" {
		t.Fatalf("web restarted on %s with failover off", v.HostName)
	}
	// The host comes back without it: web is recorded off, not left
	// running on h2 (where a migration would then fail).
	if _, err := c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h2"}); err != nil {
		t.Fatal(err)
	}
	for getVm(t, c, "web").PowerState != acliv1.PowerState_kOff {
		if time.Now().After(deadline) {
			t.Fatalf("web after h2 came back empty: %v", getVm(t, c, "web"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkInvariants(t, h)
}

// ADS off: placement no longer keeps an anti-affinity group apart.
func TestADSOffIgnoresAntiAffinity(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	a, _ := c.cl.GetAdsConfig(bg, &acliv1.GetAdsConfigRequest{})
	if !a.GetEnabled() {
		t.Fatal("ADS is on by default")
	}
	vmOn(t, c, "filler", 100*gib, "h2")
	vmOn(t, c, "filler3", 100*gib, "h3")
	createVm(t, c, "g1", gib)
	createVm(t, c, "g2", gib)
	succeed(t, c)(c.vm.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "aa"}))
	succeed(t, c)(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "aa", AddVms: []string{"g1", "g2"}, AntiAffinity: proto.Bool(true)}))
	succeed(t, c)(c.cl.UpdateAdsConfig(bg, &acliv1.UpdateAdsConfigRequest{Enable: false}))
	succeed(t, c)(power(c, "g1", acliv1.PowerTransition_kPowerOn))
	succeed(t, c)(power(c, "g2", acliv1.PowerTransition_kPowerOn))
	// The emptiest host takes both.
	if g1, g2 := getVm(t, c, "g1"), getVm(t, c, "g2"); g1.HostName != "h1" || g2.HostName != "h1" {
		t.Fatalf("ADS off: g1 on %s, g2 on %s; want both on h1", g1.HostName, g2.HostName)
	}
	succeed(t, c)(c.cl.UpdateAdsConfig(bg, &acliv1.UpdateAdsConfigRequest{Enable: true}))
	succeed(t, c)(power(c, "g2", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(power(c, "g2", acliv1.PowerTransition_kPowerOn))
	if g2 := getVm(t, c, "g2"); g2.HostName == "h1" {
		t.Fatal("ADS on: g2 joined g1 on h1")
	}
}

// mode=power_off shuts every VM down (nothing blocks) and exit powers them
// on again there; mode=cold moves VMs offline.
func TestMaintenanceModes(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	vmOn(t, c, "web", 4*gib, "h1")
	vmOn(t, c, "gpu", 4*gib, "h1", func(r *acliv1.CreateVmRequest) { r.Passthrough = true })
	chk, err := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1"})
	if err != nil || chk.Ok || len(chk.Blockers) != 1 || chk.Blockers[0].Override != "mode=cold, non_migratable_vm_action=acpi_shutdown or mode=power_off" {
		t.Fatalf("check: %v %v", chk, err)
	}
	chk, err = c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", Mode: acliv1.MaintenanceMode_kMaintenancePowerOff})
	if err != nil || !chk.Ok || len(chk.Plan) != 2 || chk.Plan[0].Action != "shutdown" || chk.Plan[1].Action != "shutdown" {
		t.Fatalf("check power_off: %v %v", chk, err)
	}
	final := succeed(t, c)(c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", Mode: acliv1.MaintenanceMode_kMaintenancePowerOff}))
	if !strings.HasSuffix(messages(final), "entered maintenance mode: 0 VM(s) migrated, 2 shut down") {
		t.Fatalf("power_off: %s", messages(final))
	}
	for _, n := range []string{"web", "gpu"} {
		if v := getVm(t, c, n); v.PowerState != acliv1.PowerState_kOff {
			t.Fatalf("%s after power_off: %v", n, v.PowerState)
		}
	}
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}))
	for _, n := range []string{"web", "gpu"} {
		if v := getVm(t, c, n); v.PowerState != acliv1.PowerState_kOn || v.HostName != "h1" {
			t.Fatalf("%s after exit: %v on %s", n, v.PowerState, v.HostName)
		}
	}
	succeed(t, c)(power(c, "gpu", acliv1.PowerTransition_kPowerOff))
	final = succeed(t, c)(c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", Mode: acliv1.MaintenanceMode_kMaintenanceCold}))
	if !strings.Contains(messages(final), "vm web migrated to h") || !strings.Contains(messages(final), "(offline)") {
		t.Fatalf("cold: %s", messages(final))
	}
	if v := getVm(t, c, "web"); v.PowerState != acliv1.PowerState_kOn || v.HostName == "h1" {
		t.Fatalf("web after cold: %v on %s", v.PowerState, v.HostName)
	}
	wantCode(t, errOf(c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h2", Mode: 9})), codes.InvalidArgument, "mode 9 is unknown; use live, cold or power_off")
	checkInvariants(t, h)
}
