package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestRunOrderAndBanners(t *testing.T) {
	for _, style := range []Style{StyleHostSSH, StyleAllSSH} {
		const n = 5
		// Later hosts answer first, so order must come from the printer.
		c := newTestCluster(t, n, func(i int) glssh.Handler {
			return func(s glssh.Session) {
				time.Sleep(time.Duration(n-i) * 20 * time.Millisecond)
				fmt.Fprintf(s, "out %d line 1\nout %d line 2\n", i, i)
				fmt.Fprintf(s.Stderr(), "err %d\n", i)
			}
		})
		opts := c.options()
		opts.Style = style
		var out, errOut bytes.Buffer
		res, err := Run(context.Background(), opts, "anything", &out, &errOut)
		if err != nil {
			t.Fatal(err)
		}
		var want, wantErr strings.Builder
		for i, h := range c.hosts {
			fmt.Fprintf(&want, "%s\nout %d line 1\nout %d line 2\n", style.Banner(h.ip), i, i)
			fmt.Fprintf(&wantErr, "err %d\n", i)
		}
		if out.String() != want.String() {
			t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want.String())
		}
		if errOut.String() != wantErr.String() {
			t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), wantErr.String())
		}
		if res.Status != 0 {
			t.Errorf("status %d, want 0", res.Status)
		}
		for i, h := range res.Hosts {
			if h.Status != StatusOK || h.ExitCode != 0 || h.Host != c.hosts[i].ip || h.Stdout != fmt.Sprintf("out %d line 1\nout %d line 2\n", i, i) {
				t.Errorf("host %d result %+v", i, h)
			}
		}
	}
	if got := StyleHostSSH.Banner("10.0.0.1"); got != "============= 10.0.0.1 ============" {
		t.Errorf("hostssh banner %q", got)
	}
	if got := StyleAllSSH.Banner("10.0.0.1"); got != "================== 10.0.0.1 =================" {
		t.Errorf("allssh banner %q", got)
	}
}

func TestRunStreamsHeadAndHoldsLaterHosts(t *testing.T) {
	release := make(chan struct{})
	c := newTestCluster(t, 2, func(i int) glssh.Handler {
		if i == 1 {
			return reply("second\n", "", 0)
		}
		return func(s glssh.Session) {
			io.WriteString(s, "first-part\n")
			<-release
			io.WriteString(s, "first-rest\n")
		}
	})
	var out syncBuffer
	done := make(chan Result)
	go func() {
		res, _ := Run(context.Background(), c.options(), "x", &out, io.Discard)
		done <- res
	}()
	waitFor(t, "head host's live output", func() bool { return strings.Contains(out.String(), "first-part") })
	// Host 1 may well have finished by now; its block must still wait.
	time.Sleep(50 * time.Millisecond)
	if strings.Contains(out.String(), "second") {
		t.Fatalf("later host printed before the head finished:\n%s", out.String())
	}
	close(release)
	res := <-done
	want := strings.Join(banners(StyleHostSSH, c.hosts[0].ip), "") + "\nfirst-part\nfirst-rest\n" +
		StyleHostSSH.Banner(c.hosts[1].ip) + "\nsecond\n"
	if out.String() != want || res.Status != 0 {
		t.Errorf("got %q status %d, want %q", out.String(), res.Status, want)
	}
}

func TestRunGather(t *testing.T) {
	c := newTestCluster(t, 4, func(i int) glssh.Handler {
		if i == 2 {
			return reply("different\n", "", 0)
		}
		return reply("same\n", "", 0)
	})
	opts := c.options()
	opts.Gather = true
	opts.Style = StyleAllSSH
	var out bytes.Buffer
	if _, err := Run(context.Background(), opts, "x", &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := StyleAllSSH.Banner("127.50.4.[11-12,14] (3)") + "\nsame\n" + StyleAllSSH.Banner("127.50.4.13") + "\ndifferent\n"
	if out.String() != want {
		t.Errorf("gather output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestRunMixedExitCodesAndMaxExit(t *testing.T) {
	codes := []int{0, 3, 0, 1}
	c := newTestCluster(t, len(codes), func(i int) glssh.Handler { return reply("", "", codes[i]) })
	for _, maxExit := range []bool{false, true} {
		opts := c.options()
		opts.MaxExit = maxExit
		var errOut bytes.Buffer
		res, err := Run(context.Background(), opts, "x", io.Discard, &errOut)
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if maxExit {
			want = 3
		}
		if res.Status != want {
			t.Errorf("maxExit=%v: status %d, want %d", maxExit, res.Status, want)
		}
		wantSummary := fmt.Sprintf("hostssh: 2 of 4 hosts failed: %s (exit 3), %s (exit 1)\n", c.hosts[1].ip, c.hosts[3].ip)
		if errOut.String() != wantSummary {
			t.Errorf("summary %q, want %q", errOut.String(), wantSummary)
		}
		for i, h := range res.Hosts {
			if h.ExitCode != codes[i] {
				t.Errorf("host %d exit %d, want %d", i, h.ExitCode, codes[i])
			}
		}
	}
}

// freeAddr returns a loopback address with nothing listening on it.
func freeAddr(t testing.TB, ip string) int {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestRunUnreachableAndFailedAreReportedApart(t *testing.T) {
	c := newTestCluster(t, 2, func(i int) glssh.Handler { return reply("ok\n", "", i*2) })
	opts := c.options()
	refused := Target{Host: "127.50.4.40", Port: freeAddr(t, "127.50.4.40")}
	opts.Targets = append(opts.Targets, refused)
	var out, errOut bytes.Buffer
	res, err := Run(context.Background(), opts, "x", &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Hosts[2]
	if r.Status != StatusUnreachable || r.ExitCode != -1 || !strings.Contains(r.Error, "refused") {
		t.Errorf("refused host result %+v", r)
	}
	sum := lines(errOut.String())
	if len(sum) != 3 || !strings.HasPrefix(sum[0], "127.50.4.40: ") ||
		sum[1] != fmt.Sprintf("hostssh: 1 of 3 hosts failed: %s (exit 2)", c.hosts[1].ip) ||
		!strings.HasPrefix(sum[2], "hostssh: 1 of 3 hosts unreachable: 127.50.4.40 (") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
	if !strings.Contains(out.String(), StyleHostSSH.Banner("127.50.4.40")) {
		t.Errorf("unreachable host has no block:\n%s", out.String())
	}
	opts.MaxExit = true
	res, _ = Run(context.Background(), opts, "x", io.Discard, io.Discard)
	if res.Status != ExitUnreachable {
		t.Errorf("max-exit with an unreachable host: %d, want %d", res.Status, ExitUnreachable)
	}
}

func TestRunConnectTimeoutOnSilentServer(t *testing.T) {
	// Accepts TCP but never speaks SSH: the handshake must time out.
	ln, err := net.Listen("tcp", "127.50.4.41:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	c := newTestCluster(t, 1, func(int) glssh.Handler { return reply("fine\n", "", 0) })
	opts := c.options()
	opts.Targets = append([]Target{{Host: "127.50.4.41", Port: ln.Addr().(*net.TCPAddr).Port}}, opts.Targets...)
	opts.ConnectTimeout = 500 * time.Millisecond
	var out bytes.Buffer
	res, err := Run(context.Background(), opts, "x", &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if h := res.Hosts[0]; h.Status != StatusUnreachable || !strings.Contains(h.Error, "timed out after 500ms") {
		t.Errorf("silent host: %+v", h)
	}
	if res.Hosts[1].Status != StatusOK || !strings.HasSuffix(out.String(), "fine\n") {
		t.Errorf("healthy host after a hung one: %+v\n%s", res.Hosts[1], out.String())
	}
}

func TestRunCommandTimeout(t *testing.T) {
	c := newTestCluster(t, 2, func(i int) glssh.Handler {
		if i == 0 {
			return func(s glssh.Session) {
				io.WriteString(s, "started\n")
				<-s.Context().Done() // hangs until the client goes away
			}
		}
		return reply("quick\n", "", 0)
	})
	opts := c.options()
	opts.CommandTimeout = 500 * time.Millisecond
	opts.MaxExit = true
	var out, errOut bytes.Buffer
	res, err := Run(context.Background(), opts, "x", &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if h := res.Hosts[0]; h.Status != StatusTimeout || h.Stdout != "started\n" {
		t.Errorf("hung host: %+v", h)
	}
	if res.Hosts[1].Status != StatusOK || res.Status != ExitTimeout {
		t.Errorf("status %d, hosts %+v", res.Status, res.Hosts)
	}
	if !strings.Contains(errOut.String(), "1 of 2 hosts failed: "+c.hosts[0].ip+" (command timed out after 500ms)") {
		t.Errorf("summary: %s", errOut.String())
	}
}

func TestRunCancelStopsAllSessions(t *testing.T) {
	started, ended := make(chan struct{}, 3), make(chan glssh.Signal, 3)
	c := newTestCluster(t, 3, func(i int) glssh.Handler {
		return func(s glssh.Session) {
			sigs := make(chan glssh.Signal, 1)
			s.Signals(sigs)
			started <- struct{}{}
			io.WriteString(s, "running\n")
			select {
			case sig := <-sigs:
				ended <- sig
			case <-s.Context().Done():
				// The signal request may still be on its way.
				select {
				case sig := <-sigs:
					ended <- sig
				case <-time.After(5 * time.Second):
					ended <- "none"
				}
			}
		}
	})
	opts := c.options()
	opts.Fanout = 2 // the third host must never start
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	var errOut bytes.Buffer
	done := make(chan error)
	var res Result
	go func() {
		var err error
		res, err = Run(ctx, opts, "x", &out, &errOut)
		done <- err
	}()
	// Both sessions must run before the cancel (the second one's output
	// is held back until the first host's block is done).
	for range 2 {
		<-started
	}
	waitFor(t, "first host running", func() bool { return strings.Contains(out.String(), "running") })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error %v, want context.Canceled", err)
	}
	for _, h := range res.Hosts {
		if h.Status != StatusCancelled {
			t.Errorf("host %s status %s, want cancelled", h.Host, h.Status)
		}
	}
	if res.Hosts[2].Error != "cancelled before connecting" {
		t.Errorf("third host: %+v", res.Hosts[2])
	}
	// Both started sessions are told to stop, as Ctrl-C would.
	for range 2 {
		select {
		case sig := <-ended:
			if sig != glssh.SIGINT {
				t.Errorf("remote session got signal %q, want INT", sig)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("remote session still running after cancel")
		}
	}
	if !strings.Contains(errOut.String(), "interrupted; 3 of 3 hosts did not finish") {
		t.Errorf("summary: %s", errOut.String())
	}
}

func TestRunHostKeyChecks(t *testing.T) {
	c := newTestCluster(t, 1, func(int) glssh.Handler { return reply("hi\n", "", 0) })
	h := c.hosts[0]
	addr := net.JoinHostPort(h.ip, fmt.Sprint(h.port))
	other, _ := newSigner(t)

	t.Run("changed key refused", func(t *testing.T) {
		opts := c.options()
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte(knownhosts.Line([]string{addr}, other.PublicKey())+"\n"), 0o600)
		opts.KnownHostsFiles = []string{kh}
		opts.AcceptNew = true // must not override a changed key
		res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard)
		if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, "HOST KEY CHANGED") {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("unknown key refused, then recorded with accept-new", func(t *testing.T) {
		opts := c.options()
		kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
		opts.KnownHostsFiles = []string{kh}
		res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard)
		if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, "unknown host key SHA256:") {
			t.Fatalf("got %+v", r)
		}
		opts.AcceptNew = true
		if res, _ = Run(context.Background(), opts, "x", io.Discard, io.Discard); res.Status != 0 {
			t.Fatalf("accept-new run: %+v", res.Hosts)
		}
		data, _ := os.ReadFile(kh)
		if !strings.Contains(string(data), "["+h.ip+"]:") {
			t.Errorf("known_hosts after accept-new: %q", data)
		}
		opts.AcceptNew = false
		if res, _ = Run(context.Background(), opts, "x", io.Discard, io.Discard); res.Status != 0 {
			t.Errorf("recorded key not trusted: %+v", res.Hosts)
		}
	})
	t.Run("caller-supplied host key", func(t *testing.T) {
		opts := c.options()
		opts.KnownHostsFiles = nil
		good := string(ssh.MarshalAuthorizedKey(h.key.PublicKey()))
		opts.Targets[0].HostKeys = []string{good}
		if res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard); res.Status != 0 {
			t.Errorf("published key not trusted: %+v", res.Hosts)
		}
		opts.Targets[0].HostKeys = []string{string(ssh.MarshalAuthorizedKey(other.PublicKey()))}
		res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard)
		if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, "does not match the published host key") {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("published key pinned on first use, a changed one refused", func(t *testing.T) {
		opts := c.options()
		opts.KnownHostsFiles = nil
		pin := filepath.Join(t.TempDir(), "known_hosts", "cluster-uuid")
		good := string(ssh.MarshalAuthorizedKey(h.key.PublicKey()))
		opts.Targets[0].HostKeys, opts.Targets[0].PinFile = []string{good}, pin
		if res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard); res.Status != 0 {
			t.Fatalf("first use: %+v", res.Hosts)
		}
		data, err := os.ReadFile(pin)
		if want := knownhosts.Line([]string{knownhosts.Normalize(addr)}, h.key.PublicKey()) + "\n"; err != nil || string(data) != want {
			t.Fatalf("pin file %q (%v), want %q", data, err, want)
		}
		if fi, err := os.Stat(pin); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("pin file mode: %v %v", fi.Mode(), err)
		}
		// Pinned once: a second run adds nothing.
		if res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard); res.Status != 0 {
			t.Fatalf("second use: %+v", res.Hosts)
		}
		if again, _ := os.ReadFile(pin); string(again) != string(data) {
			t.Errorf("pin file grew: %q", again)
		}
		// The host's key changed since it was pinned, and clusterd publishes
		// the new one: the pin refuses it all the same.
		os.WriteFile(pin, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, other.PublicKey())+"\n"), 0o600)
		res, _ := Run(context.Background(), opts, "x", io.Discard, io.Discard)
		if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, "HOST KEY CHANGED for "+addr) || !strings.Contains(r.Error, pin+":1") {
			t.Errorf("changed key: %+v", r)
		}
		// Without published keys the pin file is not consulted nor written.
		opts.Targets[0].HostKeys = nil
		res, _ = Run(context.Background(), opts, "x", io.Discard, io.Discard)
		if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, "unknown host key") {
			t.Errorf("no published key: %+v", r)
		}
	})
	t.Run("insecure says so", func(t *testing.T) {
		opts := c.options()
		opts.KnownHostsFiles = nil
		opts.InsecureIgnoreHostKey = true
		var errOut bytes.Buffer
		res, _ := Run(context.Background(), opts, "x", io.Discard, &errOut)
		if res.Status != 0 || !strings.Contains(errOut.String(), "host keys are NOT verified") {
			t.Errorf("status %d stderr %q", res.Status, errOut.String())
		}
	})
}

func TestRunAuthRefused(t *testing.T) {
	c := newTestCluster(t, 1, func(int) glssh.Handler { return reply("", "", 0) })
	opts := c.options()
	_, pemBytes := newSigner(t)
	wrong := filepath.Join(t.TempDir(), "id_wrong")
	os.WriteFile(wrong, pemBytes, 0o600)
	opts.IdentityFiles = []string{wrong}
	res, err := Run(context.Background(), opts, "x", io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Hosts[0]; r.Status != StatusUnreachable || r.Error != "authentication as root refused: the server did not accept the one key offered (give the right key with -i FILE, or another --user)" {
		t.Errorf("got %+v", r)
	}
	// No key at all: say where keys come from.
	opts.IdentityFiles = nil
	res, _ = Run(context.Background(), opts, "x", io.Discard, io.Discard)
	if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, "authentication as root failed: no key to offer (give -i FILE") {
		t.Errorf("no key: %+v", r)
	}
	opts.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := Run(context.Background(), opts, "x", io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "identity file") {
		t.Errorf("missing -i file: %v", err)
	}
}

func TestRunSendsCommandVerbatim(t *testing.T) {
	c := newTestCluster(t, 1, func(int) glssh.Handler {
		return func(s glssh.Session) { io.WriteString(s, s.RawCommand()+"|"+s.User()) }
	})
	cmd := `echo "a  b" 'c $HOME' | grep -c x; exit 3`
	var out bytes.Buffer
	if _, err := Run(context.Background(), c.options(), cmd, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := strings.SplitN(out.String(), "\n", 2)[1]; got != cmd+"|root" {
		t.Errorf("server got %q, want %q", got, cmd+"|root")
	}
}

func TestRunHonoursSSHConfig(t *testing.T) {
	c := newTestCluster(t, 2, func(int) glssh.Handler {
		return func(s glssh.Session) { io.WriteString(s, s.User()+"\n") }
	})
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	// The key comes only from IdentityFile and the ports only from Port.
	cfg := fmt.Sprintf("Host %s\n  Port %d\n  User alice\nHost 127.50.4.*\n  IdentityFile %s\n  User bob\nHost %s\n  Port %d\n",
		c.hosts[0].ip, c.hosts[0].port, c.clientKey, c.hosts[1].ip, c.hosts[1].port)
	os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(cfg), 0o600)
	kh, _ := os.ReadFile(c.knownHosts)
	os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), kh, 0o600)
	opts := Options{Home: home, SSHConfigFile: filepath.Join(home, ".ssh", "config"),
		Targets: []Target{{Host: c.hosts[0].ip}, {Host: c.hosts[1].ip}}}
	var out bytes.Buffer
	res, err := Run(context.Background(), opts, "x", &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 0 || res.Hosts[0].Stdout != "alice\n" || res.Hosts[1].Stdout != "bob\n" {
		t.Errorf("status %d hosts %+v", res.Status, res.Hosts)
	}
}

func TestRunSSHConfigHostNameAlias(t *testing.T) {
	c := newTestCluster(t, 1, func(int) glssh.Handler { return reply("hi\n", "", 0) })
	h := c.hosts[0]
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	// Host patterns match the name given; HostName is where to connect,
	// and known_hosts is checked for that address.
	free := freeAddr(t, "127.50.4.43")
	cfg := fmt.Sprintf("Host web-1\n  HostName %s\n  Port %d\n  IdentityFile %s\nHost web-*\n  HostName 127.50.4.43\n  Port %d\n",
		h.ip, h.port, c.clientKey, free)
	os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(cfg), 0o600)
	opts := Options{Home: home, SSHConfigFile: filepath.Join(home, ".ssh", "config"), KnownHostsFiles: []string{c.knownHosts},
		Targets: []Target{{Host: "web-1"}}}
	var out bytes.Buffer
	res, err := Run(context.Background(), opts, "x", &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Hosts[0]; r.Status != StatusOK || r.Host != "web-1" || out.String() != StyleHostSSH.Banner("web-1")+"\nhi\n" {
		t.Errorf("alias run %+v\n%s", r, out.String())
	}
	// web-2 only matches the wildcard block: connection refused there.
	opts.Targets = []Target{{Host: "web-2"}}
	res, _ = Run(context.Background(), opts, "x", io.Discard, io.Discard)
	if r := res.Hosts[0]; r.Status != StatusUnreachable || !strings.Contains(r.Error, fmt.Sprintf("127.50.4.43:%d", free)) {
		t.Errorf("web-2: %+v", r)
	}
}

func TestCommandJSONAndUsage(t *testing.T) {
	c := newTestCluster(t, 2, func(i int) glssh.Handler { return reply(fmt.Sprintf("o%d\n", i), "e\n", i) })
	args := []string{"--hosts", c.hosts[0].target().String() + "," + c.hosts[1].target().String(),
		"-i", c.clientKey, "--known-hosts", c.knownHosts, "-o", "json", "echo hi"}
	var out, errOut bytes.Buffer
	code := Command{Style: StyleAllSSH}.Run(context.Background(), args, &out, &errOut)
	if code != 1 {
		t.Errorf("exit %d, want 1 (stderr %s)", code, errOut.String())
	}
	var doc struct {
		Data []struct {
			Host     string   `json:"host"`
			ExitCode int      `json:"exit_code"`
			Stdout   string   `json:"stdout"`
			Stderr   string   `json:"stderr"`
			Duration *float64 `json:"duration_seconds"`
			Error    *string  `json:"error"`
			Status   string   `json:"status"`
		} `json:"data"`
		Error  *string `json:"error"`
		Status int     `json:"status"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out.String())
	}
	if len(doc.Data) != 2 || doc.Status != 1 || doc.Error == nil || !strings.Contains(*doc.Error, "1 of 2 hosts failed") {
		t.Fatalf("doc %+v", doc)
	}
	d := doc.Data[1]
	if d.Host != c.hosts[1].ip || d.ExitCode != 1 || d.Stdout != "o1\n" || d.Stderr != "e\n" || d.Duration == nil || *d.Duration <= 0 || d.Error == nil || d.Status != "failed" {
		t.Errorf("host entry %+v", d)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fanuot", "4", "x"}, "unknown flag --fanuot (did you mean --fanout?)"},
		{[]string{"--hosts", "a"}, "missing command"},
		{[]string{"x"}, "no targets: give --hosts"},
		{[]string{"--hosts", "node[1-]", "x"}, `bad host range "node[1-]"`},
		{[]string{"--hosts", "a", "-o", "yml", "x"}, `unknown output format "yml": want text, json, yaml or csv`},
		{[]string{"--hosts", "a", "--connect-timeout", "soon", "x"}, "want a duration such as 5s"},
		{[]string{"--hosts", "a", "--accept-new", "--insecure-ignore-host-key", "x"}, "contradict"},
	} {
		errOut.Reset()
		code := Command{Style: StyleHostSSH}.Run(context.Background(), tc.args, io.Discard, &errOut)
		msg := errOut.String()
		if code != ExitUsage || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want one line containing %q", tc.args, code, msg, tc.want)
		}
	}
}

func TestCommandTargetSourceAndExclude(t *testing.T) {
	c := newTestCluster(t, 3, func(i int) glssh.Handler { return reply(fmt.Sprintf("%d\n", i), "", 0) })
	src := func(ctx context.Context, style Style) ([]Target, error) {
		if style != StyleAllSSH {
			return nil, fmt.Errorf("wrong style %v", style)
		}
		var ts []Target
		for _, h := range c.hosts {
			ts = append(ts, Target{Host: h.ip, Port: h.port, HostKeys: []string{string(ssh.MarshalAuthorizedKey(h.key.PublicKey()))}})
		}
		return ts, nil
	}
	cmd := Command{Style: StyleAllSSH, Source: src, Prepare: func(f *Flags) error {
		f.Home, f.SSHConfigFile, f.AgentSocket = "", "", ""
		f.IdentityFiles = append(f.IdentityFiles, c.clientKey)
		return nil
	}}
	var out bytes.Buffer
	code := cmd.Run(context.Background(), []string{"--exclude", c.hosts[1].ip, "hostname"}, &out, io.Discard)
	want := StyleAllSSH.Banner(c.hosts[0].ip) + "\n0\n" + StyleAllSSH.Banner(c.hosts[2].ip) + "\n2\n"
	if code != 0 || out.String() != want {
		t.Errorf("exit %d output:\n%s\nwant:\n%s", code, out.String(), want)
	}
}

// BenchmarkRun16 measures the client side of a 16-host run against
// in-process servers (handshake, auth, session, ordered output).
func BenchmarkRun16(b *testing.B) {
	c := newTestCluster(b, 16, func(int) glssh.Handler { return reply("host\n", "", 0) })
	opts := c.options()
	b.ResetTimer()
	for b.Loop() {
		res, err := Run(context.Background(), opts, "hostname", io.Discard, io.Discard)
		if err != nil || res.Status != 0 {
			b.Fatalf("%v %+v", err, res.Hosts)
		}
	}
}

func TestCommandInterruptExitsWithSummaryOnce(t *testing.T) {
	c := newTestCluster(t, 2, func(int) glssh.Handler {
		return func(s glssh.Session) {
			io.WriteString(s, "running\n")
			<-s.Context().Done()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	var errOut bytes.Buffer
	done := make(chan int)
	go func() {
		done <- Command{Style: StyleHostSSH}.Run(ctx, []string{"--hosts", c.hosts[0].target().String() + "," + c.hosts[1].target().String(),
			"-i", c.clientKey, "--known-hosts", c.knownHosts, "sleep 60"}, &out, &errOut)
	}()
	waitFor(t, "sessions running", func() bool { return strings.Contains(out.String(), "running") })
	cancel()
	if code := <-done; code != ExitCancelled {
		t.Errorf("exit %d, want %d", code, ExitCancelled)
	}
	if n := strings.Count(errOut.String(), "interrupted;"); n != 1 {
		t.Errorf("summary printed %d times:\n%s", n, errOut.String())
	}
}

func TestCommandHostsFileUserAndPort(t *testing.T) {
	c := newTestCluster(t, 3, func(i int) glssh.Handler {
		return func(s glssh.Session) { fmt.Fprintf(s, "%d %s\n", i, s.User()) }
	})
	// Two hosts with their own port; the third takes --port.
	file := filepath.Join(t.TempDir(), "hosts")
	body := fmt.Sprintf("# rack 1\n%s\n%s  # spare\n%s\n", c.hosts[0].target(), c.hosts[1].target(), c.hosts[2].ip)
	os.WriteFile(file, []byte(body), 0o600)
	base := []string{"--hosts-file", file, "-p", fmt.Sprint(c.hosts[2].port), "-i", c.clientKey, "--known-hosts", c.knownHosts}
	cmd := Command{Style: StyleAllSSH, Prepare: func(f *Flags) error {
		f.Home, f.SSHConfigFile, f.AgentSocket = "", "", ""
		return nil
	}}
	var out, errOut bytes.Buffer
	code := cmd.Run(context.Background(), append(base, "--user", "alice", "--exclude", "127.50.4.[12-13]", "whoami"), &out, &errOut)
	want := StyleAllSSH.Banner(c.hosts[0].ip) + "\n0 alice\n"
	if code != 0 || out.String() != want {
		t.Errorf("exit %d stderr %q output:\n%s\nwant:\n%s", code, errOut.String(), out.String(), want)
	}
	out.Reset()
	code = cmd.Run(context.Background(), append(base, "--exclude", c.hosts[0].ip, "whoami"), &out, &errOut)
	want = StyleAllSSH.Banner(c.hosts[1].ip) + "\n1 " + currentUser(t) + "\n" + StyleAllSSH.Banner(c.hosts[2].ip) + "\n2 " + currentUser(t) + "\n"
	if code != 0 || out.String() != want {
		t.Errorf("exit %d stderr %q output:\n%s\nwant:\n%s", code, errOut.String(), out.String(), want)
	}
	errOut.Reset()
	if code := cmd.Run(context.Background(), []string{"--hosts-file", filepath.Join(t.TempDir(), "none"), "x"}, io.Discard, &errOut); code != ExitUsage || !strings.Contains(errOut.String(), "hosts file: open ") {
		t.Errorf("missing hosts file: exit %d, stderr %q", code, errOut.String())
	}
}

func currentUser(t *testing.T) string {
	t.Helper()
	return DefaultOptions(StyleAllSSH).DefaultUser
}
