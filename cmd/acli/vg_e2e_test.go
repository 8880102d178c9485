package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const client1 = "iqn.1994-05.com.redhat:client1"

// iscsiSession is what the scenario reads of vg.list_sessions -o json.
type iscsiSession struct {
	InitiatorIqn   string `json:"initiator_iqn"`
	DiskIndex      int    `json:"disk_index"`
	CvmIP          string `json:"cvm_ip"`
	Port           int    `json:"port"`
	State          string `json:"state"`
	PreferredCvmIP string `json:"preferred_cvm_ip"`
}

func listSessions(t *testing.T, addr, vg string) []iscsiSession {
	t.Helper()
	var ss []iscsiSession
	data(t, addr, &ss, "vg.list_sessions", vg)
	return ss
}

func servedBy(ss []iscsiSession) map[string]string {
	out := map[string]string{}
	for _, s := range ss {
		out[fmt.Sprintf("%s/%d", s.InitiatorIqn, s.DiskIndex)] = s.CvmIP
	}
	return out
}

// diskPaths is vm.disk_list's "Served by CVM" and "Path" of every disk.
func diskPaths(t *testing.T, addr, vm string) []string {
	t.Helper()
	r := acli(t, addr, "", "--no-headers", "-o", "csv", "-c", "served_by_cvm_ip,path", "vm.disk_list", vm)
	if r.code != 0 {
		t.Fatalf("vm.disk_list: %d %s", r.code, r.err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		f := strings.Split(l, ",")
		out = append(out, f[len(f)-2]+" "+f[len(f)-1])
	}
	return out
}

func lastSeq(t *testing.T, addr string) uint64 {
	t.Helper()
	var evs []struct {
		Seq uint64 `json:"seq"`
	}
	data(t, addr, &evs, "event.list", "limit=1")
	if len(evs) == 0 {
		return 0
	}
	return evs[0].Seq
}

// watcher is a background acli event.watch; lines holds what it printed.
type watcher struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []string
	done chan struct{}
	err  bytes.Buffer
}

func startWatch(t *testing.T, addr string, stdin string, args ...string) *watcher {
	t.Helper()
	w := &watcher{cmd: exec.Command(filepath.Join(binDir, "acli"), args...), done: make(chan struct{})}
	w.cmd.Env = append(os.Environ(), "ACLI_SERVER="+addr, "HOME="+t.TempDir())
	w.cmd.Stdin = strings.NewReader(stdin)
	w.cmd.Stderr = &w.err
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.mu.Lock()
			w.out = append(w.out, sc.Text())
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	})
	return w
}

func (w *watcher) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.out)
}

// waitLine waits until the watch printed a line containing each of want.
func (w *watcher) waitLine(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		all := strings.Join(w.lines(), "\n")
		missing := slices.DeleteFunc(slices.Clone(want), func(s string) bool { return strings.Contains(all, s) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event.watch never printed %q; it printed:\n%s\nstderr: %s", missing, all, w.err.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interrupt sends Ctrl-C's SIGINT and returns the exit code.
func (w *watcher) interrupt(t *testing.T) int {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-w.done
	err := w.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestVgFailoverScenario is the volume group scenario through the built
// acli against a real clusterd: the scenario script sets up a 3-disk VG for
// an external initiator and a VM-attached VG; failing the CVM of host 1
// moves its sessions to the other CVMs within the failover deadline and
// redirects the VM's disks, a background event.watch prints each move as it
// happens, and recovering the CVM brings everything back.
func TestVgFailoverScenario(t *testing.T) {
	addr := startClusterd(t)
	script(t, addr, "iscsi_failover.acli")
	before := listSessions(t, addr, "data")
	cvms := map[string]bool{}
	for _, s := range before {
		if s.InitiatorIqn != client1 || s.Port != 3205 || s.State != "kSessionActive" {
			t.Fatalf("session %+v", s)
		}
		cvms[s.CvmIP] = true
	}
	if len(before) != 3 || len(cvms) != 3 {
		t.Fatalf("sessions not one per CVM: %+v", before)
	}
	home := servedBy(before)
	var moved int = -1 // the disk served by 127.20.0.31
	for _, s := range before {
		if s.CvmIP == "127.20.0.31" {
			moved = s.DiskIndex
		}
	}
	if vs := listSessions(t, addr, "dbvg"); len(vs) != 1 || vs[0].CvmIP != "127.20.0.31" || vs[0].Port != 3261 {
		t.Fatalf("dbvg sessions %+v", vs)
	}
	if p := diskPaths(t, addr, "db"); !slices.Equal(p, []string{"127.20.0.31 local", "127.20.0.31 local"}) {
		t.Fatalf("vm.disk_list db before: %q", p)
	}

	// The watch replays from the last event, so it misses nothing however
	// long it takes to subscribe.
	since := lastSeq(t, addr)
	w := startWatch(t, addr, "", "event.watch", "type=iscsi", fmt.Sprintf("since_seq=%d", since))

	want(t, addr, 0, "sim.fail_cvm 127.20.0.21", "kCvmDown")
	// Readers never see a session on a down CVM while others are up.
	during := listSessions(t, addr, "data")
	var to string
	for _, s := range during {
		if s.CvmIP == "127.20.0.31" || s.State != "kSessionActive" {
			t.Fatalf("session during the failure %+v", s)
		}
		if s.DiskIndex == moved {
			to = s.CvmIP
			if s.PreferredCvmIP != "127.20.0.31" {
				t.Fatalf("moved session forgot where it belongs: %+v", s)
			}
		}
	}
	redirect := diskPaths(t, addr, "db")
	if len(redirect) != 2 || redirect[0] != redirect[1] || strings.HasPrefix(redirect[0], "127.20.0.31") || !strings.HasSuffix(redirect[0], " redirected") {
		t.Fatalf("vm.disk_list db during: %q", redirect)
	}
	redirectedTo := strings.Fields(redirect[0])[0]
	if vs := listSessions(t, addr, "dbvg"); len(vs) != 1 || vs[0].CvmIP != redirectedTo || vs[0].PreferredCvmIP != "127.20.0.31" {
		t.Fatalf("dbvg sessions during %+v (vm disks on %s)", vs, redirectedTo)
	}
	moveLine := fmt.Sprintf("session %s/%d moved 127.20.0.31 -> %s", client1, moved, to)
	w.waitLine(t, moveLine, "vm db disks redirected 127.20.0.31 -> "+redirectedTo)
	checkDeadline(t, addr, moveLine)

	want(t, addr, 0, "sim.recover_cvm 127.20.0.21", "kCvmUp")
	if got := servedBy(listSessions(t, addr, "data")); fmt.Sprint(got) != fmt.Sprint(home) {
		t.Fatalf("after recovery %v, want %v", got, home)
	}
	if p := diskPaths(t, addr, "db"); !slices.Equal(p, []string{"127.20.0.31 local", "127.20.0.31 local"}) {
		t.Fatalf("vm.disk_list db after: %q", p)
	}
	w.waitLine(t, fmt.Sprintf("session %s/%d moved %s -> 127.20.0.31", client1, moved, to),
		"vm db disks served by local cvm 127.20.0.31 again")
	if code := w.interrupt(t); code != 0 {
		t.Fatalf("event.watch after Ctrl-C: exit %d, stderr %q", code, w.err.String())
	}
	for _, l := range w.lines() {
		// time, type, message
		if f := strings.Fields(l); len(f) < 3 || f[1] != "iscsi" || !strings.HasSuffix(f[0], "Z") {
			t.Fatalf("watch line %q", l)
		}
	}

	// The same failure and return as the operator's script.
	out := script(t, addr, "iscsi_cvm_failure.acli")
	if fail, back, ok := strings.Cut(out, "kCvmUp"); !ok || !strings.Contains(fail, " redirected") || strings.Contains(back, " redirected") ||
		strings.Count(back, " local") != 2 {
		t.Fatalf("iscsi_cvm_failure.acli:\n%s", out)
	}

	// Attached, the VG is not deleted; the error names the detach command.
	r := acli(t, addr, "", "-y", "vg.delete", "data")
	if r.code != 5 || !strings.Contains(r.err, "detach: vg.detach_external data "+client1) {
		t.Fatalf("vg.delete attached: %+v", r)
	}
	if r := acli(t, addr, "", "vg.attach_external", "data", "iqn.2024-1.com.example"); r.code != 2 || !strings.Contains(r.err, "iqn.YYYY-MM.reversed.domain[:id]") {
		t.Fatalf("bad IQN: %+v", r)
	}
}

// checkDeadline asserts that the move event came within the failover
// deadline of the CVM going down, by the manager's own clock: 5 s of
// simulated time, at least 1 s real (--sim-speed 1000).
func checkDeadline(t *testing.T, addr, moveLine string) {
	t.Helper()
	var evs []struct {
		Time    time.Time `json:"time"`
		Type    string    `json:"type"`
		Message string    `json:"message"`
	}
	data(t, addr, &evs, "event.list", "limit=1000")
	var down, move time.Time
	for _, e := range evs {
		switch {
		case e.Type == "cvm" && strings.HasPrefix(e.Message, "cvm 127.20.0.31 ") && strings.Contains(e.Message, " is down"):
			down = e.Time
		case e.Type == "iscsi" && e.Message == moveLine:
			move = e.Time
		}
	}
	if down.IsZero() || move.IsZero() {
		t.Fatalf("events: cvm down at %v, move at %v", down, move)
	}
	if lag := move.Sub(down); lag < 0 || lag > time.Second {
		t.Fatalf("session moved %v after the cvm went down; the deadline is 1s", lag)
	}
}

// Ctrl-C ends event.watch cleanly in a script too: the next line runs, and
// -o json prints one JSON object per line.
func TestEventWatchInterruptInScript(t *testing.T) {
	addr := startClusterd(t)
	w := startWatch(t, addr, "event.watch type=vg\nvg.list\n", "-o", "json")
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		if r := acli(t, addr, "", "vg.create", fmt.Sprintf("probe%d", i)); r.code != 0 {
			t.Fatalf("vg.create: %+v", r)
		}
		if slices.ContainsFunc(w.lines(), func(l string) bool { return strings.Contains(l, "volume group probe") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch printed nothing: %s", w.err.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := w.interrupt(t); code != 0 {
		t.Fatalf("script after Ctrl-C: exit %d, stderr %q", code, w.err.String())
	}
	lines := w.lines()
	var events int
	for _, l := range lines {
		var e struct {
			Type string `json:"type"`
			Data []struct {
				Name string `json:"name"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not one JSON object per line: %q", l)
		}
		if e.Type == "vg" {
			events++
		}
	}
	// vg.list's envelope follows the events: the script went on.
	listed := slices.IndexFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, `{"data": [{`) && strings.Contains(l, `"name":"probe0"`)
	})
	if events == 0 || listed < events {
		t.Fatalf("script output:\n%s", strings.Join(lines, "\n"))
	}
}

// In the interactive shell, Ctrl-C ends event.watch and returns to the
// prompt, which runs the next command.
func TestTmuxShellEventWatch(t *testing.T) {
	addr := startClusterd(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nHOME=%[1]s ACLI_SERVER=%[2]s %[3]s\necho \"rc=$?\" > %[1]s/rc\nsleep 30\n", dir, addr, filepath.Join(binDir, "acli"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	term := newTmux(t, 160, 30, script)
	screen, waitFor := term.screen, func(what string) { t.Helper(); term.waitFor(what) }
	waitFor("<acropolis>")
	term.typeText("event.watch type=vg")
	waitFor("<acropolis> event.watch type=vg")
	term.keys("Enter")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !strings.Contains(screen(), "volume group tmuxvg"); i++ {
		if r := acli(t, addr, "", "vg.create", fmt.Sprintf("tmuxvg%d", i)); r.code != 0 {
			t.Fatalf("vg.create: %+v", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch printed nothing:\n%s", screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	term.keys("C-c")
	term.waitPrompt()
	term.typeText("vg.list")
	waitFor("<acropolis> vg.list")
	term.keys("Enter")
	waitFor("Volume group name")
	if s := screen(); strings.Contains(s, "Error") || strings.Contains(s, "rc=") {
		t.Fatalf("after Ctrl-C:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "rc")); err == nil {
		t.Fatal("Ctrl-C left the shell")
	}
}

// clusterd --iscsi-failback off: sessions stay where failover put them
// when the CVM recovers.
func TestVgFailbackOff(t *testing.T) {
	addr := startClusterd(t, "--iscsi-failback", "off")
	for _, line := range []string{"vg.create data", "vg.disk_create data create_size=10G", "vg.disk_create data create_size=10G",
		"vg.disk_create data create_size=10G", "vg.attach_external data " + client1} {
		if r := acli(t, addr, "", strings.Fields(line)...); r.code != 0 {
			t.Fatalf("%s: %+v", line, r)
		}
	}
	want(t, addr, 0, "sim.fail_cvm 127.20.0.22", "kCvmDown")
	failed := servedBy(listSessions(t, addr, "data"))
	want(t, addr, 0, "sim.recover_cvm 127.20.0.22", "kCvmUp")
	// Several periodic passes (200 ms each) later, nothing moved back.
	time.Sleep(time.Second)
	if got := servedBy(listSessions(t, addr, "data")); fmt.Sprint(got) != fmt.Sprint(failed) {
		t.Fatalf("sessions moved back with failback off: %v, were %v", got, failed)
	}
	for _, s := range failed {
		if s == "127.20.0.32" {
			t.Fatalf("a session stayed on the failed cvm: %v", failed)
		}
	}
}
