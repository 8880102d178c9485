package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Exact output of the small things an operator meets first: version,
// completion set-up, error hints.
func TestFormOneShot(t *testing.T) {
	addr := startClusterd(t)
	version := regexp.MustCompile(`^acli \S+( \(commit [0-9a-f]+, \S+(, modified)?\))? go1\.\d+\S*\n$`)
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := acli(t, addr, "", args...)
		if r.code != 0 || !version.MatchString(r.out) || r.err != "" {
			t.Errorf("acli %v: %+v", args, r)
		}
	}
	for _, s := range []struct {
		args     []string
		in       string
		code     int
		out, err string
	}{
		{[]string{"completion"}, "", 2, "", "Error: completion: name one shell: bash, zsh or fish (e.g. acli completion bash)\n"},
		{[]string{"completion", "tcsh"}, "", 2, "", "Error: completion: unknown shell \"tcsh\"; did you mean \"bash\", \"zsh\" or \"fish\"?\n"},
		{[]string{"vm.get", "web01", "extra=1"}, "", 2, "", "Error: vm.get: unknown key \"extra\" (valid: include_vmdisk_paths)\n"},
		// Lines read by the shell name commands as typed there.
		{nil, "vm.get web01 extra=1\n", 2, "", "Error: vm.get: unknown key \"extra\" (valid: include_vmdisk_paths)\nacli: stopped at line 1: vm.get web01 extra=1\n"},
		{nil, "vm.lst\n", 2, "", "Error: unknown action \"lst\" in namespace vm; did you mean \"vm.list\"?\nacli: stopped at line 1: vm.lst\n"},
	} {
		r := acli(t, addr, s.in, s.args...)
		if r.code != s.code || r.out != s.out || r.err != s.err {
			t.Errorf("acli %v <<< %q: exit %d\nstdout %q\nstderr %q\nwant exit %d stderr %q", s.args, s.in, r.code, r.out, r.err, s.code, s.err)
		}
	}
	r := acli(t, addr, "", "help", "completion")
	if r.code != 0 || !strings.HasPrefix(r.out, "completion: Print a shell completion script\n") {
		t.Errorf("help completion: %+v", r)
	}
}

// The bash script completes in a bash without the bash-completion package.
func TestTmuxBashCompletionWithoutBashCompletion(t *testing.T) {
	addr := startClusterd(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nexec env -i HOME=%s PATH=%s:/usr/bin:/bin ACLI_SERVER=%s TERM=xterm PS1='$ ' bash --norc --noprofile\n", dir, binDir, addr)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTmux(t, 120, 20, script)
	tm.waitFor("$")
	tm.typeText("source <(acli completion bash); declare -F _init_completion || echo no-bash-completion\n")
	tm.waitFor("no-bash-completion")
	tm.typeText("acli vm.list power_state=kOf")
	tm.keys("Tab")
	sc := tm.waitFor("$ acli vm.list power_state=kOff")
	if strings.Contains(sc, "command not found") {
		t.Fatalf("screen:\n%s", sc)
	}
	tm.keys("C-u")
	tm.typeText("acli vm.cr")
	tm.keys("Tab")
	sc = tm.waitFor("$ acli vm.create")
	if got := screenLines(t, sc, "$ acli vm.create", 1); got != "$ acli vm.create" {
		t.Fatalf("screen:\n%s", sc)
	}
}

// Where clusterd is, or is not: a malformed address is a usage error; an
// address where something else answers is unreachable (6) and says so.
func TestFormServerAddress(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	webAddr := strings.TrimPrefix(web.URL, "http://")
	for _, s := range []struct {
		server string
		code   int
		err    string
	}{
		{"bogus", 2, "Error: server address \"bogus\" (--server or ACLI_SERVER) is not host:port, e.g. 127.0.0.1:2030\n"},
		{"127.0.0.1:99999", 2, "Error: server address \"127.0.0.1:99999\" (--server or ACLI_SERVER) is not host:port, e.g. 127.0.0.1:2030\n"},
		{webAddr, 6, "Error: cannot reach clusterd at " + webAddr + ": something answers there, but not clusterd's gRPC (wrong port?)\n"},
	} {
		r := acli(t, "", "", "--server", s.server, "host.list")
		if r.code != s.code || r.out != "" || r.err != s.err {
			t.Errorf("--server %s: exit %d\nstdout %q\nstderr %q\nwant %d %q", s.server, r.code, r.out, r.err, s.code, s.err)
		}
	}
}

// -o yaml says what failed on stdout, as -o json does.
func TestFormYAMLError(t *testing.T) {
	addr := startClusterd(t)
	r := acli(t, addr, "", "-o", "yaml", "vm.get", "nosuch")
	if r.code != 3 || r.out != "data: null\nerror: vm \"nosuch\" not found\nstatus: 3\n" || r.err != "Error: vm \"nosuch\" not found\n" {
		t.Fatalf("%+v", r)
	}
}

// clusterd gone under a running shell: one line saying where and what to
// check, not gRPC's transport text.
func TestFormLostConnection(t *testing.T) {
	d, err := launchClusterd(t, t.TempDir(), "--sim", "3", "--sim-speed", "1000")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "acli"))
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+d.addr, "HOME="+t.TempDir())
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(in, "cluster.get\n")
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "Driver:") {
	}
	d.kill(t)
	_, _ = io.WriteString(in, "host.list\n")
	_ = in.Close()
	_, _ = io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	// The cause is what the transport saw: EOF when the shell's connection
	// was still open as clusterd died, a refusal when it had already closed.
	want := regexp.MustCompile(`^Error: lost the connection to clusterd at ` + regexp.QuoteMeta(d.addr) +
		` \((EOF|connection refused)\); once it answers again, task.list shows what ran\nacli: stopped at line 2: host.list\n$`)
	if cmd.ProcessState.ExitCode() != 6 || !want.MatchString(errb.String()) {
		t.Fatalf("exit %d\nstderr %q\nwant   %q", cmd.ProcessState.ExitCode(), errb.String(), want)
	}
}

// hostssh speaks the same machine formats as the rest of acli.
func TestFormHostSSHYAMLAndCSV(t *testing.T) {
	c := startSimCluster(t)
	r := c.acli(t, "hostssh", "-o", "csv", "hostname")
	lines := strings.Split(r.out, "\n")
	if r.code != 0 || len(lines) < 7 || lines[0] != "host,port,status,exit_code,signal,stdout,stderr,duration_seconds,error" ||
		!regexp.MustCompile(`^127\.20\.0\.21,\d+,ok,0,,"h1$`).MatchString(lines[1]) || !strings.HasPrefix(lines[2], `",,`) {
		t.Errorf("csv: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = c.acli(t, "hostssh", "-o", "yaml", "hostname")
	if r.code != 0 || !strings.HasPrefix(r.out, "data:\n  - host: 127.20.0.21\n") || !strings.Contains(r.out, "    stdout: |\n      h1\n") ||
		!strings.HasSuffix(r.out, "error: null\nstatus: 0\n") {
		t.Errorf("yaml: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

// acli FILE and acli - run scripts, as acli < FILE does.
func TestFormScriptFile(t *testing.T) {
	addr := startClusterd(t)
	file := filepath.Join(t.TempDir(), "s.acli")
	if err := os.WriteFile(file, []byte("vm.create s1 memory=1G\nvm.get nosuch\nvm.create s2 memory=1G\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := result{3, "VmCreate: pending\nVmCreate: complete\nUnknown name: nosuch\n", "Error: vm \"nosuch\" not found\nacli: stopped at line 2: vm.get nosuch\n"}
	if r := acli(t, addr, "", file); r != want {
		t.Errorf("acli FILE: %+v", r)
	}
	want = result{0, "VmCreate: pending\nVmCreate: complete\n", ""}
	if r := acli(t, addr, "vm.create s3 memory=1G\n", "-"); r != want {
		t.Errorf("acli -: %+v", r)
	}
	if r := acli(t, addr, "", file, "x"); r.code != 2 || r.err != "Error: a script takes no arguments, got \"x\"\n" {
		t.Errorf("acli FILE x: %+v", r)
	}
	if r := acli(t, addr, "", "vm.lsit"); r.code != 2 || r.err != "Error: unknown action \"lsit\" in namespace vm; did you mean \"vm.list\"?\n" {
		t.Errorf("acli vm.lsit: %+v", r)
	}
}

// --debug traces each call to clusterd on stderr and leaves stdout alone.
func TestFormDebugTracesRPCs(t *testing.T) {
	addr := startClusterd(t)
	plain := acli(t, addr, "", "-o", "name", "host.list")
	r := acli(t, addr, "", "--debug", "-o", "name", "host.list")
	re := regexp.MustCompile(`^debug: rpc /acli\.v1\.HostService/ListHosts OK [0-9.]+[µm]?s \(passthrough:///` + regexp.QuoteMeta(addr) + `\)\n$`)
	if r.code != 0 || r.out != plain.out || r.out != "h1\nh2\nh3\n" || !re.MatchString(r.err) {
		t.Fatalf("%+v", r)
	}
}
