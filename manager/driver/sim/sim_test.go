package sim

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

func TestDefaultLabAddressing(t *testing.T) {
	r, err := ForHosts(3).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"127.20.0.21", "127.20.0.31"}, {"127.20.0.22", "127.20.0.32"}, {"127.20.0.23", "127.20.0.33"}}
	for i, h := range r.Hosts {
		if h.HypervisorIP != want[i][0] || h.CvmIP != want[i][1] || h.CPUCores != 32 || h.MemoryGiB != 256 || h.Name != "h"+string(rune('1'+i)) {
			t.Fatalf("host %d: %+v", i, h)
		}
	}
	if r.DataServicesIP != "127.20.0.30" || r.RedundancyFactor != 2 {
		t.Fatalf("cluster %+v", r)
	}
}

func TestLargeClusterAddressing(t *testing.T) {
	r, err := ForHosts(1000).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int, hyp, cvm string) {
		if h := r.Hosts[i]; h.HypervisorIP != hyp || h.CvmIP != cvm {
			t.Errorf("host %d: %s / %s, want %s / %s", i+1, h.HypervisorIP, h.CvmIP, hyp, cvm)
		}
	}
	check(8, "127.20.0.29", "127.20.0.39")
	check(9, "127.20.1.1", "127.20.101.1")
	check(258, "127.20.1.250", "127.20.101.250")
	check(259, "127.20.2.1", "127.20.102.1")
	check(999, "127.20.4.241", "127.20.104.241")
	if _, err := ForHosts(1001).Resolve(); err == nil || !strings.Contains(err.Error(), "at most 1000") {
		t.Fatalf("1001 hosts: %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	c, err := LoadConfig(write(`
cluster_name: lab
redundancy_factor: 3
cpu_cores: 16
addressing: {hypervisor_start: 127.30.0.254, cvm_start: 127.31.0.1, data_services_ip: 127.31.0.100}
host_list:
  - {name: big, memory_gib: 1024}
  - {}
  - {}
timing: {power_on: 3s}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.ClusterName != "lab" || r.RedundancyFactor != 3 || len(r.Hosts) != 3 || r.Timing.PowerOn != 3*time.Second || r.Timing.Reboot != 2*time.Second {
		t.Fatalf("resolved %+v", r)
	}
	// .255 and .0 are skipped when counting up.
	if r.Hosts[0].Name != "big" || r.Hosts[0].MemoryGiB != 1024 || r.Hosts[0].HypervisorIP != "127.30.0.254" || r.Hosts[1].HypervisorIP != "127.30.1.1" || r.Hosts[1].CPUCores != 16 || r.Hosts[2].Name != "h3" {
		t.Fatalf("hosts %+v", r.Hosts)
	}
	for src, want := range map[string]string{
		"hosts: 3\nmemroy_gib: 4\n":                            "field memroy_gib not found",
		"hosts: 2\naddressing: {hypervisor_start: 10.0.0.1}\n": "outside 127.0.0.0/8",
		"hosts: 1\n":                                      "cannot have redundancy factor 2",
		"hosts: 3\nredundancy_factor: 4\n":                "use 2 or 3",
		"host_list: [{name: a}, {name: a}]\n":             "host name a is used by hosts 1 and 2",
		"host_list: [{hypervisor_ip: 127.20.0.30}, {}]\n": "already used by data_services_ip",
	} {
		c, err := LoadConfig(write(src))
		if err == nil {
			_, err = c.Resolve()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want %q", src, err, want)
		}
	}
}

func started(t *testing.T, n int, speed float64) (*Driver, []*acliv1.Host, <-chan driver.HostEvent) {
	t.Helper()
	c := ForHosts(n)
	c.Speed = speed
	d, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv := d.Inventory()
	evs, err := d.Start(context.Background(), inv.Hosts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, inv.Hosts, evs
}

var ctx = context.Background()

func TestPowerLifecycleTakesSimulatedTime(t *testing.T) {
	d, hosts, _ := started(t, 3, 10) // power-on 1 s / 10 = 100 ms
	vm := &acliv1.Vm{Uuid: "v1", Name: "web01", MemoryBytes: 1 << 30}
	t0 := time.Now()
	if err := d.PowerOn(ctx, hosts[0], vm); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el < 90*time.Millisecond {
		t.Fatalf("power-on took %v; the simulated 1 s at speed 10 is 100 ms", el)
	}
	if err := d.PowerOn(ctx, hosts[1], vm); err == nil || !strings.Contains(err.Error(), "already running on host h1") {
		t.Fatalf("double start: %v", err)
	}
	if err := d.Undefine(ctx, hosts[0], vm); err == nil {
		t.Fatal("undefine of a running VM succeeded")
	}
	for _, op := range []func(context.Context, *acliv1.Host, *acliv1.Vm) error{d.Reboot, d.Reset, d.Shutdown} {
		if err := op(ctx, hosts[0], vm); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Running(hosts[0].Uuid); len(got) != 0 {
		t.Fatalf("still running after shutdown: %v", got)
	}
	if err := d.Reboot(ctx, hosts[0], vm); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("reboot of a stopped VM: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.PowerOn(cctx, hosts[0], vm); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled power-on: %v", err)
	}
}

func TestMigrateReportsProgressAndMovesVm(t *testing.T) {
	d, hosts, _ := started(t, 3, 1000)
	vm := &acliv1.Vm{Uuid: "v1", Name: "db", MemoryBytes: 8 << 30}
	d.PowerOn(ctx, hosts[0], vm)
	var steps []*acliv1.MigrationProgress
	err := d.Migrate(ctx, vm, hosts[0], hosts[1], driver.MigrateOptions{BandwidthMbps: 1000}, func(p *acliv1.MigrationProgress) {
		steps = append(steps, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Pre-copy: round 1 sends all memory, later rounds what was dirtied,
	// the last step is the stop-and-copy pause.
	last := steps[len(steps)-1]
	if len(steps) < 3 || steps[0].Round != 1 || steps[0].TransferredBytes != 8<<30 || last.RemainingBytes != 0 ||
		last.TransferredBytes <= 8<<30 || last.EstimatedDowntimeMs > 300 || steps[0].TargetHostUuid != hosts[1].Uuid {
		t.Fatalf("progress %v", steps)
	}
	if len(d.Running(hosts[0].Uuid)) != 0 || len(d.Running(hosts[1].Uuid)) != 1 {
		t.Fatal("vm not moved")
	}
	// 8 GiB at 1 Gb/s is ~69 s of simulated time.
	st, _ := TimedCopy(8<<30, 0, 1000)
	var total time.Duration
	for _, s := range st {
		total += s.Duration
	}
	if total < 68*time.Second || total > 70*time.Second {
		t.Fatalf("timed copy of 8 GiB at 1 Gb/s = %v", total)
	}
	if err := d.Migrate(ctx, vm, hosts[0], hosts[2], driver.MigrateOptions{}, nil); err == nil || !strings.Contains(err.Error(), "not running on source") {
		t.Fatalf("migrate from the wrong host: %v", err)
	}
}

func TestPluggableMigrationModelFailure(t *testing.T) {
	c := ForHosts(2)
	c.Speed = 1000
	d, _ := New(c, Options{Migration: func(mem, dirty, bw int64) ([]MigrationStep, error) {
		return []MigrationStep{{Round: 1, Duration: time.Second}, {Round: 2, Duration: time.Second}}, errors.New("failure to converge")
	}})
	inv := d.Inventory()
	d.Start(ctx, inv.Hosts, []*acliv1.Vm{{Uuid: "v", Name: "v", PowerState: acliv1.PowerState_kOn, HostUuid: inv.Hosts[0].Uuid}})
	defer d.Close()
	rounds := 0
	err := d.Migrate(ctx, &acliv1.Vm{Uuid: "v", Name: "v"}, inv.Hosts[0], inv.Hosts[1], driver.MigrateOptions{}, func(*acliv1.MigrationProgress) { rounds++ })
	if err == nil || !strings.Contains(err.Error(), "failure to converge") || rounds != 2 {
		t.Fatalf("err %v after %d rounds", err, rounds)
	}
	if len(d.Running(inv.Hosts[0].Uuid)) != 1 {
		t.Fatal("vm left its source after a failed migration")
	}
}

// Each fault returns its report and queues none: the caller applies it, so
// the manager hears of a fault once. Heartbeats stop while the host is down.
func TestFaultsReturnTheirReport(t *testing.T) {
	d, hosts, evs := started(t, 3, 1000)
	vm := &acliv1.Vm{Uuid: "v1", Name: "web"}
	d.PowerOn(ctx, hosts[1], vm)
	fault := func(do func(string) (driver.HostEvent, error), host int, kind driver.EventKind, reason string) {
		t.Helper()
		before := time.Now()
		ev, err := do(hosts[host].Uuid)
		if err != nil || ev.Kind != kind || ev.HostUUID != hosts[host].Uuid || ev.Reason != reason || ev.Time.Before(before) {
			t.Fatalf("report %+v %v, want %v of %s (%s)", ev, err, kind, hosts[host].Name, reason)
		}
	}
	fault(d.FailHost, 1, driver.HostDown, "heartbeats stopped (fault injected)")
	if len(d.Running(hosts[1].Uuid)) != 0 {
		t.Fatal("a failed host kept its VMs")
	}
	if err := d.PowerOn(ctx, hosts[1], vm); err == nil || !strings.Contains(err.Error(), "is down") {
		t.Fatalf("power-on on a down host: %v", err)
	}
	if _, err := d.RecoverCvm(hosts[1].Uuid); err == nil || !strings.Contains(err.Error(), "recover the host first") {
		t.Fatalf("recovered a CVM on a down host: %v", err)
	}
	// Failing it again changes nothing and reports the same state.
	fault(d.FailHost, 1, driver.HostDown, "heartbeats stopped (fault injected)")
	fault(d.FailCvm, 2, driver.CvmDown, "cvm stopped (fault injected)")
	if up, cvm, _ := d.HostState(hosts[2].Uuid); !up || cvm {
		t.Fatalf("after fail_cvm: host up %v, cvm up %v", up, cvm)
	}
	fault(d.RecoverCvm, 2, driver.CvmUp, "cvm recovered")
	// The stream carries heartbeats and VM reports, none of the faults.
	timeout := time.After(4 * d.HeartbeatInterval())
	for seen := 0; ; {
		select {
		case ev := <-evs:
			if ev.Kind != driver.Heartbeat && ev.Kind != driver.VmStates {
				t.Fatalf("the stream carried %v of %s", ev.Kind, ev.HostUUID)
			}
			seen++
			continue
		case <-timeout:
			if seen == 0 {
				t.Fatal("no heartbeats from the hosts up")
			}
		}
		break
	}
	fault(d.RecoverHost, 1, driver.HostUp, "host recovered")
	if up, cvm, _ := d.HostState(hosts[1].Uuid); !up || !cvm {
		t.Fatalf("after recover_host: host up %v, cvm up %v", up, cvm)
	}
	if _, err := d.FailHost("nosuch"); err == nil {
		t.Fatal("failed a host the driver does not manage")
	}
}

func TestPreCopyFailsToConvergeAndKeepsVmOnSource(t *testing.T) {
	d, hosts, _ := started(t, 2, 1e6)
	// Dirtying 2,000 MiB/s over a 10 Gb/s link (~1,192 MiB/s) never converges.
	vm := &acliv1.Vm{Uuid: "hot", Name: "hot", MemoryBytes: 8 << 30, DirtyRateMbps: 2000}
	d.PowerOn(ctx, hosts[0], vm)
	rounds := 0
	err := d.Migrate(ctx, vm, hosts[0], hosts[1], driver.MigrateOptions{}, func(p *acliv1.MigrationProgress) { rounds = int(p.Round) })
	if err == nil || !strings.Contains(err.Error(), "failure to converge") || rounds != 50 {
		t.Fatalf("err %v after %d rounds", err, rounds)
	}
	if len(d.Running(hosts[0].Uuid)) != 1 || len(d.Running(hosts[1].Uuid)) != 0 {
		t.Fatal("vm left its source after a failed migration")
	}
	// The same VM at a modest dirty rate converges well within the pause.
	steps, err := PreCopy(8<<30, 100, 10_000)
	if err != nil || steps[len(steps)-1].DowntimeMs > 300 || steps[len(steps)-1].RemainingBytes != 0 {
		t.Fatalf("pre-copy at 100 MiB/s: %v %v", steps, err)
	}
}

// An idle guest (no dirty rate of its own) converges over a 100 Mb/s link,
// as acli's "vm.migrate ... bandwidth_mbps=100 live=yes" does; the sim
// config's idle rate, or the VM's own rate, can make it too busy to.
func TestIdleGuestConvergesAt100Mbps(t *testing.T) {
	for _, c := range []struct {
		idle, own int64
		converges bool
	}{{0, 0, true}, {50, 0, false}, {0, 50, false}, {50, 1, true}} {
		cfg := ForHosts(2)
		cfg.Speed, cfg.IdleDirtyRateMBps = 1e6, c.idle
		d, err := New(cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		inv := d.Inventory()
		vm := &acliv1.Vm{Uuid: "v", Name: "v", MemoryBytes: 4 << 30, DirtyRateMbps: c.own}
		d.Start(ctx, inv.Hosts, []*acliv1.Vm{{Uuid: "v", Name: "v", PowerState: acliv1.PowerState_kOn, HostUuid: inv.Hosts[0].Uuid}})
		var last *acliv1.MigrationProgress
		err = d.Migrate(ctx, vm, inv.Hosts[0], inv.Hosts[1], driver.MigrateOptions{BandwidthMbps: 100}, func(p *acliv1.MigrationProgress) { last = p })
		d.Close()
		if (err == nil) != c.converges {
			t.Errorf("idle %d own %d MiB/s at 100 Mb/s: err %v, want converging %v", c.idle, c.own, err, c.converges)
		}
		want := c.own
		if want == 0 {
			want = cmp.Or(c.idle, DefaultDirtyRateMBps)
		}
		if last == nil || last.DirtyRateBytesPerSec != want<<20 {
			t.Errorf("idle %d own %d: progress %v, want dirty rate %d MiB/s", c.idle, c.own, last, want)
		}
	}
	if _, err := New(Config{Hosts: 2, IdleDirtyRateMBps: -1}, Options{}); err == nil || !strings.Contains(err.Error(), "idle_dirty_rate_mbps -1") {
		t.Errorf("negative idle rate: %v", err)
	}
}
