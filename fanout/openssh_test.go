package fanout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const sshdPath = "/usr/sbin/sshd"

// startOpenSSH runs a real sshd on the given loopback IPs and returns its
// port, host key and a client key file it accepts.
func startOpenSSH(t testing.TB, ips []string) (int, ssh.PublicKey, string) {
	t.Helper()
	// CI sets ACLI_REQUIRE_SSHD=1 after installing openssh-server: there a
	// missing prerequisite fails the test instead of skipping it.
	skip := t.Skipf
	if os.Getenv("ACLI_REQUIRE_SSHD") != "" {
		skip = t.Fatalf
	}
	if _, err := os.Stat(sshdPath); err != nil {
		skip("OpenSSH sshd not installed (apt-get install openssh-server)")
	}
	if os.Geteuid() != 0 {
		skip("sshd needs root")
	}
	// Privilege separation directory required by Debian's sshd.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		skip("cannot create /run/sshd: %v", err)
	}
	dir := t.TempDir()
	hostSigner, hostPEM := newSigner(t)
	clientSigner, clientPEM := newSigner(t)
	hostKey := filepath.Join(dir, "host_ed25519")
	clientKey := filepath.Join(dir, "id_ed25519")
	os.WriteFile(hostKey, hostPEM, 0o600)
	os.WriteFile(clientKey, clientPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientSigner.PublicKey()), 0o600)

	port := freeAddr(t, ips[0])
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Port %d\n", port)
	for _, ip := range ips {
		fmt.Fprintf(&cfg, "ListenAddress %s\n", ip)
	}
	fmt.Fprintf(&cfg, "HostKey %s\nAuthorizedKeysFile %s\nPidFile none\n", hostKey, filepath.Join(dir, "authorized_keys"))
	cfg.WriteString("StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n" +
		"KexAlgorithms curve25519-sha256\nUseDNS no\nLogLevel ERROR\nMaxStartups 100\n")
	// An empty HOME: Debian's bash reads ~/.bashrc in every sshd session,
	// and the invoking user's may be slow.
	sessionHome := filepath.Join(dir, "home")
	os.Mkdir(sessionHome, 0o700)
	fmt.Fprintf(&cfg, "SetEnv HOME=%s\n", sessionHome)
	cfgFile := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfgFile, []byte(cfg.String()), 0o600)

	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgFile)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitFor(t, "sshd listening", func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort(ips[len(ips)-1], fmt.Sprint(port)))
		if err == nil {
			c.Close()
			return true
		}
		if cmd.ProcessState != nil {
			t.Fatalf("sshd exited: %s", logs.String())
		}
		return false
	})
	return port, hostSigner.PublicKey(), clientKey
}

func TestRunAgainstOpenSSH(t *testing.T) {
	ips := []string{"127.0.0.51", "127.0.0.52"}
	port, hostKey, clientKey := startOpenSSH(t, ips)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var addrs []string
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, fmt.Sprint(port)))
	}
	os.WriteFile(kh, []byte(knownhosts.Line(addrs, hostKey)+"\n"), 0o600)

	opts := Options{IdentityFiles: []string{clientKey}, KnownHostsFiles: []string{kh}, DefaultUser: "root",
		Port: port, Targets: []Target{{Host: ips[0]}, {Host: ips[1]}}, MaxExit: true, ConnectTimeout: 10 * time.Second}
	cmd := `printf '%s|' "a  b" c; echo; echo oops >&2; exit 4`
	var out, errOut bytes.Buffer
	res, err := Run(context.Background(), opts, cmd, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	want := StyleHostSSH.Banner(ips[0]) + "\na  b|c|\n" + StyleHostSSH.Banner(ips[1]) + "\na  b|c|\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr: %s", out.String(), want, errOut.String())
	}
	if res.Status != 4 || res.Hosts[0].ExitCode != 4 || res.Hosts[1].Stderr != "oops\n" {
		t.Errorf("status %d hosts %+v", res.Status, res.Hosts)
	}

	// A command over its limit is cut off. Signals do not reach root
	// sessions on OpenSSH, but closing the session closes the command's
	// output: one that keeps writing dies of it.
	// The limit is generous so that a loaded machine still prints "started".
	opts.CommandTimeout = 2 * time.Second
	opts.MaxExit = false
	pidDir := t.TempDir()
	// SSH_CONNECTION's third field is the server address: one file per host.
	loop := "set -- $SSH_CONNECTION; echo $$ > " + pidDir + "/$3.pid; echo started; while echo tick; do sleep 0.1; done"
	res, _ = Run(context.Background(), opts, loop, io.Discard, io.Discard)
	for _, h := range res.Hosts {
		if h.Status != StatusTimeout || !strings.HasPrefix(h.Stdout, "started\ntick\n") {
			t.Errorf("timeout host %+v", h)
		}
	}
	pids, _ := filepath.Glob(filepath.Join(pidDir, "*.pid"))
	if len(pids) != len(ips) {
		t.Fatalf("pid files %v, want %d", pids, len(ips))
	}
	for _, f := range pids {
		data, _ := os.ReadFile(f)
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatalf("%s: %q", f, data)
		}
		waitFor(t, fmt.Sprintf("remote shell %d to end", pid), func() bool { return syscall.Kill(pid, 0) != nil })
	}
}

// BenchmarkRunOpenSSH is one fan-out of "true" to a real sshd on 1 and 16
// loopback addresses (needs root and openssh-server, else it skips):
// connection set-up, key exchange, authentication and the session.
func BenchmarkRunOpenSSH(b *testing.B) {
	var ips []string
	for i := 1; i <= 16; i++ {
		ips = append(ips, fmt.Sprintf("127.0.3.%d", i))
	}
	port, hostKey, clientKey := startOpenSSH(b, ips)
	var addrs []string
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, fmt.Sprint(port)))
	}
	kh := filepath.Join(b.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line(addrs, hostKey)+"\n"), 0o600)
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			opts := Options{IdentityFiles: []string{clientKey}, KnownHostsFiles: []string{kh}, DefaultUser: "root", Port: port}
			for _, ip := range ips[:n] {
				opts.Targets = append(opts.Targets, Target{Host: ip})
			}
			for b.Loop() {
				res, err := Run(context.Background(), opts, "true", io.Discard, io.Discard)
				if err != nil || res.Status != 0 {
					b.Fatalf("%v %+v", err, res.Hosts)
				}
			}
		})
	}
}
