package fanout

import (
	"bufio"
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

// needSSHD skips (fails in CI) where sshd cannot run.
func needSSHD(t testing.TB) {
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
}

// startOpenSSH runs a real sshd on the given loopback IPs, one port for all,
// and returns that port once every address answers, the host key and a
// client key file it accepts.
func startOpenSSH(t testing.TB, ips []string) (int, ssh.PublicKey, string) {
	t.Helper()
	needSSHD(t)
	dir := t.TempDir()
	hostSigner, hostPEM := newSigner(t)
	clientSigner, clientPEM := newSigner(t)
	hostKey := filepath.Join(dir, "host_ed25519")
	clientKey := filepath.Join(dir, "id_ed25519")
	os.WriteFile(hostKey, hostPEM, 0o600)
	os.WriteFile(clientKey, clientPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientSigner.PublicKey()), 0o600)

	// An empty HOME: Debian's bash reads ~/.bashrc in every sshd session,
	// and the invoking user's may be slow.
	sessionHome := filepath.Join(dir, "home")
	os.Mkdir(sessionHome, 0o700)
	// The port is free on every address when chosen, but sshd binds it
	// later: whatever takes it in between makes sshd log a failed bind
	// (it serves the other addresses), and sshd is started again on
	// another port.
	for attempt := 1; ; attempt++ {
		port := freePortOnAll(t, ips)
		logs, ok := runSSHD(t, dir, port, ips, hostKey, sessionHome)
		if ok {
			return port, hostSigner.PublicKey(), clientKey
		}
		if attempt == 5 {
			t.Fatalf("sshd could not bind a port on all of %v: %s", ips, logs)
		}
		t.Logf("port %d taken before sshd bound it: %s", port, logs)
	}
}

// runSSHD starts sshd on port at every IP and waits until each answers with
// sshd's banner. It reports false, with sshd's log, when sshd could not bind
// an address (and stops that sshd).
func runSSHD(t testing.TB, dir string, port int, ips []string, hostKey, sessionHome string) (string, bool) {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Port %d\n", port)
	for _, ip := range ips {
		fmt.Fprintf(&cfg, "ListenAddress %s\n", ip)
	}
	fmt.Fprintf(&cfg, "HostKey %s\nAuthorizedKeysFile %s\nPidFile none\n", hostKey, filepath.Join(dir, "authorized_keys"))
	cfg.WriteString("StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n" +
		"KexAlgorithms curve25519-sha256\nUseDNS no\nLogLevel ERROR\nMaxStartups 100\n")
	fmt.Fprintf(&cfg, "SetEnv HOME=%s\n", sessionHome)
	cfgFile := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfgFile, []byte(cfg.String()), 0o600)

	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgFile)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	// sshd binds and listens on every address before it serves any: once
	// one answers, a bind that failed has been logged.
	failed := func() bool { return strings.Contains(logs.String(), "Bind to port") }
	for _, ip := range ips {
		addr := net.JoinHostPort(ip, fmt.Sprint(port))
		waitFor(t, "sshd on "+addr, func() bool {
			select {
			case <-exited:
				t.Fatalf("sshd exited: %s", logs.String())
			default:
			}
			return failed() || sshBanner(addr)
		})
	}
	if failed() {
		stop()
		return logs.String(), false
	}
	t.Cleanup(stop)
	return "", true
}

// sshBanner reports whether an SSH server answers at addr.
func sshBanner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

// freePortOnAll returns a port that nothing listens on at any of ips.
func freePortOnAll(t testing.TB, ips []string) int {
	t.Helper()
	var lastErr error
	for range 50 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatalf("listen on %s: %v", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				lastErr = err
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == len(ips) {
			return port
		}
	}
	t.Fatalf("no port free on all of %v: %v", ips, lastErr)
	return 0
}

func TestRunAgainstOpenSSH(t *testing.T) {
	ips := []string{"127.50.1.1", "127.50.1.2"}
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
		ips = append(ips, fmt.Sprintf("127.50.2.%d", i))
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

// TestSSHDReportsATakenPort: when another listener takes the port on one
// address before sshd binds it, runSSHD says so instead of returning an sshd
// that refuses that address.
func TestSSHDReportsATakenPort(t *testing.T) {
	ips := []string{"127.50.1.3", "127.50.1.4"}
	needSSHD(t)
	port := freePortOnAll(t, ips)
	taken, err := net.Listen("tcp", net.JoinHostPort(ips[1], fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	_, hostPEM := newSigner(t)
	hostKey := filepath.Join(dir, "host_ed25519")
	os.WriteFile(hostKey, hostPEM, 0o600)
	logs, ok := runSSHD(t, dir, port, ips, hostKey, dir)
	if ok || !strings.Contains(logs, ips[1]) {
		t.Fatalf("runSSHD with %s:%d taken: ok %v, log %q", ips[1], port, ok, logs)
	}
}
