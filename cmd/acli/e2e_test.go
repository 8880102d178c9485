package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/client/clienttest"
)

// End-to-end: the built acli binary against a built clusterd over TCP.

func TestDemoScript(t *testing.T) {
	addr := startClusterd(t)
	script, err := os.ReadFile("../../testdata/demo.acli")
	if err != nil {
		t.Fatal(err)
	}
	r := acli(t, addr, string(script))
	if r.code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{"Hypervisor IP", "NetworkCreate: complete", "VmCreate web03: complete", "VmPowerOn web02: complete",
		"VmNicCreate web01: complete", `name: "web01"`, "VmDelete: complete", "Task UUID"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Afterwards, one-shot commands see the state; JSON is one document.
	r = acli(t, addr, "", "-o", "json", "vm.list")
	var env struct {
		Data []struct {
			Name       string `json:"name"`
			PowerState string `json:"power_state"`
		} `json:"data"`
		Error  *string `json:"error"`
		Status int     `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.out), &env); err != nil || r.code != 0 || env.Status != 0 || env.Error != nil {
		t.Fatalf("json: %v %+v %s", err, r, r.out)
	}
	var got []string
	for _, v := range env.Data {
		got = append(got, v.Name+":"+v.PowerState)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "db01:kOn,web01:kOn,web02:kOn,web03:kOn" {
		t.Fatalf("vm.list: %v", got)
	}
}

func TestOneShotTour(t *testing.T) {
	addr := startClusterd(t)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, 0, "Namespaces:"},
		{[]string{"vm.create", "--help"}, 0, "memory="},
		{[]string{"cluster.get"}, 0, "Redundancy factor:"},
		{[]string{"vm.create", "db01", "memory=8G", "num_vcpus=4"}, 0, "VmCreate: complete"},
		{[]string{"vm.on", "db01"}, 0, "VmPowerOn: complete"},
		{[]string{"--no-headers", "-o", "csv", "vm.list"}, 0, "db01,"},
		{[]string{"vm.lsit"}, 2, `did you mean "vm.list"?`},
		{[]string{"vm.get", "nosuch"}, 3, "nosuch"},
		{[]string{"vm.delete", "db01"}, 2, "pass -y"},
		{[]string{"-y", "vm.delete", "db01"}, 5, ""},
		{[]string{"-o", "yaml", "host.get", "127.20.0.21"}, 0, "node_state: kAcropolisNormal"},
	}
	for _, s := range steps {
		r := acli(t, addr, "", s.args...)
		text := r.out
		if s.code != 0 {
			text = r.err
		}
		if r.code != s.code || !strings.Contains(text, s.want) {
			t.Errorf("acli %v: exit %d (want %d)\nstdout: %s\nstderr: %s", s.args, r.code, s.code, r.out, r.err)
		}
	}
}

func TestUnreachableBinary(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	r := acli(t, addr, "", "host.list")
	if r.code != 6 || r.err != "Error: cannot reach clusterd at "+addr+": connection refused\n" {
		t.Fatalf("%+v", r)
	}
}

func TestCompletionScripts(t *testing.T) {
	addr := startClusterd(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := acli(t, addr, "", "completion", sh)
		if r.code != 0 || !strings.Contains(r.out, "__complete") {
			t.Errorf("completion %s: %d %s", sh, r.code, r.err)
		}
	}
	acli(t, addr, "", "vm.create", "alpha", "memory=1G")
	// What the scripts call: live entity names, keys, enum values.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "vm.on", "al"}, "alpha"},
		{[]string{"__complete", "vm.list", "power_state=k"}, "power_state=kOff"},
		{[]string{"__complete", "vm.create", "x", "mem"}, "memory=\tsize, default 2G"},
		{[]string{"__complete", "vm.c"}, "vm.create\tCreate VMs"},
	} {
		r := acli(t, addr, "", c.args...)
		if r.code != 0 || !strings.Contains(r.out, c.want) {
			t.Errorf("%v: %d %q", c.args, r.code, r.out)
		}
	}
}

// TestTmuxShell drives the interactive shell in a real terminal: the
// prompt, completion of a partial action with Tab, history, Ctrl-C at the
// prompt, exit and Ctrl-D, and the terminal settings unchanged afterwards.
func TestTmuxShell(t *testing.T) {
	addr := startClusterd(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nstty -g > %[1]s/before\nHOME=%[1]s ACLI_SERVER=%[2]s %[3]s\necho \"rc=$?\" > %[1]s/rc\n"+
		"HOME=%[1]s ACLI_SERVER=%[2]s %[3]s\necho \"rc=$?\" >> %[1]s/rc\nstty -g > %[1]s/after\nsleep 30\n",
		dir, addr, filepath.Join(binDir, "acli"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTmux(t, 120, 30, script)
	tm.waitFor("<acropolis>")
	tm.typeText("vm.m")
	tm.waitFor("Migrate VMs to a host") // the only vm.m* action, with its summary
	tm.keys("Tab")
	tm.waitFor("<acropolis> vm.migrate")
	tm.keys("C-c") // clears the line, keeps the shell
	tm.waitPrompt()
	tm.typeText("vm.cr")
	tm.waitFor("Create VMs (powered off)")
	tm.keys("Tab")
	tm.waitFor("<acropolis> vm.create")
	tm.typeText(" tmux1 memory=1G")
	tm.waitFor("vm.create tmux1 memory=1G") // keys typed apart, not pasted with the Enter
	tm.keys("Enter")
	tm.waitFor("VmCreate: complete")
	tm.typeText("vm.list")
	tm.waitFor("<acropolis> vm.list")
	tm.keys("C-c")
	tm.waitPrompt()
	tm.typeText("vm.get tmux1")
	tm.waitFor("<acropolis> vm.get tmux1")
	tm.keys("Enter")
	tm.waitFor("num_cores_per_vcpu: 1")
	tm.typeText("exit")
	tm.waitFor("<acropolis> exit")
	tm.keys("Enter")
	// The script starts a second shell; Ctrl-D on an empty line leaves it.
	waitFile(t, filepath.Join(dir, "rc"), 10*time.Second, tm.screen)
	// The first shell's last prompt stays on screen until the second's
	// banner: wait for that banner, then its prompt.
	tm.waitUntil("the second shell's prompt", func(sc string) bool {
		return strings.Count(sc, "History:") == 2 && emptyPrompt(sc)
	})
	tm.keys("C-d")
	after := waitFile(t, filepath.Join(dir, "after"), 10*time.Second, tm.screen)
	before, _ := os.ReadFile(filepath.Join(dir, "before"))
	rc, _ := os.ReadFile(filepath.Join(dir, "rc"))
	if len(before) == 0 || string(before) != string(after) {
		t.Fatalf("stty -g changed:\nbefore %s\nafter  %s", before, after)
	}
	if string(rc) != "rc=0\nrc=0\n" {
		t.Fatalf("shell exit: %s", rc)
	}
	hist, _ := os.ReadFile(filepath.Join(dir, ".acli_history"))
	if !strings.Contains(string(hist), "vm.create tmux1 memory=1G\nvm.get tmux1\n") {
		t.Fatalf("history: %q", hist)
	}
}

// BenchmarkOneShotHostList is the wall time of `acli host.list` against a
// running clusterd (target: 15 ms median).
func BenchmarkOneShotHostList(b *testing.B) {
	addr := startClusterd(b)
	benchExec(b, addr, "host.list")
}

// BenchmarkVMList10k is `acli vm.list` with 10,000 VMs (targets: 150 ms,
// 64 MB RSS), served by the in-memory fake over TCP.
func BenchmarkVMList10k(b *testing.B) {
	fake := clienttest.New()
	fake.AddVMs("vm", 10000)
	addr := fake.ServeTCP(b)
	benchExec(b, addr, "vm.list")
}

// benchExec runs acli b.N times and reports median wall and CPU time and
// the peak RSS. RSS is read through /usr/bin/time when present: a child
// spawned straight from this (large) test process inherits its high-water
// mark at exec, which would overstate acli's own.
func benchExec(b *testing.B, addr string, args ...string) {
	b.Helper()
	timeBin, _ := exec.LookPath("/usr/bin/time")
	rssFile := filepath.Join(b.TempDir(), "rss")
	var times, cpu []time.Duration
	var maxRSS int64
	for i := 0; i < b.N; i++ {
		name, argv := filepath.Join(binDir, "acli"), args
		if timeBin != "" {
			name, argv = timeBin, append([]string{"-f", "%M", "-o", rssFile, filepath.Join(binDir, "acli")}, args...)
		}
		cmd := exec.Command(name, argv...)
		cmd.Env = append(os.Environ(), "ACLI_SERVER="+addr)
		start := time.Now()
		out, err := cmd.Output()
		times = append(times, time.Since(start))
		if err != nil || len(out) == 0 {
			b.Fatalf("acli %v: %v", args, err)
		}
		cpu = append(cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		if timeBin != "" {
			if kb, err := os.ReadFile(rssFile); err == nil {
				var n int64
				if _, err := fmt.Sscan(string(kb), &n); err == nil && n > maxRSS {
					maxRSS = n
				}
			}
		}
	}
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(times), "ms-median")
	b.ReportMetric(median(cpu), "ms-cpu-median")
	if maxRSS > 0 {
		b.ReportMetric(float64(maxRSS)/1024, "MB-maxrss")
	}
}
