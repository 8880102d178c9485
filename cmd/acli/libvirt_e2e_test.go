package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/driver/libvirt"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// End-to-end on real libvirtd hosts: the built clusterd --driver libvirt
// and acli one-shots and scenario scripts, with libvirt itself asked what
// runs where.

type lvE2E struct {
	t     *testing.T
	addr  string
	dir   string // clusterd's data dir
	args  []string
	cd    *daemon
	hosts *libvirtharness.Cluster
	conn  map[string]*libvirt.Conn
}

func (e *lvE2E) acli(args ...string) result {
	e.t.Helper()
	report := make(chan string, 1)
	timer := time.AfterFunc(hangLimit, func() { report <- e.hangReport() })
	r := acli(e.t, e.addr, "", args...)
	if !timer.Stop() {
		e.t.Fatalf("acli %s still running after %v\n%s", strings.Join(args, " "), hangLimit, <-report)
	}
	return r
}

// hangLimit bounds one acli command here: every libvirt call clusterd makes fails within
// its call timeout (2m), so a command still running after this is hung. It then fails the
// test with the domains as libvirt has them and clusterd's goroutines, rather than the
// package at its timeout.
const hangLimit = 4 * time.Minute

// hangReport lists every host's domains, then stops clusterd with SIGQUIT, which makes
// it print every goroutine; acli, waiting on it, then ends.
func (e *lvE2E) hangReport() string {
	var b strings.Builder
	for _, h := range e.hosts.Hosts {
		doms, err := e.conn[h.Name].List()
		fmt.Fprintf(&b, "libvirt host %s: domains %+v", h.Name, doms)
		if err != nil {
			fmt.Fprintf(&b, ", %v", err)
		}
		b.WriteString("\n")
	}
	e.cd.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-e.cd.done:
		fmt.Fprintf(&b, "clusterd's stderr:\n%s", e.cd.stderr)
	case <-time.After(10 * time.Second):
		b.WriteString("clusterd still running 10s after SIGQUIT")
	}
	return b.String()
}

// watchProgress polls the progress lines of running tasks until stop is
// closed, then sends every line it saw.
func (e *lvE2E) watchProgress(stop <-chan struct{}) <-chan string {
	res := make(chan string, 1)
	go func() {
		var seen strings.Builder
		for {
			select {
			case <-stop:
				res <- seen.String()
				return
			default:
			}
			cmd := exec.Command(filepath.Join(binDir, "acli"), "--jq", ".[].progress_message", "task.list", "include_completed=false")
			cmd.Env = append(os.Environ(), "ACLI_SERVER="+e.addr)
			if out, err := cmd.Output(); err == nil {
				seen.Write(out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return res
}

// ok runs acli, requires exit 0 and the fragments in stdout.
func (e *lvE2E) ok(line string, want ...string) string {
	e.t.Helper()
	r := e.acli(strings.Fields(line)...)
	if r.code != 0 {
		e.t.Fatalf("acli %s: exit %d\nstdout: %s\nstderr: %s", line, r.code, r.out, r.err)
	}
	for _, w := range want {
		if !strings.Contains(r.out, w) {
			e.t.Fatalf("acli %s: output lacks %q:\n%s", line, w, r.out)
		}
	}
	return r.out
}

// fails runs acli and requires the exit code and a fragment of the
// error's first line (field details may follow).
func (e *lvE2E) fails(line string, code int, want string) {
	e.t.Helper()
	r := e.acli(strings.Fields(line)...)
	first, _, _ := strings.Cut(r.err, "\n")
	if r.code != code || !strings.Contains(first, want) {
		e.t.Fatalf("acli %s: exit %d, stderr %q; want exit %d and %q", line, r.code, r.err, code, want)
	}
}

// vm reads a VM with acli -o json.
func (e *lvE2E) vm(name string) (uuid, power, host string) {
	e.t.Helper()
	out := e.ok("-o json vm.list") // the API's field names (vm.get's are acli's)
	var doc struct {
		Data []struct {
			Name       string `json:"name"`
			Uuid       string `json:"uuid"`
			PowerState string `json:"power_state"`
			HostName   string `json:"host_name"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		e.t.Fatalf("vm.list: %v\n%s", err, out)
	}
	for _, v := range doc.Data {
		if v.Name == name {
			return v.Uuid, v.PowerState, v.HostName
		}
	}
	e.t.Fatalf("vm.list has no %s:\n%s", name, out)
	return "", "", ""
}

// runsOn asserts acli and libvirt agree that the VM runs on host only.
func (e *lvE2E) runsOn(name, host string) {
	e.t.Helper()
	id, power, recorded := e.vm(name)
	var where []string
	for _, h := range e.hosts.Hosts {
		d, err := e.conn[h.Name].Lookup(id)
		if err == nil && d.State.Active() {
			where = append(where, h.Name)
		} else if err != nil && !errors.Is(err, libvirt.ErrNotFound) {
			e.t.Fatal(err)
		}
	}
	if power != "kOn" || recorded != host || len(where) != 1 || where[0] != host {
		e.t.Fatalf("vm %s: acli says %s on %q, libvirt runs it on %v; want kOn on %s only", name, power, recorded, where, host)
	}
}

func (e *lvE2E) definedNowhere(name, id string) {
	e.t.Helper()
	for _, h := range e.hosts.Hosts {
		if d, err := e.conn[h.Name].Lookup(id); err == nil {
			e.t.Fatalf("vm %s: domain still defined on %s: %+v", name, h.Name, d)
		}
	}
}

func startLibvirtE2E(t *testing.T, extra ...string) *lvE2E {
	var hosts *libvirtharness.Cluster
	t.Cleanup(func() { // runs last, after the hosts stopped
		if hosts != nil {
			t.Logf("CPU time of the 3 libvirtd hosts and their QEMUs: %v", hosts.CPUTime().Round(time.Millisecond))
		}
	})
	hosts = libvirtharness.StartT(t, 3)
	dir := t.TempDir()
	// After clusterd (cleanups run last first): the CVM targets it leaves
	// serving, by the PIDs it recorded.
	t.Cleanup(func() { datapath.StopRecorded(filepath.Join(dir, "datapath")) })
	args := append([]string{"--driver", "libvirt", "--libvirt-heartbeat", "200ms", "--libvirt-shutdown-timeout", "1s"}, extra...)
	d, err := launchClusterd(t, dir, args...)
	if err != nil {
		t.Fatalf("clusterd exited: %v", err)
	}
	e := &lvE2E{t: t, addr: d.addr, dir: dir, args: args, cd: d, hosts: hosts, conn: map[string]*libvirt.Conn{}}
	for _, h := range hosts.Hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := libvirt.Dial(ctx, h.TCPURI(), libvirt.DialOptions{CallTimeout: 30 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		e.conn[h.Name] = c
	}
	return e
}

// stopClusterd stops clusterd (SIGTERM, by PID) and waits for it to exit.
func (e *lvE2E) stopClusterd() {
	e.t.Helper()
	if err := e.cd.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-e.cd.done:
	case <-time.After(30 * time.Second):
		e.t.Fatal("clusterd still runs 30 s after SIGTERM")
	}
}

// startClusterd starts clusterd again on the same data dir.
func (e *lvE2E) startClusterd() {
	e.t.Helper()
	d, err := launchClusterd(e.t, e.dir, e.args...)
	if err != nil {
		e.t.Fatalf("clusterd exited: %v", err)
	}
	e.cd, e.addr = d, d.addr
}

// join adds every harness host with acli host.add.
func (e *lvE2E) join() {
	e.t.Helper()
	for _, h := range e.hosts.Hosts {
		e.ok(fmt.Sprintf("host.add %s hypervisor_ip=%s libvirt_uri=%s", h.Name, h.Addr, h.TCPURI()), "HostAdd: complete")
	}
}

// agree asserts that every VM acli says is on runs on exactly its host
// in libvirt, and that no other domain runs anywhere.
func (e *lvE2E) agree() {
	e.t.Helper()
	var vms []vmJSON
	data(e.t, e.addr, &vms, "vm.list")
	on := 0
	for _, v := range vms {
		if v.PowerState == "kOn" {
			e.runsOn(v.Name, v.HostName)
			on++
		}
	}
	running := 0
	for _, h := range e.hosts.Hosts {
		doms, err := e.conn[h.Name].List()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, d := range doms {
			if d.State.Active() {
				running++
			}
		}
	}
	if running != on {
		e.t.Fatalf("libvirt runs %d domains, acli lists %d VMs on", running, on)
	}
}

func TestLibvirtEndToEnd(t *testing.T) {
	e := startLibvirtE2E(t)
	h1, h2, h3 := e.hosts.Hosts[0], e.hosts.Hosts[1], e.hosts.Hosts[2]

	// Hosts join with acli host.add; bad lines fail before reaching clusterd.
	e.fails("host.add h1 hypervisor_ip="+h1.Addr, 2, "missing required key libvirt_uri=<string>")
	e.fails("host.add h1 hypervisor_ip=127.0.0 libvirt_uri="+h1.TCPURI(), 2, `hypervisor_ip="127.0.0" is not an IP address`)
	e.fails("host.add h1 hypervisor_ip="+h1.Addr+" libvirt_uri=tcp://"+h1.Addr, 2, `unsupported driver "tcp"`)
	e.join()
	e.fails(fmt.Sprintf("host.add again hypervisor_ip=127.0.0.250 libvirt_uri=%s", h1.TCPURI()), 5, "already in the cluster as h1")
	out := e.ok("host.list", h1.Addr, h2.Addr, h3.Addr, "AcropolisNormal")
	if strings.Count(out, "AcropolisNormal") != 3 {
		t.Fatalf("host.list:\n%s", out)
	}
	e.ok("-o block host.get h2", "UUID:", h2.UUID, "libvirt URI:", h2.TCPURI())

	// The lifecycle, each step checked against libvirt.
	e.ok("vm.create web memory=64M", "VmCreate: complete")
	id, _, _ := e.vm("web")
	e.definedNowhere("web", id)
	e.ok("vm.on web host=h1", "VmPowerOn: complete")
	e.runsOn("web", "h1")
	e.ok("vm.reboot web", "VmReboot: complete")
	e.ok("vm.reset web", "VmReset: complete")
	e.runsOn("web", "h1")
	e.ok("vm.shutdown web", "VmShutdown: complete")
	if _, power, _ := e.vm("web"); power != "kOff" {
		t.Fatalf("after vm.shutdown: %s", power)
	}
	e.definedNowhere("web", id)
	e.ok("vm.on web", "VmPowerOn: complete")
	_, _, host := e.vm("web")
	e.runsOn("web", host)
	e.ok("vm.off web", "VmPowerOff: complete")
	e.definedNowhere("web", id)

	// Changed behind clusterd's back, reflected in acli.
	e.ok("vm.on web host=h2", "VmPowerOn: complete")
	if err := e.conn["h2"].Destroy(id); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "acli vm.list shows web on", func() bool {
		return strings.Contains(e.ok("vm.list power_state=off"), "web")
	})

	// Live migration with and without host=, progress streamed.
	e.ok("vm.on web host=h1", "VmPowerOn: complete")
	e.ok("vm.create db memory=64M", "VmCreate: complete")
	e.ok("vm.on db host=h1", "VmPowerOn: complete")
	// Throttled to 8 Mb/s so the copy lasts long enough to be watched.
	// A pipe shows pending and complete only; the task carries the progress.
	stop := make(chan struct{})
	progress := e.watchProgress(stop)
	out = e.ok("vm.migrate web host=h2 bandwidth_mbps=8", "Migrating vm web from h1 to h2", "VmMigrate: pending\n", "VmMigrate: complete")
	close(stop)
	seen := <-progress
	for _, w := range []string{"migrating vm web to h2", "round ", "remaining", "est. downtime"} {
		if !strings.Contains(seen, w) {
			t.Errorf("vm.migrate's progress lacks %q:\n%s", w, seen)
		}
	}
	t.Logf("acli vm.migrate, a live migration:\n%s", out)
	e.runsOn("web", "h2")
	out = e.ok("vm.migrate db", "(chosen by the scheduler)", "VmMigrate: complete")
	_, _, host = e.vm("db")
	if host == "h1" {
		t.Fatal("vm.migrate without a host left db on h1")
	}
	e.runsOn("db", host)
	t.Logf("migration of db: %s", regexp.MustCompile(`vm db migrated[^\n]*`).FindString(out))

	// Maintenance: h2 empties by live migration, then takes its VMs back.
	before := map[string]bool{}
	for _, v := range []string{"web", "db"} {
		if _, _, h := e.vm(v); h == "h2" {
			before[v] = true
		}
	}
	e.ok("host.enter_maintenance_mode_check h2", "Ok to enter maintenance mode.")
	e.ok("host.enter_maintenance_mode h2", "EnterMaintenanceMode: complete")
	e.ok("host.get h2", "EnteredMaintenanceMode")
	if doms, err := e.conn["h2"].List(); err != nil || len(doms) != 0 {
		t.Fatalf("h2 in maintenance still has domains: %+v %v", doms, err)
	}
	e.ok("host.exit_maintenance_mode h2", "ExitMaintenanceMode: complete")
	for v := range before {
		e.runsOn(v, "h2")
	}

	// host.remove: confirmation, refused while VMs run there, then done
	// for the host without VMs (and it can join again).
	_, _, busy := e.vm("web")
	e.fails("host.remove "+busy, 2, "needs confirmation")
	e.fails("-y host.remove "+busy, 5, "host "+busy+" runs")
	_, _, other := e.vm("db")
	for _, h := range e.hosts.Hosts {
		if h.Name == busy || h.Name == other {
			continue
		}
		e.ok("-y host.remove "+h.Name, "HostRemove: complete")
		e.fails("host.get "+h.Name, 3, h.Name)
		e.ok(fmt.Sprintf("host.add %s hypervisor_ip=%s libvirt_uri=%s", h.Name, h.Addr, h.TCPURI()), "HostAdd: complete")
	}

	// Clean up through acli: off and delete leave no domain behind.
	e.ok("-y vm.off web,db", "complete")
	e.ok("-y vm.delete web,db", "complete")
	for _, h := range e.hosts.Hosts {
		if doms, err := e.conn[h.Name].List(); err != nil || len(doms) != 0 {
			t.Fatalf("%s still has domains after vm.delete: %+v %v", h.Name, doms, err)
		}
	}
}

// The runbooks of testdata/scenarios, written for any driver, on real
// libvirtd hosts: every step's VMs are real QEMU domains, and after each
// script libvirt runs exactly what acli lists.
func TestLibvirtScenarioScripts(t *testing.T) {
	e := startLibvirtE2E(t)
	e.join()
	for _, name := range []string{"inventory.acli", "maintenance.acli", "migrate.acli"} {
		start := time.Now()
		out := script(t, e.addr, name)
		t.Logf("%s: %v", name, time.Since(start).Round(time.Millisecond))
		if name == "maintenance.acli" && !strings.Contains(out, "ExitMaintenanceMode: complete") {
			t.Fatalf("%s:\n%s", name, out)
		}
		e.agree()
	}
	if _, _, h := e.vm("db01"); h != "h1" {
		t.Fatalf("db01 on %s after the runbooks, want h1 (host affinity)", h)
	}
}

// A sim cluster's hosts come from its configuration: host.add and
// host.remove are refused with the reason and what to run instead.
func TestHostAddRefusedOnSim(t *testing.T) {
	addr := startClusterd(t)
	r := acli(t, addr, "", "host.add", "h9", "hypervisor_ip=127.20.0.29", "libvirt_uri=qemu+tcp://127.20.0.29/system")
	if r.code != 5 || !strings.Contains(r.err, "host.add needs clusterd --driver libvirt") {
		t.Fatalf("host.add on sim: exit %d: %s", r.code, r.err)
	}
	r = acli(t, addr, "", "-y", "host.remove", "h1")
	if r.code != 5 || !strings.Contains(r.err, "host.remove needs clusterd --driver libvirt") {
		t.Fatalf("host.remove on sim: exit %d: %s", r.code, r.err)
	}
	if r := acli(t, addr, "", "host.list"); strings.Count(r.out, "AcropolisNormal") != 3 {
		t.Fatalf("hosts changed:\n%s", r.out)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
