package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/fanout"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// End-to-end fan-out: the built acli (and its hostssh/allssh names)
// against a built clusterd --sim 3 whose simulated machines serve SSH.

// simCluster is a running clusterd and what acli needs to reach it.
type simCluster struct {
	addr    string
	dataDir string
	home    string
}

func startSimCluster(t *testing.T) *simCluster {
	t.Helper()
	c := &simCluster{dataDir: t.TempDir(), home: t.TempDir()}
	d, err := launchClusterd(t, c.dataDir, "--sim", "3", "--sim-speed", "1000")
	if err != nil {
		t.Fatalf("clusterd exited: %v", err)
	}
	c.addr = d.addr
	return c
}

// identity is the client key clusterd wrote (what make demo exports).
func (c *simCluster) identity() string { return filepath.Join(c.dataDir, "ssh", "id_ed25519") }

// run runs bin (acli or a link to it) with a clean HOME (no known_hosts,
// no agent): host keys can only be verified through clusterd.
func (c *simCluster) run(t *testing.T, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	env := []string{"ACLI_SERVER=" + c.addr, "HOME=" + c.home, "ACLI_SSH_IDENTITY=" + c.identity()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return runCmd(t, cmd)
}

func (c *simCluster) acli(t *testing.T, args ...string) result {
	t.Helper()
	return c.run(t, filepath.Join(binDir, "acli"), args...)
}

func (c *simCluster) client(t *testing.T) *client.Client {
	t.Helper()
	cl, err := client.Dial(context.Background(), client.Options{Addr: c.addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// blocks splits banner-separated output into host -> block text, and
// returns the hosts in the order they were printed.
func blocks(t *testing.T, style fanout.Style, out string) ([]string, map[string]string) {
	t.Helper()
	var order []string
	got := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(out, "\n") {
		trimmed := strings.TrimSuffix(line, "\n")
		if f := strings.Fields(trimmed); len(f) == 3 && trimmed == style.Banner(f[1]) {
			cur = f[1]
			order = append(order, cur)
			continue
		}
		if cur == "" {
			if line != "" {
				t.Fatalf("output before the first banner: %q", out)
			}
			continue
		}
		got[cur] += line
	}
	return order, got
}

func TestHostSSHVirshListShowsEachHostsVMs(t *testing.T) {
	c := startSimCluster(t)
	for _, args := range [][]string{
		{"vm.create", "web[01..04]", "memory=1G"},
		{"vm.on", "web01,web02,web03"},
	} {
		if r := c.acli(t, args...); r.code != 0 {
			t.Fatalf("acli %v: %+v", args, r)
		}
	}
	cl := c.client(t)
	hosts, err := cl.Host.ListHosts(context.Background(), &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := cl.Vm.ListVms(context.Background(), &acliv1.ListVmsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	running := map[string][]string{} // hypervisor IP -> VM names
	ipOf := map[string]string{}
	for _, h := range hosts.Hosts {
		ipOf[h.Uuid] = h.HypervisorIp
		if h.SshPort == 0 || !strings.HasPrefix(h.SshHostKeyFingerprint, "SHA256:") || h.CvmSshPort == 0 || h.CvmSshHostKey == "" {
			t.Fatalf("host %s publishes no SSH endpoint: %+v", h.Name, h)
		}
	}
	for _, v := range vms.Vms {
		if v.PowerState == acliv1.PowerState_kOn {
			running[ipOf[v.HostUuid]] = append(running[ipOf[v.HostUuid]], v.Name)
		}
	}

	r := c.acli(t, "hostssh", "virsh list")
	if r.code != 0 || r.err != "" {
		t.Fatalf("hostssh: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	order, got := blocks(t, fanout.StyleHostSSH, r.out)
	want := []string{"127.20.0.21", "127.20.0.22", "127.20.0.23"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("blocks %v, want %v:\n%s", order, want, r.out)
	}
	seen := 0
	for _, ip := range want {
		block := got[ip]
		if !strings.HasPrefix(block, " Id   Name") {
			t.Errorf("%s: not virsh list output:\n%s", ip, block)
		}
		for _, name := range running[ip] {
			if !slices.ContainsFunc(strings.Split(block, "\n"), func(l string) bool {
				f := strings.Fields(l)
				return len(f) == 3 && f[1] == name && f[2] == "running"
			}) {
				t.Errorf("%s: %s missing:\n%s", ip, name, block)
			}
			seen++
		}
		if strings.Contains(block, "web04") {
			t.Errorf("%s: powered-off web04 listed:\n%s", ip, block)
		}
	}
	if seen != 3 {
		t.Errorf("%d running VMs found in the blocks, want 3:\n%s", seen, r.out)
	}

	// The published keys were pinned in the cluster's known_hosts on first
	// use; a host whose key no longer matches its pin is refused, although
	// clusterd publishes the key it presents.
	cluster, err := cl.Cluster.GetCluster(context.Background(), &acliv1.GetClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(c.home, ".config", "acli", "known_hosts", cluster.Uuid)
	data, err := os.ReadFile(pin)
	if err != nil || strings.Count(string(data), "\n") != 3 || !strings.Contains(string(data), "[127.20.0.21]:") {
		t.Fatalf("pin file %s: %v\n%s", pin, err, data)
	}
	other := hosts.Hosts[1].SshHostKey // h2's key, pinned for h1
	tampered := strings.Replace(string(data), "[127.20.0.21]:"+fmt.Sprint(hosts.Hosts[0].SshPort)+" "+strings.TrimSpace(hosts.Hosts[0].SshHostKey),
		"[127.20.0.21]:"+fmt.Sprint(hosts.Hosts[0].SshPort)+" "+strings.TrimSpace(other), 1)
	if tampered == string(data) {
		t.Fatalf("no pin line for h1 in:\n%s", data)
	}
	if err := os.WriteFile(pin, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.acli(t, "hostssh", "hostname")
	if r.code == 0 || !strings.Contains(r.out+r.err, "HOST KEY CHANGED for 127.20.0.21:") || !strings.Contains(r.out, "h2") {
		t.Errorf("hostssh with a changed pinned key: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

func TestAllSSHHostnameJSONAndArgv0(t *testing.T) {
	c := startSimCluster(t)
	want := "================== 127.20.0.31 =================\nNTNX-h1-CVM\n" +
		"================== 127.20.0.32 =================\nNTNX-h2-CVM\n" +
		"================== 127.20.0.33 =================\nNTNX-h3-CVM\n"
	if r := c.acli(t, "allssh", "hostname"); r.code != 0 || r.out != want {
		t.Errorf("allssh hostname: exit %d\n%s\nwant:\n%s\nstderr: %s", r.code, r.out, want, r.err)
	}

	// Invoked as hostssh through a symlink, with flags after the name.
	dir := t.TempDir()
	for _, name := range []string{"hostssh", "allssh"} {
		if err := os.Symlink(filepath.Join(binDir, "acli"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := c.run(t, filepath.Join(dir, "hostssh"), "-o", "json", "echo $HOSTNAME; exit 3")
	if r.code != 1 {
		t.Errorf("hostssh -o json: exit %d, want 1\n%s%s", r.code, r.out, r.err)
	}
	var doc struct {
		Data []struct {
			Host     string `json:"host"`
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
			Status   string `json:"status"`
		} `json:"data"`
		Error  *string `json:"error"`
		Status int     `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, r.out)
	}
	if len(doc.Data) != 3 || doc.Status != 1 || doc.Error == nil || !strings.Contains(*doc.Error, "3 of 3 hosts failed") {
		t.Fatalf("doc %+v", doc)
	}
	for i, d := range doc.Data {
		if d.Host != fmt.Sprintf("127.20.0.2%d", i+1) || d.ExitCode != 3 || d.Stdout != fmt.Sprintf("h%d\n", i+1) || d.Status != "failed" {
			t.Errorf("entry %d: %+v", i, d)
		}
	}
	if r := c.run(t, filepath.Join(dir, "allssh"), "hostname", "-s"); r.code != 0 || !strings.HasPrefix(r.out, "================== 127.20.0.31") {
		t.Errorf("allssh via symlink: %+v", r)
	}
	if r := c.run(t, filepath.Join(dir, "hostssh"), "--fanuot", "2", "x"); r.code != 2 || !strings.Contains(r.err, "did you mean --fanout?") || strings.Count(r.err, "\n") != 1 {
		t.Errorf("bad flag: %+v", r)
	}
}

func TestHostSSHFailedHostIsUnreachable(t *testing.T) {
	c := startSimCluster(t)
	if _, err := c.client(t).Sim.FailHost(context.Background(), &acliv1.SimHostRequest{Host: "h2"}); err != nil {
		t.Fatal(err)
	}
	r := c.acli(t, "hostssh", "hostname")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.out, r.err)
	}
	_, got := blocks(t, fanout.StyleHostSSH, r.out)
	if got["127.20.0.21"] != "h1\n" || got["127.20.0.23"] != "h3\n" || got["127.20.0.22"] != "" {
		t.Errorf("blocks %q", got)
	}
	why := "connection closed by the server before the SSH session started"
	want := "127.20.0.22: " + why + "\nhostssh: 1 of 3 hosts unreachable: 127.20.0.22 (" + why + ")\n"
	if r.err != want {
		t.Errorf("stderr %q, want %q", r.err, want)
	}
	// Its CVM went down with it.
	if r := c.acli(t, "allssh", "true"); r.code != 1 || !strings.Contains(r.err, "1 of 3 hosts unreachable: 127.20.0.32") {
		t.Errorf("allssh: %+v", r)
	}
}

func TestHostSSHKnownHostsMismatchWins(t *testing.T) {
	c := startSimCluster(t)
	hosts, err := c.client(t).Host.ListHosts(context.Background(), &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h := hosts.Hosts[0]
	// known_hosts says h1 has another key: the published one must not
	// override it.
	other, err := ssh.ParsePublicKey(mustKey(t, hosts.Hosts[1].SshHostKey).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("%s:%d", h.HypervisorIp, h.SshPort))}, other)
	if err := os.MkdirAll(filepath.Join(c.home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.home, ".ssh", "known_hosts"), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.acli(t, "hostssh", "true")
	if r.code != 1 || !strings.Contains(r.err, "1 of 3 hosts unreachable: 127.20.0.21 (HOST KEY CHANGED") {
		t.Errorf("exit %d, stderr %q", r.code, r.err)
	}
}

func mustKey(t *testing.T, authorized string) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHostSSHCtrlCStopsAllSessions(t *testing.T) {
	c := startSimCluster(t)
	cmd := exec.Command(filepath.Join(binDir, "acli"), "hostssh", "echo started; sleep 60")
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+c.addr, "HOME="+c.home, "ACLI_SSH_IDENTITY="+c.identity())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// The first block streams as soon as its host started.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "started" {
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != fanout.ExitCancelled {
		t.Fatalf("exit %v, want %d; stderr %s", err, fanout.ExitCancelled, errb.String())
	}
	if !strings.Contains(errb.String(), "hostssh: interrupted; 3 of 3 hosts did not finish") {
		t.Errorf("stderr %q", errb.String())
	}
}

// The shell runs hostssh and allssh like any other line, from a script
// (acli < script) as from the terminal.
func TestShellScriptRunsFanout(t *testing.T) {
	c := startSimCluster(t)
	cmd := exec.Command(filepath.Join(binDir, "acli"))
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+c.addr, "HOME="+c.home, "ACLI_SSH_IDENTITY="+c.identity())
	cmd.Stdin = strings.NewReader("# fan-out from a script\nhostssh hostname\nallssh --gather 'echo same'\nhostssh --exclude 127.20.0.2[1-2] \"exit 3\"\nhost.list\n")
	r := runCmd(t, cmd)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	want := "============= 127.20.0.21 ============\nh1\n============= 127.20.0.22 ============\nh2\n============= 127.20.0.23 ============\nh3\n" +
		"================== 127.20.0.[31-33] (3) =================\nsame\n" +
		"============= 127.20.0.23 ============\n"
	if r.out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.out, want)
	}
	wantErr := "hostssh: 1 of 1 hosts failed: 127.20.0.23 (exit 3)\nacli: stopped at line 4: hostssh --exclude 127.20.0.2[1-2] \"exit 3\"\n"
	if r.err != wantErr {
		t.Errorf("stderr %q, want %q", r.err, wantErr)
	}
}

// TestTmuxShellFanout drives hostssh and allssh in the interactive shell:
// output per host, Ctrl-C stopping every session but not the shell.
func TestTmuxShellFanout(t *testing.T) {
	c := startSimCluster(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	// set -m: acli runs as its own job, as from an interactive shell, so
	// Ctrl-C reaches acli and not this script.
	body := fmt.Sprintf("#!/bin/sh\nset -m\nHOME=%s ACLI_SERVER=%s ACLI_SSH_IDENTITY=%s %s\necho \"rc=$?\" > %s/rc\nsleep 30\n",
		c.home, c.addr, c.identity(), filepath.Join(binDir, "acli"), dir)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	term := newTmux(t, 120, 40, script)
	screen, waitFor := term.screen, func(what string) { t.Helper(); term.waitFor(what) }
	typeLine := func(line string) {
		t.Helper()
		term.typeText(line)
		waitFor("<acropolis> " + line)
		term.keys("Enter")
	}
	waitFor("<acropolis>")
	typeLine(`hostssh "virsh list --name; hostname"`)
	waitFor("-A-CVM\n\nh3\n")
	typeLine(`hostssh "echo started; sleep 60"`)
	waitFor("============= 127.20.0.21 ============\nstarted")
	term.keys("C-c")
	waitFor("hostssh: interrupted; 3 of 3 hosts did not finish: 127.20.0.[21-23]")
	typeLine("allssh hostname")
	waitFor("================== 127.20.0.33 =================\nNTNX-h3-CVM\n")
	typeLine("exit")
	if rc := waitFile(t, filepath.Join(dir, "rc"), 10*time.Second, screen); string(rc) != "rc=0\n" {
		t.Fatalf("shell exit: %s\n%s", rc, screen())
	}
}
