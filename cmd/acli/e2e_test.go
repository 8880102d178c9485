package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/client/clienttest"
)

// End-to-end: the built acli binary against a built clusterd over TCP.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acli-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := func() int {
		for pkg, name := range map[string]string{".": "acli", "../clusterd": "clusterd"} {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var readyLine = regexp.MustCompile(`clusterd: serving on (\S+) `)

// startClusterd runs a sim cluster on a free loopback port (extra: more
// clusterd flags); stopped by PID when the test ends.
func startClusterd(t testing.TB, extra ...string) string {
	t.Helper()
	return startClusterdWith(t, append([]string{"--sim", "3", "--sim-speed", "1000"}, extra...)...)
}

// startClusterdWith runs clusterd with args on a free loopback port and a
// fresh data dir; stopped by PID when the test ends.
func startClusterdWith(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "clusterd"), append([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case a := <-addr:
		return a
	case <-done:
		t.Fatalf("clusterd exited: %s", stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("clusterd not ready: %s", stderr.String())
	}
	return ""
}

type result struct {
	code     int
	out, err string
}

// acli runs the binary with HOME in a temp dir and stdin from in.
func acli(t testing.TB, addr, in string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "acli"), args...)
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+addr, "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

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
		"VmNicCreate web01: complete", "Name:            web01", "VmDelete: complete", "Task UUID"} {
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
		{[]string{"-o", "yaml", "host.get", "127.20.0.21"}, 0, "node_state: AcropolisNormal"},
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
		{[]string{"__complete", "vm.create", "x", "mem"}, "memory=\tsize, required"},
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
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed")
	}
	addr := startClusterd(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nstty -g > %[1]s/before\nHOME=%[1]s ACLI_SERVER=%[2]s %[3]s\necho \"rc=$?\" > %[1]s/rc\n"+
		"HOME=%[1]s ACLI_SERVER=%[2]s %[3]s\necho \"rc=$?\" >> %[1]s/rc\nstty -g > %[1]s/after\nsleep 30\n",
		dir, addr, filepath.Join(binDir, "acli"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	tm("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "30", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", sock, "kill-server").Run() })
	screen := func() string { return tm("capture-pane", "-p") }
	waitFor := func(what string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if s := screen(); strings.Contains(s, what) {
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("screen never showed %q:\n%s", what, screen())
		return ""
	}
	waitFor("<acropolis>")
	tm("send-keys", "-l", "vm.m")
	waitFor("Migrate VMs to a host") // the only vm.m* action, with its summary
	tm("send-keys", "Tab")
	waitFor("<acropolis> vm.migrate")
	tm("send-keys", "C-c") // clears the line, keeps the shell
	time.Sleep(100 * time.Millisecond)
	tm("send-keys", "-l", "vm.cr")
	waitFor("Create VMs (powered off)") // the suggestion with its summary
	tm("send-keys", "Tab")
	waitFor("<acropolis> vm.create")
	tm("send-keys", "-l", " tmux1 memory=1G")
	waitFor("vm.create tmux1 memory=1G") // keys typed apart, not pasted with the Enter
	tm("send-keys", "Enter")
	waitFor("VmCreate: complete")
	tm("send-keys", "-l", "vm.list")
	waitFor("<acropolis> vm.list")
	tm("send-keys", "C-c") // clears the line, keeps the shell
	time.Sleep(100 * time.Millisecond)
	tm("send-keys", "-l", "vm.get tmux1")
	waitFor("<acropolis> vm.get tmux1")
	tm("send-keys", "Enter")
	waitFor("Cores per vCPU:")
	tm("send-keys", "-l", "exit")
	waitFor("<acropolis> exit")
	tm("send-keys", "Enter")
	// The script starts a second shell; Ctrl-D on an empty line leaves it.
	waitFile := func(name string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && len(b) > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s:\n%s", name, screen())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFile("rc")
	time.Sleep(300 * time.Millisecond) // the second shell draws its prompt
	tm("send-keys", "C-d")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "after")); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shell did not exit:\n%s", screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "before"))
	after, _ := os.ReadFile(filepath.Join(dir, "after"))
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
