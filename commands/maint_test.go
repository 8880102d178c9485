package commands

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/managertest"
	"google.golang.org/grpc/codes"
)

func TestParseMaintenanceKeys(t *testing.T) {
	reg := Default()
	nm := func(want acliv1.NonMigratableVmAction) func(*Invocation) bool {
		return func(i *Invocation) bool { return i.Values["non_migratable_vm_action"].Int == int64(want) }
	}
	ok := []struct {
		line  string
		check func(*Invocation) bool
	}{
		{"host.enter_maintenance_mode h1", nm(acliv1.NonMigratableVmAction_kBlock)},
		{"host.enter_maintenance_mode h1 non_migratable_vm_action=acpi_shutdown", nm(acliv1.NonMigratableVmAction_kAcpiShutdown)},
		{"host.enter_maintenance_mode h1 non_migratable_vm_action=kAcpiShutdown", nm(acliv1.NonMigratableVmAction_kAcpiShutdown)},
		{"host.enter_maintenance_mode h1 non_migratable_vm_action=AcpiShutdown", nm(acliv1.NonMigratableVmAction_kAcpiShutdown)},
		{"host.enter_maintenance_mode h1 non_migratable_vm_action=shutdown", nm(acliv1.NonMigratableVmAction_kAcpiShutdown)},
		{"host.enter_maintenance_mode h1 non_migratable_vm_action=BLOCK", nm(acliv1.NonMigratableVmAction_kBlock)},
		{"host.enter_maintenance_mode_check 127.20.0.21 non_migratable_vm_action=kBlock", nm(acliv1.NonMigratableVmAction_kBlock)},
		{"host.enter_maintenance_mode h1 wait=false timeout=600 max_concurrent_migrations=1", func(i *Invocation) bool {
			return !i.Values["wait"].Bool && i.Values["timeout"].Int == 600 && i.Values["max_concurrent_migrations"].Int == 1
		}},
		{"host.exit_maintenance_mode h1", func(i *Invocation) bool { return i.Args[0][0] == "h1" && i.Values["wait"].Bool }},
		{"host.update h1,h2 schedulable=no reason=disk", func(i *Invocation) bool {
			return !i.Values["schedulable"].Bool && i.Values["reason"].Raw == "disk" && len(i.Args[0]) == 2
		}},
		{"host.update h1 schedulable=yes", func(i *Invocation) bool { return i.Values["schedulable"].Bool }},
		{"cvm.enter_maintenance_mode h2", func(i *Invocation) bool { return i.Args[0][0] == "h2" }},
		{"vm.migrate web01", func(i *Invocation) bool { return !i.Set["host"] && i.Values["live"].Bool }},
		{"vm.migrate a,b c host=h2 live=no", func(i *Invocation) bool {
			return strings.Join(i.Args[0], " ") == "a b c" && i.Values["host"].Raw == "h2" && !i.Values["live"].Bool
		}},
		{"vm.migrate db01 bandwidth_mbps=2000", func(i *Invocation) bool { return i.Values["bandwidth_mbps"].Int == 2000 }},
		{"vm.affinity_set db01 host_list=h1,127.20.0.22", func(i *Invocation) bool {
			return strings.Join(i.Values["host_list"].List, " ") == "h1 127.20.0.22"
		}},
		{"vm.affinity_unset db01", nil},
		{"vm_group.create g[1..3]", func(i *Invocation) bool { return i.Args[0][0] == "g[1..3]" }},
		{"vm_group.add_vms g vm_list=web*,db01", func(i *Invocation) bool { return len(i.Values["vm_list"].List) == 2 }},
		{"vm_group.antiaffinity_set g1,g2", func(i *Invocation) bool { return len(i.Args[0]) == 2 }},
		{"sim.fail_host h1 wait=false", func(i *Invocation) bool { return !i.Values["wait"].Bool }},
		{"sim.recover_cvm 127.20.0.21", nil},
	}
	for _, c := range ok {
		inv, err := reg.Parse(strings.Fields(c.line))
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if c.check != nil && !c.check(inv) {
			t.Errorf("%s: parsed wrong: %+v %v", c.line, inv.Values, inv.Args)
		}
	}
	bad := []struct{ line, want string }{
		{"host.enter_maintenance_mode h1 non_migratable_vm_action=acpi_shutdwn", `non_migratable_vm_action="acpi_shutdwn" is not valid; did you mean "acpi_shutdown"? (valid: kBlock, kAcpiShutdown)`},
		{"host.enter_maintenance_mode h1 timeout=-1", "timeout=-1 is out of range (0 to 604800)"},
		{"host.enter_maintenance_mode h1 max_concurrent_migrations=0", "max_concurrent_migrations=0 is out of range (1 to 64)"},
		{"host.enter_maintenance_mode h1,h2", `host.enter_maintenance_mode takes one host, got "h1,h2"`},
		{"host.enter_maintenance_mode h*", `patterns like "h*" are not allowed here`},
		{"host.enter_maintenance_mode", "host.enter_maintenance_mode: missing host"},
		{"host.enter_maintenance_mode_check h1 wait=false", `unknown key "wait"`},
		{"host.enter_maintenance_mod h1", `did you mean "host.enter_maintenance_mode" or "host.enter_maintenance_mode_check"?`},
		{"host.update h1", "host.update: missing required key schedulable=<bool>"},
		{"host.update h1 schedulable=true reason=x", "reason= is recorded only with schedulable=false"},
		{"vm.migrate web01 live=false bandwidth_mbps=100", "bandwidth_mbps= applies to live migration only"},
		{"vm.migrate web01 bandwidth_mbps=0", "bandwidth_mbps=0 is out of range"},
		{"vm.migrate web01 hots=h2", `unknown key "hots"; did you mean "host"?`},
		{"vm.affinity_set db01", "missing required key host_list=<list>, e.g. host_list=h1,h2"},
		{"vm_group.add_vms g", "missing required key vm_list=<list>"},
		{"vm_group.add_vms g1,g2 vm_list=a", `vm_group.add_vms takes one group, got "g1,g2"`},
		{"vm_group.antiaffinity_set", "vm_group.antiaffinity_set: missing group"},
		{"cvm.enter_maintenance_mode", "cvm.enter_maintenance_mode: missing host"},
		{"sim.fail_hots h1", `did you mean "sim.fail_host"?`},
	}
	for _, c := range bad {
		_, err := reg.Parse(strings.Fields(c.line))
		if err == nil || !strings.Contains(err.Error(), c.want) || client.ExitCode(err) != client.ExitUsage {
			t.Errorf("%s: got %v (exit %d), want usage error containing %q", c.line, err, client.ExitCode(err), c.want)
		}
	}
}

// mh runs acli lines in-process against a real manager.
type mh struct {
	t   *testing.T
	h   *managertest.Harness
	c   *client.Client
	tty bool
}

func newMH(t *testing.T, opts managertest.Options) *mh {
	h := managertest.New(t, opts)
	return &mh{t: t, h: h, c: client.New(h.Conn)}
}

func (m *mh) run(args ...string) (int, string, string) {
	m.t.Helper()
	return (&harness{t: m.t, c: m.c, tty: m.tty}).run(args...)
}

// must runs a line that has to succeed and returns its stdout.
func (m *mh) must(line string) string {
	m.t.Helper()
	code, out, errOut := m.run(strings.Fields(line)...)
	if code != 0 {
		m.t.Fatalf("%s: exit %d\n%s%s", line, code, out, errOut)
	}
	return out
}

// expect runs a line and compares its exit code, stdout without the
// percent lines of running tasks (their rounds and timing vary), and
// stderr exactly.
func (m *mh) expect(line string, code int, out, errOut string) {
	m.t.Helper()
	gc, gout, gerr := m.run(strings.Fields(line)...)
	if gc != code || stable(gout) != out || gerr != errOut {
		m.t.Errorf("%s:\nexit %d (want %d)\n--- stdout ---\n%s--- want ---\n%s--- stderr ---\n%s--- want ---\n%s",
			line, gc, code, stable(gout), out, gerr, errOut)
	}
}

var percentLine = regexp.MustCompile(`(?m)^[A-Za-z]+( \S+)?: \d+%.*\n`)

func stable(out string) string { return percentLine.ReplaceAllString(out, "") }

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// scrub replaces UUIDs with a placeholder of the same width, so tables
// keep their layout in golden files.
func scrub(s string) string {
	return uuidRE.ReplaceAllString(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
}

// runbookCluster is the maintenance runbook's cluster: four web servers,
// a database tied to h1 and an agent VM on h1, a stopped VM, and one VM
// on h3.
func runbookCluster(t *testing.T) *mh {
	m := newMH(t, managertest.Options{Hosts: 3})
	for _, line := range []string{
		"vm.create web[1..4] memory=8G num_vcpus=2",
		"vm.create db01 memory=16G num_vcpus=4 ha_priority=100",
		"vm.create nsx-agent memory=2G agent_vm=true",
		"vm.create cold memory=1G",
		"vm.create elsewhere memory=4G",
		"vm.on web1,web2,web3,web4,db01,nsx-agent host=h1",
		"vm.on elsewhere host=h3",
		"vm.affinity_set db01 host_list=h1",
	} {
		m.must(line)
	}
	return m
}

// vmHosts maps VM names to their host names (empty when off).
func (m *mh) vmHosts() map[string]string {
	m.t.Helper()
	resp, err := m.c.Vm.ListVms(context.Background(), &acliv1.ListVmsRequest{})
	if err != nil {
		m.t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range resp.GetVms() {
		out[v.GetName()] = v.GetHostName()
		if v.GetPowerState() != acliv1.PowerState_kOn {
			out[v.GetName()] = "off"
		}
	}
	return out
}

func (m *mh) hostState(name string) *acliv1.Host {
	m.t.Helper()
	h, err := m.c.Host.GetHost(context.Background(), &acliv1.GetHostRequest{Host: name})
	if err != nil {
		m.t.Fatal(err)
	}
	return h
}

// The planned-maintenance runbook through the commands: check (blocked
// and ok), enter (blocked, then acpi_shutdown), again, a second host and a
// CVM refused, exit, and every VM back where it was.
func TestMaintenanceRunbookCommands(t *testing.T) {
	m := runbookCluster(t)
	before := m.vmHosts()

	for _, tty := range []bool{true, false} {
		m.tty = tty
		mode := map[bool]string{true: "tty", false: "pipe"}[tty]
		code, out, errOut := m.run("host.enter_maintenance_mode_check", "h1")
		if code != 5 || errOut != "Error: host h1 cannot enter maintenance mode: 1 blocker\n" {
			t.Fatalf("blocked check: exit %d\n%s%s", code, out, errOut)
		}
		golden(t, mode+"/host.enter_maintenance_mode_check.blocked.txt", out)
		code, out, errOut = m.run("host.enter_maintenance_mode_check", "127.20.0.21", "non_migratable_vm_action=acpi_shutdown")
		if code != 0 || errOut != "" {
			t.Fatalf("ok check: exit %d\n%s%s", code, out, errOut)
		}
		golden(t, mode+"/host.enter_maintenance_mode_check.ok.txt", out)
	}
	m.tty = false
	m.expect("host.enter_maintenance_mode_check h1", 5, `Not ok to enter maintenance mode: 1 blocker.
vm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)

Evacuation plan for h1:
VM name    Action    Target host  Reason
web1       migrate   h2
web2       migrate   h3
web3       migrate   h2
web4       migrate   h3
nsx-agent  shutdown               agent VM
db01       blocked                has host affinity to 127.20.0.21
`, "Error: host h1 cannot enter maintenance mode: 1 blocker\n")

	// -o json: the whole check, with the verdict.
	code, out, _ := m.run("-o", "json", "host.enter_maintenance_mode_check", "h1")
	e := decodeEnvelope(t, out)
	var chk struct {
		Ok       bool `json:"ok"`
		Blockers []struct {
			Reason, Override string
		} `json:"blockers"`
		Plan []struct {
			Action     string `json:"action"`
			TargetHost *struct {
				Name string `json:"name"`
			} `json:"target_host"`
		} `json:"plan"`
	}
	if err := json.Unmarshal(e.Data, &chk); err != nil {
		t.Fatal(err)
	}
	if code != 5 || e.Status != 5 || e.Error == nil || chk.Ok || len(chk.Blockers) != 1 ||
		chk.Blockers[0].Override != "non_migratable_vm_action=acpi_shutdown or mode=power_off" || len(chk.Plan) != 6 || chk.Plan[0].TargetHost.Name != "h2" {
		t.Fatalf("json check: exit %d %+v %+v", code, e, chk)
	}
	if got := m.vmHosts(); !equalMaps(got, before) || m.hostState("h1").GetNodeState() != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("the check changed something: %v", got)
	}

	// Blocked: the migratable VMs leave, the host stays entering, exit 5
	// listing every VM still there: on a terminal, then again (nothing
	// left to move, the same blockers) in a pipe.
	failed := "EnterMaintenanceMode: failed: host h1 (127.20.0.21) stays EnteringMaintenanceMode: 2 VM(s) cannot leave: " +
		"vm nsx-agent (agent VM) is shut down only once every other VM can leave; " +
		"vm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)\n"
	blockers := "Error: EnterMaintenanceMode: host h1 (127.20.0.21) stays EnteringMaintenanceMode: 2 VM(s) cannot leave\n" +
		"  vm nsx-agent (agent VM) is shut down only once every other VM can leave\n" +
		"  vm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)\n"
	m.tty = true
	code, out, errOut := m.run("host.enter_maintenance_mode", "h1")
	// The progress line is redrawn in place (its steps race the moves);
	// its last state is the verdict.
	if i := strings.LastIndex(out, "\x1b[K"); code != 5 || i < 0 || out[i+3:] != failed || errOut != blockers {
		t.Fatalf("blocked enter on a terminal: exit %d\n%q\n%s", code, out, errOut)
	}
	m.tty = false
	m.expect("host.enter_maintenance_mode h1", 5, "EnterMaintenanceMode: pending\n"+failed, blockers)
	if h := m.hostState("h1"); h.GetNodeState() != acliv1.NodeState_EnteringMaintenanceMode || h.GetSchedulable() {
		t.Fatalf("h1 after the blocked enter: %v", h)
	}
	if got := m.vmHosts(); got["web1"] == "h1" || got["db01"] != "h1" || got["nsx-agent"] != "h1" {
		t.Fatalf("after the blocked enter: %v", got)
	}

	// acpi_shutdown: the rest is shut down, the host is in maintenance.
	m.expect("host.enter_maintenance_mode h1 non_migratable_vm_action=acpi_shutdown", 0,
		"EnterMaintenanceMode: pending\nhost h1 (127.20.0.21) entered maintenance mode: 0 VM(s) migrated, 2 shut down\nEnterMaintenanceMode: complete\n", "")
	m.expect("host.enter_maintenance_mode h1", 0,
		"EnterMaintenanceMode: pending\nhost h1 (127.20.0.21) is already in maintenance mode\nEnterMaintenanceMode: complete\n", "")
	m.expect("host.enter_maintenance_mode_check h1", 0,
		"Ok to enter maintenance mode.\nHost h1 is already in maintenance mode; entering again changes nothing.\n", "")

	// RF2: no second host, no CVM, while h1 is out.
	m.expect("host.enter_maintenance_mode h2", 5, "",
		"Error: host h2 (127.20.0.22) cannot enter maintenance mode: cannot take out h2 (127.20.0.22): redundancy factor 2 allows 1 host out at a time and h1 (127.20.0.21) [EnteredMaintenanceMode] is already out\n")
	m.expect("cvm.enter_maintenance_mode h3", 5, "",
		"Error: cvm 127.20.0.33 of host h3 (127.20.0.23) cannot enter maintenance mode: cannot take out the CVM of h3 (127.20.0.23): redundancy factor 2 allows 1 host out at a time and h1 (127.20.0.21) [EnteredMaintenanceMode] is already out\n")
	if out := m.must("--no-headers -o csv -c name,node_state,schedulable,schedulable_reason host.list"); !strings.Contains(out, "h1,EnteredMaintenanceMode,false,host is in maintenance mode\n") {
		t.Fatalf("host.list:\n%s", out)
	}

	// Exit: every VM back on its original host, the shut-down ones on again.
	m.expect("host.exit_maintenance_mode h1", 0,
		"ExitMaintenanceMode: pending\nhost h1 (127.20.0.21) exited maintenance mode: 4 VM(s) migrated back, 2 powered on\nExitMaintenanceMode: complete\n", "")
	if got := m.vmHosts(); !equalMaps(got, before) {
		t.Fatalf("after exit: %v, want %v", got, before)
	}
	if h := m.hostState("h1"); h.GetNodeState() != acliv1.NodeState_AcropolisNormal || !h.GetSchedulable() {
		t.Fatalf("h1 after exit: %v", h)
	}
	m.expect("host.exit_maintenance_mode h1", 0,
		"ExitMaintenanceMode: pending\nhost h1 (127.20.0.21) is not in maintenance mode\nExitMaintenanceMode: complete\n", "")

	// CVM maintenance on its own, and back.
	m.expect("cvm.enter_maintenance_mode h2", 0,
		"CvmEnterMaintenanceMode: pending\ncvm 127.20.0.32 of host h2 (127.20.0.22) entered maintenance mode\nCvmEnterMaintenanceMode: complete\n", "")
	m.expect("host.enter_maintenance_mode h1", 5, "",
		"Error: host h1 (127.20.0.21) cannot enter maintenance mode: cannot take out h1 (127.20.0.21): redundancy factor 2 allows 1 host out at a time and h2 (127.20.0.22) [kCvmMaintenance] is already out\n")
	m.expect("cvm.exit_maintenance_mode h2", 0,
		"CvmExitMaintenanceMode: pending\ncvm 127.20.0.32 of host h2 (127.20.0.22) exited maintenance mode\nCvmExitMaintenanceMode: complete\n", "")
	m.expect("host.enter_maintenance_mode nosuch", 3, "Unknown name: nosuch\n", "Error: host \"nosuch\" not found\n")
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// vm.migrate moves the VM every time: to the named host, or to the
// scheduler's choice; with nowhere to go it lists every candidate.
func TestMigrateCommands(t *testing.T) {
	m := runbookCluster(t)
	m.expect("vm.migrate web1", 0, "VmMigrate: pending\nMigrating vm web1 from h1 to h2 (chosen by the scheduler).\n"+
		"vm web1 migrated from h1 (127.20.0.21) to h2 (127.20.0.22) in 1 round(s), downtime 11 ms\nVmMigrate: complete\n", "")
	for i := 0; i < 4; i++ {
		from := m.vmHosts()["web1"]
		code, out, errOut := m.run("vm.migrate", "web1")
		if to := m.vmHosts()["web1"]; code != 0 || to == from || !strings.Contains(out, "Migrating vm web1 from "+from+" to "+to+" (chosen by the scheduler).\n") {
			t.Fatalf("migration %d: exit %d, %s -> %s\n%s%s", i, code, from, to, out, errOut)
		}
	}
	m.expect("vm.migrate web2 host=h3 bandwidth_mbps=20000", 0, "VmMigrate: pending\nMigrating vm web2 from h1 to h3 (as asked).\n"+
		"vm web2 migrated from h1 (127.20.0.21) to h3 (127.20.0.23) in 1 round(s), downtime 2 ms\nVmMigrate: complete\n", "")
	m.expect("vm.migrate web2 host=h1 live=false", 0, "VmMigrate: pending\nMigrating vm web2 from h3 to h1 (as asked).\n"+
		"vm web2 moved from h3 (127.20.0.23) to h1 (127.20.0.21) (offline)\nVmMigrate: complete\n", "")
	m.expect("vm.migrate db01", 5, "", "Error: cannot migrate vm db01: no eligible host: h1 (127.20.0.21): current host; "+
		"h2 (127.20.0.22): not in the VM's host affinity; h3 (127.20.0.23): not in the VM's host affinity\n")
	m.expect("vm.migrate web2 host=h1", 5, "", "Error: vm web2 is already on h1 (127.20.0.21); name another host or omit host= to let the scheduler choose\n")
	m.expect("vm.migrate nsx-agent", 5, "", "Error: vm nsx-agent is an agent VM and stays on its host\n")
	m.expect("vm.migrate cold", 5, "", "Error: vm cold is off and has no host to move from; power it on (vm.on cold host=...) instead\n")
	m.expect("vm.migrate nosuch", 3, "Unknown name: nosuch\n", "Error: vm \"nosuch\" not found\n")

	// Affinity: set, refused outside it, unset.
	m.expect("vm.affinity_unset db01", 0, "VmSetAffinity: pending\nvm db01 host affinity cleared\nVmSetAffinity: complete\n", "")
	m.expect("vm.affinity_set web3 host_list=h2,h3", 5, "",
		"Error: vm web3 runs on h1 (127.20.0.21), outside the new host affinity; migrate it first (vm.migrate web3 host=h2)\n")
	m.expect("vm.affinity_set web3 host_list=127.20.0.22,h1", 0, "VmSetAffinity: pending\nvm web3 host affinity set to h1 (127.20.0.21), h2 (127.20.0.22)\nVmSetAffinity: complete\n", "")
	m.expect("vm.migrate web3 host=h3", 5, "", "Error: cannot move vm web3 to h3 (127.20.0.23): not in the VM's host affinity\n")
	m.expect("vm.affinity_set web3 host_list=h9", 3, "Unknown name: h9\n", "Error: host \"h9\" not found (did you mean \"h1\"?)\n")

	// An unschedulable host takes no migrations; host.list shows why.
	m.expect(`host.update h3 schedulable=false`, 0, "HostUpdate: pending\nhost h3 is not schedulable\nHostUpdate: complete\n", "")
	code, out, errOut := m.run("host.update", "h2", "schedulable=false", "reason=disk replacement")
	if code != 0 || out != "HostUpdate: pending\nhost h2 is not schedulable: disk replacement\nHostUpdate: complete\n" || errOut != "" {
		t.Fatalf("host.update: %d %q %q", code, out, errOut)
	}
	if out := m.must("--no-headers -o csv -c name,schedulable,schedulable_reason host.list"); !strings.Contains(out, "h2,false,disk replacement\n") {
		t.Fatalf("host.list:\n%s", out)
	}
	m.expect("vm.migrate web4", 5, "", "Error: cannot migrate vm web4: no eligible host: h1 (127.20.0.21): current host; h2 (127.20.0.22): not schedulable (disk replacement); h3 (127.20.0.23): not schedulable\n")
	m.expect("host.update h3 schedulable=true", 0, "HostUpdate: pending\nhost h3 is schedulable\nHostUpdate: complete\n", "")
	m.expect("host.update h2 schedulable=yes", 0, "HostUpdate: pending\nhost h2 is schedulable\nHostUpdate: complete\n", "")
	m.must("vm.migrate web4")
}

// VM groups: the tables and blocks, and the anti-affinity rule.
func TestVMGroupCommands(t *testing.T) {
	m := runbookCluster(t)
	m.expect("vm_group.list", 0, "VM group name  VM group UUID  Anti-affinity  VMs  Members\n", "")
	m.expect("vm_group.create web-tier", 0, "VmGroupCreate: pending\nvm group web-tier created\nVmGroupCreate: complete\n", "")
	if code, _, errOut := m.run("vm_group.create", "web-tier"); code != 5 || !strings.HasPrefix(errOut, "Error: vm_group web-tier already exists: vm group names are unique (uuid ") {
		t.Fatalf("duplicate group: %d %s", code, errOut)
	}
	m.expect("vm_group.add_vms web-tier vm_list=web*", 0, "VmGroupUpdate: pending\nvm group web-tier: added web1, added web2, added web3, added web4\nVmGroupUpdate: complete\n", "")
	m.expect("vm_group.remove_vms web-tier vm_list=web4", 0, "VmGroupUpdate: pending\nvm group web-tier: removed web4\nVmGroupUpdate: complete\n", "")
	m.expect("vm_group.remove_vms web-tier vm_list=web4", 5, "", "Error: vm web4 is not a member of vm group web-tier\n")
	m.expect("vm_group.add_vms web-tier vm_list=zz*", 3, "", "Error: no VM matches \"zz*\"\n")
	m.expect("vm_group.antiaffinity_set web*", 0, "VmGroupUpdate: pending\nvm group web-tier: anti-affinity set\nVmGroupUpdate: complete\n", "")
	// acli's line for a missing name, on stdout as for every get.
	m.expect("vm_group.get web-tir", 3, "Unknown name: web-tir\n", "Error: VM group \"web-tir\" not found; did you mean \"web-tier\"?\n")
	for _, tty := range []bool{true, false} {
		m.tty = tty
		mode := map[bool]string{true: "tty", false: "pipe"}[tty]
		for _, line := range []string{"vm_group.list", "vm_group.get web-tier", "vm_group.list_vms web-tier"} {
			golden(t, mode+"/"+strings.Fields(line)[0]+".txt", scrub(m.must(line)))
		}
		golden(t, mode+"/vm_group.get.block.txt", scrub(m.must("-o block vm_group.get web-tier")))
		// A quick task's result line stays above its closing line.
		code, out, _ := m.run("vm_group.antiaffinity_set", "web-tier")
		golden(t, mode+"/vm_group.antiaffinity_set.txt", out)
		if code != 0 {
			t.Fatal(code)
		}
	}
	m.tty = false
	// The rule is honoured by the plan: without it web1 and web3 would
	// both go to h2 (see the check's golden plan).
	m.must("vm_group.create pair")
	m.must("vm_group.add_vms pair vm_list=web1,web3")
	m.must("vm_group.antiaffinity_set pair")
	_, out, _ := m.run("-o", "json", "host.enter_maintenance_mode_check", "h1", "non_migratable_vm_action=acpi_shutdown")
	var chk struct {
		Plan []struct {
			Vm         struct{ Name string }
			TargetHost *struct{ Name string } `json:"target_host"`
		}
	}
	if err := json.Unmarshal(decodeEnvelope(t, out).Data, &chk); err != nil {
		t.Fatal(err)
	}
	target := map[string]string{}
	for _, st := range chk.Plan {
		if st.TargetHost != nil {
			target[st.Vm.Name] = st.TargetHost.Name
		}
	}
	if target["web1"] == "" || target["web1"] == target["web3"] {
		t.Fatalf("anti-affinity ignored by the plan: %v", target)
	}
	m.must("-y vm_group.delete pair")
	m.expect("vm_group.antiaffinity_unset web-tier", 0, "VmGroupUpdate: pending\nvm group web-tier: anti-affinity unset\nVmGroupUpdate: complete\n", "")
	m.expect("vm_group.delete web-tier", 2, "", "Error: vm_group.delete needs confirmation (Delete VM group web-tier?); pass -y or answer yes on stdin; nothing changed\n")
	m.expect("-y vm_group.delete web-tier", 0, "VmGroupDelete: pending\nvm group web-tier deleted\nVmGroupDelete: complete\n", "")
	if got := m.vmHosts(); got["web1"] != "h1" {
		t.Fatalf("deleting a group must keep its VMs: %v", got)
	}
}

// Host failure through sim.*: the host goes down, HA restarts its VMs
// elsewhere, the host comes back usable.
func TestSimCommands(t *testing.T) {
	m := runbookCluster(t)
	m.expect("sim.fail_host h3", 0, "Host h3 (127.20.0.23): node state kNodeDown, CVM state kCvmDown.\nHaFailover: pending\n"+
		"HA restarted 1 VM(s) of h3 (127.20.0.23)\nHaFailover: complete\n", "")
	if got := m.vmHosts(); got["elsewhere"] == "h3" || got["elsewhere"] == "off" {
		t.Fatalf("HA: %v", got)
	}
	m.expect("sim.fail_host h3", 0, "Host h3 (127.20.0.23): node state kNodeDown, CVM state kCvmDown. It was already down.\n", "")
	m.expect("host.enter_maintenance_mode h2", 5, "",
		"Error: host h2 (127.20.0.22) cannot enter maintenance mode: cannot take out h2 (127.20.0.22): redundancy factor 2 allows 1 host out at a time and h3 (127.20.0.23) [kNodeDown, kCvmDown] is already out\n")
	m.expect("sim.recover_host h3", 0, "Host h3 (127.20.0.23): node state AcropolisNormal, CVM state kCvmUp.\n", "")
	m.must("vm.migrate elsewhere host=h3")
	m.expect("sim.fail_cvm h2", 0, "Host h2 (127.20.0.22): node state AcropolisNormal, CVM state kCvmDown.\n", "")
	m.expect("sim.recover_cvm h2", 0, "Host h2 (127.20.0.22): node state AcropolisNormal, CVM state kCvmUp.\n", "")
	code, out, _ := m.run("-o", "json", "sim.fail_host", "h2")
	e := decodeEnvelope(t, out)
	var data struct {
		Host struct {
			NodeState string `json:"node_state"`
		} `json:"host"`
		HaTask struct {
			Operation string `json:"operation"`
			Status    string `json:"status"`
		} `json:"ha_task"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil || code != 0 || data.Host.NodeState != "kNodeDown" ||
		data.HaTask.Operation != "kHaFailover" || data.HaTask.Status != "kSucceeded" {
		t.Fatalf("json: %d %v %s", code, err, out)
	}
}

// A cluster on another driver refuses sim.* with one line and exit 5.
func TestSimCommandsNeedSimDriver(t *testing.T) {
	m := newMH(t, managertest.Options{Hosts: 3, Manager: func(c *manager.Config) { c.Driver = otherDriver{c.Driver} }})
	for _, cmd := range []string{"sim.fail_host", "sim.recover_host", "sim.fail_cvm", "sim.recover_cvm"} {
		m.expect(cmd+" h1", 5, "", "Error: "+cmd+": fault injection needs the sim driver; this clusterd runs the libvirt driver\n")
	}
	if h := m.hostState("h1"); h.GetNodeState() != acliv1.NodeState_AcropolisNormal || h.GetCvmState() != acliv1.CvmState_kCvmUp {
		t.Fatalf("h1 changed: %v", h)
	}
}

// otherDriver hides the sim driver's fault injection and name.
type otherDriver struct{ driver.Driver }

func (otherDriver) Name() string { return "libvirt" }

// blockersErr reads the task's typed record: its headline and every
// violation, whatever the error text says or how many it lists.
func TestBlockersErrReadsTheTypedRecord(t *testing.T) {
	v := func(typ, desc string) *acliv1.Violation {
		return &acliv1.Violation{Type: typ, Description: desc}
	}
	task := &acliv1.Task{
		Operation:    acliv1.TaskOperation_kHostEnterMaintenanceMode,
		ErrorCode:    int32(codes.FailedPrecondition),
		Error:        "text that names no blocker; and 3 more",
		ErrorSummary: "host h1 (127.20.0.21) stays EnteringMaintenanceMode: 2 VM(s) cannot leave",
		Violations: []*acliv1.Violation{
			v("BLOCKED", "vm db01 has host affinity to 127.20.0.21"),
			v("HOST_BUSY", "h1 is held by running task 5 (VmMigrate)"),
			v("MIGRATION_TARGET", "h1 receives vm web2"),
			v("REDUNDANCY", "h2 is already out"),
			v("BLOCKED", "vm nsx-agent (agent VM) is shut down only once every other VM can leave"),
		},
	}
	got := blockersErr(task, client.TaskError("EnterMaintenanceMode", task))
	want := &client.Error{Code: 5, Msg: "EnterMaintenanceMode: host h1 (127.20.0.21) stays EnteringMaintenanceMode: 2 VM(s) cannot leave",
		Details: []string{"vm db01 has host affinity to 127.20.0.21", "h1 is held by running task 5 (VmMigrate)",
			"h1 receives vm web2", "h2 is already out", "vm nsx-agent (agent VM) is shut down only once every other VM can leave"}}
	if got.Code != want.Code || got.Msg != want.Msg || !slices.Equal(got.Details, want.Details) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	// One blocker and no headline: the blocker is the message.
	task.ErrorSummary, task.Error, task.Violations = "", "h2 is already out", task.Violations[3:4]
	got = blockersErr(task, client.TaskError("EnterMaintenanceMode", task))
	if got.Msg != "EnterMaintenanceMode: h2 is already out" || len(got.Details) != 0 {
		t.Fatalf("got %+v", got)
	}

	// Not a precondition: the error as it is.
	task.ErrorCode, task.Error = int32(codes.Internal), "driver lost"
	if got = blockersErr(task, client.TaskError("EnterMaintenanceMode", task)); got.Msg != "EnterMaintenanceMode: driver lost" || got.Code != 1 {
		t.Fatalf("got %+v", got)
	}
}
