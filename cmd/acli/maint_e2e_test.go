package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// End-to-end runbooks: the scenario scripts of testdata/scenarios and the
// steps around them that must fail, through the built acli against a
// built clusterd (3 simulated hosts, RF2).

// runClusterd starts clusterd --sim 3 on dir at the given sim speed.
func runClusterd(t *testing.T, dir, speed string) *daemon {
	t.Helper()
	d, err := launchClusterd(t, dir, "--sim", "3", "--sim-speed", speed, "--sim-ssh-port", "0")
	if err != nil {
		t.Fatalf("clusterd exited: %v", err)
	}
	return d
}

// script runs testdata/scenarios/name through acli's stdin; it must succeed.
func script(t *testing.T, addr, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/scenarios", name))
	if err != nil {
		t.Fatal(err)
	}
	r := acli(t, addr, string(b))
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", name, r.code, r.out, r.err)
	}
	return r.out
}

// want runs one-shot acli and checks its exit code and that stdout (or,
// with a non-zero code, stderr) contains every string given.
func want(t *testing.T, addr string, code int, args string, contains ...string) result {
	t.Helper()
	r := acli(t, addr, "", strings.Fields(args)...)
	text := r.out
	if code != 0 {
		text = r.err
	}
	ok := r.code == code
	for _, c := range contains {
		ok = ok && strings.Contains(text, c)
	}
	if !ok {
		t.Fatalf("acli %s: exit %d (want %d), want %q\nstdout:\n%s\nstderr:\n%s", args, r.code, code, contains, r.out, r.err)
	}
	return r
}

type vmJSON struct {
	Name       string `json:"name"`
	HostName   string `json:"host_name"`
	PowerState string `json:"power_state"`
}

type hostJSON struct {
	Name              string `json:"name"`
	NodeState         string `json:"node_state"`
	CvmState          string `json:"cvm_state"`
	Schedulable       bool   `json:"schedulable"`
	NumVms            int    `json:"num_vms"`
	MemoryBytes       int64  `json:"memory_bytes"`
	MemoryUsedBytes   int64  `json:"memory_used_bytes"`
	SchedulableReason string `json:"schedulable_reason"`
}

// placement maps each VM to its host ("off" when not running).
func placement(t *testing.T, addr string) map[string]string {
	t.Helper()
	var vms []vmJSON
	data(t, addr, &vms, "vm.list")
	out := map[string]string{}
	for _, v := range vms {
		out[v.Name] = v.HostName
		if v.PowerState != "kOn" {
			out[v.Name] = "off"
		}
	}
	return out
}

func hostOf(t *testing.T, addr, name string) hostJSON {
	t.Helper()
	// host.list keeps the API's field names (host.get's are acli's).
	var hosts []hostJSON
	data(t, addr, &hosts, "host.list")
	for _, h := range hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no host %s in %+v", name, hosts)
	return hostJSON{}
}

func samePlacement(t *testing.T, got, want map[string]string) {
	t.Helper()
	for vm, h := range want {
		if got[vm] != h {
			t.Fatalf("vm %s on %q, want %q (all: %v)", vm, got[vm], h, got)
		}
	}
}

// The planned-maintenance runbook: check, enter blocked, a second host
// refused, enter with acpi_shutdown, exit, every VM back; then the same
// runbook as the operator's script.
func TestMaintenanceRunbookE2E(t *testing.T) {
	addr := startClusterd(t)
	script(t, addr, "inventory.acli")
	before := placement(t, addr)
	if before["web01"] != "h1" || before["db01"] != "h1" || before["app01"] != "h3" || before["cold01"] != "off" {
		t.Fatalf("inventory: %v", before)
	}

	r := want(t, addr, 5, "host.enter_maintenance_mode_check h1", "Error: host h1 cannot enter maintenance mode: 1 blocker")
	if !strings.HasPrefix(r.out, "Not ok to enter maintenance mode: 1 blocker.\nvm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)\n\nEvacuation plan for h1:\n") ||
		!regexp.MustCompile(`(?m)^web01 +migrate +h[23]\s*$`).MatchString(r.out) || !regexp.MustCompile(`(?m)^agent01 +shutdown +agent VM$`).MatchString(r.out) {
		t.Fatalf("check:\n%s", r.out)
	}
	r = want(t, addr, 0, "host.enter_maintenance_mode_check 127.20.0.21 non_migratable_vm_action=acpi_shutdown", "Ok to enter maintenance mode.\n")
	if !regexp.MustCompile(`(?m)^db01 +shutdown +has host affinity to 127.20.0.21$`).MatchString(r.out) {
		t.Fatalf("check with acpi_shutdown:\n%s", r.out)
	}
	samePlacement(t, placement(t, addr), before)

	// Blocked: what can move moves, then exit 5 with every blocker.
	r = want(t, addr, 5, "host.enter_maintenance_mode h1",
		"Error: EnterMaintenanceMode: host h1 (127.20.0.21) stays EnteringMaintenanceMode: 2 VM(s) cannot leave\n",
		"\n  vm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)\n")
	if h := hostOf(t, addr, "h1"); h.NodeState != "EnteringMaintenanceMode" || h.Schedulable || h.NumVms != 2 {
		t.Fatalf("h1 after the blocked enter: %+v", h)
	}
	// RF2: h1 counts as out already.
	want(t, addr, 5, "host.enter_maintenance_mode h2", "h1 (127.20.0.21) [EnteringMaintenanceMode] is already out")

	r = want(t, addr, 0, "host.enter_maintenance_mode h1 non_migratable_vm_action=acpi_shutdown",
		"host h1 (127.20.0.21) entered maintenance mode: 0 VM(s) migrated, 2 shut down\n")
	if !strings.HasSuffix(r.out, "EnterMaintenanceMode: complete\n") {
		t.Fatalf("enter:\n%s", r.out)
	}
	want(t, addr, 0, "host.enter_maintenance_mode h1", "host h1 (127.20.0.21) is already in maintenance mode\nEnterMaintenanceMode: complete\n")
	mid := placement(t, addr)
	if mid["db01"] != "off" || mid["agent01"] != "off" || mid["web01"] == "h1" || mid["web01"] == "off" {
		t.Fatalf("during maintenance: %v", mid)
	}
	want(t, addr, 5, "host.enter_maintenance_mode h3", "h1 (127.20.0.21) [EnteredMaintenanceMode] is already out")
	want(t, addr, 5, "cvm.enter_maintenance_mode h2", "h1 (127.20.0.21) [EnteredMaintenanceMode] is already out")
	want(t, addr, 0, "host.list", "EnteredMaintenanceMode")

	r = want(t, addr, 0, "host.exit_maintenance_mode h1", "host h1 (127.20.0.21) exited maintenance mode: 4 VM(s) migrated back, 2 powered on\n")
	if !strings.HasSuffix(r.out, "ExitMaintenanceMode: complete\n") {
		t.Fatalf("exit:\n%s", r.out)
	}
	samePlacement(t, placement(t, addr), before)

	// The operator's script: the same runbook, start to end.
	out := script(t, addr, "maintenance.acli")
	for _, s := range []string{"Ok to enter maintenance mode.", "EnterMaintenanceMode: complete", "ExitMaintenanceMode: complete", "EnteredMaintenanceMode"} {
		if !strings.Contains(out, s) {
			t.Fatalf("maintenance.acli output lacks %q:\n%s", s, out)
		}
	}
	samePlacement(t, placement(t, addr), before)
	if h := hostOf(t, addr, "h1"); h.NodeState != "AcropolisNormal" || !h.Schedulable {
		t.Fatalf("h1 after the runbook: %+v", h)
	}
}

var migratingLine = regexp.MustCompile(`(?m)^Migrating vm web01 from (h\d) to (h\d) \(chosen by the scheduler\)\.$`)

// vm.migrate without a host moves the VM every time, and says where.
func TestMigrateE2E(t *testing.T) {
	addr := startClusterd(t)
	script(t, addr, "inventory.acli")
	out := script(t, addr, "migrate.acli")
	for _, s := range []string{"host h3 is not schedulable: planned maintenance", "Migrating vm app01 from h3 to ",
		"Migrating vm web02 from h2 to h3 (as asked).", "vm web02 moved from h2 (127.20.0.22) to h3 (127.20.0.23) (offline)"} {
		if !strings.Contains(out, s) {
			t.Fatalf("migrate.acli output lacks %q:\n%s", s, out)
		}
	}
	if n := len(migratingLine.FindAllString(out, -1)); n != 3 {
		t.Fatalf("%d scheduler moves of web01 in:\n%s", n, out)
	}
	if h := hostOf(t, addr, "h3"); !h.Schedulable || h.SchedulableReason != "" {
		t.Fatalf("h3 after the runbook: %+v", h)
	}
	if p := placement(t, addr); p["app01"] == "h3" || p["app01"] == "off" || p["web02"] != "h3" {
		t.Fatalf("after the runbook: %v", p)
	}
	// Again and again: a different host every time.
	for i := 0; i < 5; i++ {
		from := placement(t, addr)["web01"]
		r := want(t, addr, 0, "vm.migrate web01", "VmMigrate: complete")
		to := placement(t, addr)["web01"]
		m := migratingLine.FindStringSubmatch(r.out)
		if m == nil || m[1] != from || m[2] != to || to == from {
			t.Fatalf("migration %d: %s -> %s\n%s", i, from, to, r.out)
		}
	}
	want(t, addr, 5, "vm.migrate db01", "cannot migrate vm db01: no eligible host",
		"h2 (127.20.0.22): not in the VM's host affinity", "h3 (127.20.0.23): not in the VM's host affinity")
	want(t, addr, 2, "vm.migrate web01 live=false bandwidth_mbps=100", "bandwidth_mbps= applies to live migration only")
}

// Host failure: the host goes down, HA restarts its VMs elsewhere, the
// host returns usable. sim.* exists only on the sim driver.
func TestHostFailureE2E(t *testing.T) {
	addr := startClusterd(t)
	script(t, addr, "inventory.acli")

	// One step at a time first: h3 fails, app01 runs elsewhere.
	want(t, addr, 0, "sim.fail_host h3", "Host h3 (127.20.0.23): node state kNodeDown, CVM state kCvmDown.\n",
		"HA restarted 1 VM(s) of h3 (127.20.0.23)\nHaFailover: complete\n")
	if h := hostOf(t, addr, "h3"); h.NodeState != "kNodeDown" || h.NumVms != 0 {
		t.Fatalf("h3 down: %+v", h)
	}
	if p := placement(t, addr); p["app01"] != "h2" && p["app01"] != "h1" {
		t.Fatalf("app01 after HA: %v", p)
	}
	want(t, addr, 5, "host.enter_maintenance_mode h2", "h3 (127.20.0.23) [kNodeDown, kCvmDown] is already out")
	want(t, addr, 0, "sim.recover_host h3", "Host h3 (127.20.0.23): node state AcropolisNormal, CVM state kCvmUp.\n")
	want(t, addr, 0, "vm.migrate app01 host=h3", "VmMigrate: complete")

	// The operator's script: h1 fails and comes back.
	out := script(t, addr, "ha.acli")
	for _, s := range []string{"Host h1 (127.20.0.21): node state kNodeDown, CVM state kCvmDown.", "HA restarted 4 VM(s) of h1 (127.20.0.21); 2 stay off", "HaFailover: complete"} {
		if !strings.Contains(out, s) {
			t.Fatalf("ha.acli output lacks %q:\n%s", s, out)
		}
	}
	var tasks []struct {
		Operation string   `json:"operation"`
		Status    string   `json:"status"`
		Messages  []string `json:"messages"`
	}
	data(t, addr, &tasks, "task.list", "include_completed=true", "entity=h1", "limit=100")
	var ha []string
	for _, k := range tasks {
		if k.Operation == "kHaFailover" && k.Status == "kSucceeded" {
			ha = k.Messages
			break
		}
	}
	if !strings.Contains(strings.Join(ha, "\n"), "vm web02 restarted on") || !strings.Contains(strings.Join(ha, "\n"), "not restarted: agent VM stays with its host") {
		t.Fatalf("HA task messages: %q", ha)
	}
	p := placement(t, addr)
	if p["db01"] != "h1" || p["agent01"] != "h1" || p["web01"] != "h1" {
		t.Fatalf("after the recovery: %v", p)
	}
	for _, vm := range []string{"web02", "web03", "web04"} {
		if p[vm] != "h2" && p[vm] != "h3" {
			t.Fatalf("vm %s after HA: %v", vm, p)
		}
	}
	if h := hostOf(t, addr, "h1"); h.NodeState != "AcropolisNormal" || !h.Schedulable {
		t.Fatalf("h1 after the recovery: %+v", h)
	}
}

// Against a clusterd without the sim driver, sim.* says so in one line.
func TestSimNeedsSimDriverE2E(t *testing.T) {
	addr := startClusterdWith(t, "--driver", "libvirt") // no hosts needed
	for _, c := range []string{"sim.fail_host", "sim.recover_host", "sim.fail_cvm", "sim.recover_cvm"} {
		r := acli(t, addr, "", c, "h1")
		if r.code != 5 || r.err != "Error: "+c+": fault injection needs the sim driver; this clusterd runs the libvirt driver\n" {
			t.Fatalf("%s: exit %d %q", c, r.code, r.err)
		}
	}
}

// SIGKILL during an evacuation: the restarted clusterd resumes the task
// (the VMs still on the host planned again) and finishes it; every VM runs
// on exactly one host.
func TestKillMidEvacuationE2E(t *testing.T) {
	dir := t.TempDir()
	d := runClusterd(t, dir, "20") // a 16 GiB live migration takes about 0.7 s
	if r := acli(t, d.addr, "vm.create m[1..8] memory=16G\nvm.on m* host=h1\n"); r.code != 0 {
		t.Fatalf("inventory: %+v", r)
	}
	r := want(t, d.addr, 0, "host.enter_maintenance_mode h1 wait=false")
	task := strings.TrimSpace(r.out)
	// Conflicts are refused, not queued: the same host again, and a
	// second host while h1 is going out.
	want(t, d.addr, 5, "host.enter_maintenance_mode h1", "host h1 is busy with task "+task)
	want(t, d.addr, 5, "host.enter_maintenance_mode h2", "h1 (127.20.0.21)")
	deadline := time.Now().Add(30 * time.Second)
	for hostOf(t, d.addr, "h1").NumVms > 6 {
		if time.Now().After(deadline) {
			t.Fatal("no VM left h1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill(t)

	d = runClusterd(t, dir, "1000")
	want(t, d.addr, 0, "task.wait "+task, "EnterMaintenanceMode: complete")
	if h := hostOf(t, d.addr, "h1"); h.NodeState != "EnteredMaintenanceMode" || h.NumVms != 0 {
		t.Fatalf("h1 after the resumed evacuation: %+v", h)
	}
	want(t, d.addr, 0, "task.get "+task, "resumed by a new leader")
	checkOneHostEach(t, d.addr, 8)
	want(t, d.addr, 0, "host.exit_maintenance_mode h1", "host h1 (127.20.0.21) exited maintenance mode")
	for vm, h := range placement(t, d.addr) {
		if h != "h1" {
			t.Fatalf("vm %s on %s after exit", vm, h)
		}
	}
}

// checkOneHostEach: n VMs running, each recorded on one host, and the
// hosts' counts and memory agree with that.
func checkOneHostEach(t *testing.T, addr string, n int) {
	t.Helper()
	p := placement(t, addr)
	perHost := map[string]int{}
	for vm, h := range p {
		if h == "" || h == "off" {
			t.Fatalf("vm %s is not running on a host: %v", vm, p)
		}
		perHost[h]++
	}
	if len(p) != n {
		t.Fatalf("%d VMs, want %d", len(p), n)
	}
	var hosts []hostJSON
	data(t, addr, &hosts, "host.list")
	total := 0
	for _, h := range hosts {
		total += h.NumVms
		if h.NumVms != perHost[h.Name] {
			t.Fatalf("host %s counts %d VMs, the VMs say %d", h.Name, h.NumVms, perHost[h.Name])
		}
		if h.MemoryUsedBytes > h.MemoryBytes {
			t.Fatalf("host %s over-committed: %d > %d", h.Name, h.MemoryUsedBytes, h.MemoryBytes)
		}
	}
	if total != n {
		t.Fatalf("hosts count %d VMs, want %d", total, n)
	}
}
