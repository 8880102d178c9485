package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The shell's safety items in a real terminal (tmux): what completion shows
// is what runs, a paste is one command per line, Ctrl-C in make demo ends
// the command and not clusterd, and the demo never touches a cluster that
// owns its address.

// shellScript writes a script that runs the acli shell against addr with
// HOME in dir, then keeps the pane open.
func shellScript(t *testing.T, dir, addr string) string {
	t.Helper()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nHOME=%[1]s ACLI_SERVER=%[2]s %[3]s\necho \"rc=$?\" > %[1]s/rc\nsleep 30\n",
		dir, addr, filepath.Join(binDir, "acli"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// screenLines returns n of the screen's lines from the last one holding
// from, with trailing blanks dropped.
func screenLines(t *testing.T, screen, from string, n int) string {
	t.Helper()
	all := strings.Split(screen, "\n")
	for i := len(all) - 1; i >= 0; i-- {
		if strings.Contains(all[i], from) {
			end := min(i+n, len(all))
			out := make([]string, 0, n)
			for _, x := range all[i:end] {
				out = append(out, strings.TrimRight(x, " "))
			}
			return strings.Join(out, "\n")
		}
	}
	t.Fatalf("screen has no %q:\n%s", from, screen)
	return ""
}

// A value chosen with Tab keeps its key: Enter runs the line as shown.
func TestTmuxValueCompletionKeepsKey(t *testing.T) {
	addr := startClusterd(t)
	for _, args := range [][]string{{"vm.create", "web01", "memory=1G"}, {"vm.on", "web01"}} {
		if r := acli(t, addr, "", args...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	tm := newTmux(t, 120, 30, shellScript(t, t.TempDir(), addr))
	tm.waitPrompt()
	tm.typeText("vm.list power_state=")
	tm.waitFor("power_state=kPaused") // the choices, each a whole key=value word
	tm.keys("Tab")
	tm.waitFor("<acropolis> vm.list power_state=kOn")
	tm.keys("Enter")
	sc := tm.waitFor("VM name")
	want := "<acropolis> vm.list power_state=kOn\nVM name  VM UUID"
	if got := screenLines(t, sc, "<acropolis> vm.list", 2); !strings.HasPrefix(got, want) {
		t.Fatalf("screen:\n%s\nwant it to begin:\n%s", got, want)
	}
	if got := screenLines(t, sc, "<acropolis> vm.list", 3); !regexp.MustCompile(`\nweb01 +\S+$`).MatchString(got) {
		t.Fatalf("screen:\n%s", got)
	}
	// host=<Tab> offers hosts; the key stays through the space typed after.
	tm.typeText("vm.list host=")
	tm.waitFor("host=h3")
	tm.keys("Tab")
	tm.waitFor("<acropolis> vm.list host=h1")
	tm.typeText(" ")
	tm.keys("Enter")
	sc = tm.waitUntil("vm.list host=h1 listing web01", regexp.MustCompile(`(?m)^<acropolis> vm.list host=h1\nVM name +VM UUID\nweb01 `).MatchString)
	if got := screenLines(t, sc, "<acropolis> vm.list host=h1", 3); !regexp.MustCompile(`^<acropolis> vm.list host=h1\nVM name +VM UUID\nweb01 +\S+$`).MatchString(got) {
		t.Fatalf("screen:\n%s", got)
	}
}

// A paste of two lines runs two commands, in order.
func TestTmuxPasteIsOneCommandPerLine(t *testing.T) {
	addr := startClusterd(t)
	dir := t.TempDir()
	tm := newTmux(t, 250, 40, shellScript(t, dir, addr))
	tm.waitFor("<acropolis>")
	paste := filepath.Join(dir, "paste")
	if err := os.WriteFile(paste, []byte("cluster.get\nhost.list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tm.run("load-buffer", paste)
	tm.run("paste-buffer") // one write, as a terminal pastes: both lines run at once
	sc := tm.waitFor("Hypervisor IP")
	if strings.Contains(sc, "Error") {
		t.Fatalf("screen:\n%s", sc)
	}
	got := screenLines(t, sc, "<acropolis> cluster.get", 13)
	if !regexp.MustCompile(`^<acropolis> cluster.get\nName: +sim-cluster\n(.+\n){7}Created: .*\n<acropolis> host.list\nHypervisor IP .*\n127\.20\.0\.21 `).MatchString(got) {
		t.Fatalf("screen:\n%s", sc)
	}
	tm.typeText("exit")
	tm.keys("Enter")
	waitFile(t, filepath.Join(dir, "rc"), 10*time.Second, tm.screen)
	hist, _ := os.ReadFile(filepath.Join(dir, ".acli_history"))
	if string(hist) != "cluster.get\nhost.list\n" {
		t.Fatalf("history: %q", hist)
	}
}

var demoPID = regexp.MustCompile(`clusterd \(pid (\d+)\) on (\S+),`)

// demoScript returns the command line of the make demo target on a fresh
// directory and the given address.
func demoScript(t *testing.T, dir, addr string) []string {
	t.Helper()
	return []string{"../../scripts/demo.sh", binDir, filepath.Join(dir, "demo"), addr}
}

// Ctrl-C during a command in the demo's shell ends that command; clusterd
// (and the shell) go on. Leaving the shell stops clusterd.
func TestTmuxDemoCtrlCSparesClusterd(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	// The pane's shell outlives a Ctrl-C as make does (it waits for the
	// demo, then reports the interrupt).
	body := fmt.Sprintf("#!/bin/sh\ntrap : INT\ncd %s && HOME=%s %s\necho \"rc=$?\" > %s/rc\nsleep 30\n",
		mustAbs(t, "."), dir, strings.Join(demoScript(t, dir, "127.43.0.1:0"), " "), dir)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTmux(t, 120, 40, script)
	sc := tm.waitWithin("<acropolis>", 60*time.Second)
	m := demoPID.FindStringSubmatch(sc)
	if m == nil {
		t.Fatalf("no clusterd pid on screen:\n%s", sc)
	}
	pid, _ := strconv.Atoi(m[1])
	tm.typeText("event.watch")
	tm.keys("Enter")
	// The watch runs once it shows an event made after it started (one
	// made before it subscribed shows nothing: make another).
	for i := 1; !strings.Contains(tm.screen(), "ctrlc"); i++ {
		if i > 30 {
			t.Fatalf("event.watch showed no event:\n%s", tm.screen())
		}
		if r := acli(t, m[2], "", "vm.create", fmt.Sprintf("ctrlc%02d", i), "memory=1G"); r.code != 0 {
			t.Fatalf("%+v", r)
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end) && !strings.Contains(tm.screen(), "ctrlc"); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	tm.keys("C-c")
	tm.waitPrompt()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("clusterd %d gone after Ctrl-C: %v\n%s", pid, err, tm.screen())
	}
	tm.typeText("cluster.get")
	tm.keys("Enter")
	tm.waitFor("Driver:                  sim")
	tm.typeText("exit")
	tm.keys("Enter")
	rc := waitFile(t, filepath.Join(dir, "rc"), 15*time.Second, tm.screen)
	if string(rc) != "rc=0\n" {
		t.Fatalf("demo: %s\n%s", rc, tm.screen())
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("clusterd %d still runs after the demo", pid)
	}
}

// The demo on an address another clusterd owns takes a free port and
// leaves that cluster as it was.
func TestDemoNeverTouchesAForeignCluster(t *testing.T) {
	foreign := startClusterd(t)
	dir := t.TempDir()
	args := demoScript(t, dir, foreign)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdin = strings.NewReader("")
	r := runCmd(t, cmd)
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	if !strings.HasPrefix(r.err, "demo: "+foreign+" is taken by another process; using a free port instead\n") {
		t.Fatalf("stderr: %q", r.err)
	}
	m := demoPID.FindStringSubmatch(r.out)
	if m == nil || m[2] == foreign {
		t.Fatalf("stdout: %s", r.out)
	}
	if err := syscall.Kill(atoi(m[1]), 0); err == nil {
		t.Fatalf("demo's clusterd %s still runs", m[1])
	}
	var vms []struct{}
	data(t, foreign, &vms, "vm.list")
	if len(vms) != 0 {
		t.Fatalf("the foreign cluster got %d VMs", len(vms))
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Ctrl-C on a one-shot command that follows a task ends the wait, says the
// task goes on and how to follow it, and exits 7 (as --timeout does).
func TestInterruptedWaitSaysTheTaskGoesOn(t *testing.T) {
	addr := startClusterd(t, "--sim-speed", "0.05") // a power-on takes ~20 s
	if r := acli(t, addr, "", "vm.create", "slow", "memory=1G"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	cmd := exec.Command(filepath.Join(binDir, "acli"), "vm.on", "slow")
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+addr, "HOME="+t.TempDir())
	var errb strings.Builder
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once acli follows the task: it says so with "pending".
	var out strings.Builder
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if lines.Text() == "VmPowerOn: pending" {
			_ = cmd.Process.Signal(os.Interrupt)
		}
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("exit: %v\n%s%s", err, out.String(), errb.String())
	}
	m := regexp.MustCompile(`^Error: interrupted; VmPowerOn goes on as task (\S+) on clusterd \(see: acli task.wait (\S+)\)\n$`).FindStringSubmatch(errb.String())
	if m == nil || m[1] != m[2] {
		t.Fatalf("stderr: %q", errb.String())
	}
	var task struct {
		Status string `json:"status"`
	}
	data(t, addr, &task, "task.get", m[1])
	if task.Status != "kRunning" && task.Status != "kQueued" {
		t.Fatalf("task %s: %s", m[1], task.Status)
	}
}

// The shell's banner: the cluster, where history goes, and a host left in
// maintenance mode.
func TestTmuxBannerWarnsOfMaintenance(t *testing.T) {
	addr := startClusterd(t)
	if r := acli(t, addr, "", "-y", "host.enter_maintenance_mode", "h2"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nHOME=%[1]s ACLI_HISTORY=%[1]s/hist ACLI_SERVER=%[2]s %[3]s\nsleep 30\n", dir, addr, filepath.Join(binDir, "acli"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTmux(t, 150, 20, script)
	sc := tm.waitFor("<acropolis>")
	want := "Cluster sim-cluster at " + addr + " (sim driver, 3 hosts). help lists commands; exit or Ctrl-D leaves.\n" +
		"History: " + dir + "/hist (set ACLI_HISTORY to move it, or to empty to keep none).\n" +
		"Warning: host h2 is in maintenance mode; host.exit_maintenance_mode h2 returns it to service.\n" +
		"<acropolis>"
	if got := screenLines(t, sc, "Cluster sim-cluster", 4); got != want {
		t.Fatalf("screen:\n%s\nwant:\n%s", got, want)
	}
	tm.typeText("cluster.get")
	tm.keys("Enter")
	tm.waitFor("Driver:")
	if b, _ := os.ReadFile(filepath.Join(dir, "hist")); string(b) != "cluster.get\n" {
		t.Fatalf("history: %q", b)
	}
}
