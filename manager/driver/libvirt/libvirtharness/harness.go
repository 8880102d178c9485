// Package libvirtharness runs several real libvirtd "hosts" on one machine for tests.
//
// Each host is a privileged libvirtd in its own mount and UTS namespace (unshare -m -u) with
// per-host directories bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
// /var/log/libvirt and /var/cache/libvirt, so the daemons do not fight over pid files, state or
// sockets. Each host listens for unauthenticated TCP on its own loopback address (127.0.0.2, ...),
// has its own host_uuid (libvirt refuses to migrate to a host with the same UUID) and its own
// migration address and port range, and runs under `tini -s` so QEMU processes orphaned by a
// migration are reaped at once instead of stalling the next migration.
//
// Every QEMU a host's libvirtd starts is stopped by its PID (the pid files in the host's state
// dir) when the cluster stops, whether or not its daemon still runs; a cluster whose test
// binary died without stopping it (a test timeout) is stopped the same way by the next Start
// in any process (ReapOrphans).
//
// Only for tests: TCP without authentication, QEMU as root without a security driver.
package libvirtharness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/google/uuid"
)

// Options tunes a harness cluster. The zero value starts two hosts in a fresh temp directory.
type Options struct {
	Hosts        int           // number of hosts, default 2
	Dir          string        // base directory for per-host state, default a new temp dir (removed by Stop)
	StartTimeout time.Duration // per host, default 30s
	// NetNS, when set, is a network namespace (a path such as
	// /run/netns/NAME) the daemons and their QEMUs run in, so their tap
	// devices and bridges are the test's, never the machine's. Reach such a
	// host over its UnixURI: its TCP address is inside the namespace.
	NetNS string
	// Env is added to the daemons' environment, e.g. OVS_RUNDIR so the
	// ovs-vsctl libvirtd runs for Open vSwitch ports finds its database.
	Env []string
}

// Cluster is a set of running harness hosts.
type Cluster struct {
	Dir   string
	Hosts []*Host

	ownDir bool
	// owner is the cluster's entry in ownersDir, flocked while this process
	// owns the cluster; ownerPath is its name.
	owner     *os.File
	ownerPath string
}

// Host is one libvirtd "hypervisor host".
type Host struct {
	Index int    // 0-based position in the cluster
	Name  string // h1, h2, ...
	Addr  string // loopback address the daemon listens on and migrates to
	UUID  string // host_uuid
	Dir   string // per-host state directory

	// Socket is the daemon's read-write unix socket, reachable from outside its namespace.
	Socket string
	// MigrationPorts is the inclusive port range QEMU uses for incoming migrations.
	MigrationPorts [2]int
	// StartTime is how long the last Start took until the daemon answered an RPC.
	StartTime time.Duration

	netns   string   // Options.NetNS
	env     []string // Options.Env
	lock    *os.File // flock on the address, so parallel test binaries never share one
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	cpu     time.Duration
}

// CPUTime is the CPU time used by the host's daemons that have exited so far, including the
// QEMU processes they (through tini, a subreaper) reaped.
func (h *Host) CPUTime() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cpu
}

// CPUTime sums CPUTime over the hosts; call it after Stop.
func (c *Cluster) CPUTime() time.Duration {
	var d time.Duration
	for _, h := range c.Hosts {
		d += h.CPUTime()
	}
	return d
}

// TCPURI is the URI other daemons and clients use to reach this host.
func (h *Host) TCPURI() string { return "qemu+tcp://" + h.Addr + "/system" }

// UnixURI reaches this host over its unix socket.
func (h *Host) UnixURI() string { return "qemu+unix:///system?socket=" + h.Socket }

// Binaries the harness needs; libvirtd lives in sbin, which may be missing from PATH.
var required = []string{"libvirtd", "tini", "unshare", "qemu-system-x86_64", "mount"}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH (install it with .ci/libvirt-setup.sh)", name)
}

// Available reports why the harness cannot run here, or nil when it can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("libvirt harness needs root (privileged libvirtd, mount namespaces)")
	}
	for _, b := range required {
		if _, err := lookPath(b); err != nil {
			return err
		}
	}
	// The QEMU driver refuses to load without these, even when QEMU runs as root.
	for _, f := range []struct{ file, name string }{
		{"/etc/passwd", "libvirt-qemu"}, {"/etc/group", "kvm"}, {"/etc/group", "libvirt-qemu"},
	} {
		b, err := os.ReadFile(f.file)
		if err != nil || !strings.Contains("\n"+string(b), "\n"+f.name+":") {
			return fmt.Errorf("%s %q missing (run .ci/libvirt-setup.sh)", strings.TrimPrefix(f.file, "/etc/"), f.name)
		}
	}
	return nil
}

// Require skips the test when the harness cannot run. Under CI (CI set) a root machine that
// lacks the packages fails instead: there the setup script must have installed them.
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" && os.Geteuid() == 0 {
		t.Fatalf("libvirt harness unavailable under CI: %v", err)
	}
	t.Skipf("libvirt harness unavailable: %v", err)
}

// StartT starts n hosts for a test and stops them in t.Cleanup. It skips when unavailable.
func StartT(t testing.TB, n int) *Cluster {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Hosts: n})
	if err != nil {
		t.Fatalf("start libvirt hosts: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop libvirt hosts: %v", err)
		}
	})
	return c
}

// Start creates and starts a cluster of hosts, in parallel.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Hosts <= 0 {
		o.Hosts = 2
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	// Daemons and QEMUs of a test binary that died without Stop (a test
	// timeout) still run: stop them before starting more.
	ReapOrphans()
	c := &Cluster{Dir: o.Dir}
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "acli-libvirt-")
		if err != nil {
			return nil, err
		}
		c.Dir, c.ownDir = d, true
	}
	if err := c.register(); err != nil {
		if c.ownDir {
			os.RemoveAll(c.Dir)
		}
		return nil, err
	}
	// Bind-mount targets must exist; creating empty directories on the machine is harmless.
	for _, d := range mountTargets {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	for i := 0; i < o.Hosts; i++ {
		h, err := c.newHost(i)
		if err != nil {
			c.Stop()
			return nil, err
		}
		h.netns, h.env = o.NetNS, o.Env
		c.Hosts = append(c.Hosts, h)
	}
	errs := make([]error, len(c.Hosts))
	var wg sync.WaitGroup
	for i, h := range c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
			defer cancel()
			errs[i] = h.Start(sctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops every host (domains destroyed first) and removes the temp dir it created.
// What it could not stop is left recorded for the next Start's ReapOrphans.
func (c *Cluster) Stop() error {
	var errs []error
	for _, h := range c.Hosts {
		if err := h.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		}
		h.release()
	}
	if c.ownDir && len(errs) == 0 {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.owner != nil {
		if len(errs) == 0 {
			os.Remove(c.ownerPath)
		}
		c.owner.Close()
		c.owner = nil
	}
	return errors.Join(errs...)
}

// ownersDir holds one entry per live cluster: its state directory, under an
// flock the owning process holds until Stop or its death.
var ownersDir = filepath.Join(lockDir, "clusters")

// register records the cluster in ownersDir. The entry is written and
// locked under a temporary name, then renamed: a reaper never sees an
// entry that is not locked yet.
func (c *Cluster) register() error {
	if err := os.MkdirAll(ownersDir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(ownersDir, "new-*")
	if err != nil {
		return err
	}
	own := ""
	if c.ownDir {
		own = "own"
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	name := filepath.Join(ownersDir, strings.TrimPrefix(filepath.Base(f.Name()), "new-")+".owner")
	if _, err := fmt.Fprintf(f, "%s\n%s\n", c.Dir, own); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	c.owner, c.ownerPath = f, name
	return nil
}

var mountTargets = map[string]string{
	"etc":   "/etc/libvirt",
	"run":   "/run/libvirt",
	"lib":   "/var/lib/libvirt",
	"log":   "/var/log/libvirt",
	"cache": "/var/cache/libvirt",
}

const lockDir = "/tmp/acli-libvirtharness"

// claimAddr takes the first free loopback address from 127.0.0.2 on, held by an flock for as
// long as the host exists, so concurrently running test binaries never collide.
func claimAddr() (string, *os.File, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", nil, err
	}
	for last := 2; last < 255; last++ {
		addr := "127.0.0." + strconv.Itoa(last)
		f, err := os.OpenFile(filepath.Join(lockDir, addr+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return "", nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		// A daemon left over from a crashed run may still hold the port.
		if l, err := net.Listen("tcp", addr+":16509"); err == nil {
			l.Close()
			return addr, f, nil
		}
		f.Close()
	}
	return "", nil, errors.New("no free loopback address in 127.0.0.2-254 for a libvirt host")
}

func (c *Cluster) newHost(i int) (*Host, error) {
	addr, lock, err := claimAddr()
	if err != nil {
		return nil, err
	}
	last, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, '.')+1:])
	h := &Host{
		Index: i,
		Name:  fmt.Sprintf("h%d", i+1),
		Addr:  addr,
		UUID:  uuid.NewString(),
		Dir:   filepath.Join(c.Dir, fmt.Sprintf("h%d", i+1)),
		lock:  lock,
	}
	// 64 ports per address keeps every range inside 49152-65535.
	h.MigrationPorts = [2]int{49152 + (last-2)*64, 49152 + (last-2)*64 + 63}
	h.Socket = filepath.Join(h.Dir, "sock", "libvirt-sock")
	for _, sub := range []string{"etc", "run", "lib", "log", "cache", "sock"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, sub), 0o755); err != nil {
			lock.Close()
			return nil, err
		}
	}
	if err := h.writeConfig(); err != nil {
		lock.Close()
		return nil, err
	}
	seedCapsCache(h)
	return h, nil
}

// logSettings keeps libvirtd's log to warnings and errors; ACLI_LIBVIRTD_LOG_FILTERS (libvirt's
// log_filters, e.g. "1:qemu 3:*") raises it for the modules named, to see where a daemon stalls.
func logSettings() string {
	f := os.Getenv("ACLI_LIBVIRTD_LOG_FILTERS")
	if f == "" {
		return "log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n"
	}
	return fmt.Sprintf("log_filters = %q\nlog_outputs = \"1:file:/var/log/libvirt/libvirtd.log\"\n", f)
}

func (h *Host) writeConfig() error {
	daemon := fmt.Sprintf(`# written by libvirtharness: test host %s
listen_tls = 0
listen_tcp = 1
listen_addr = %q
auth_tcp = "none"
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_dir = %q
host_uuid = %q
max_clients = 200
%s`, h.Name, h.Addr, filepath.Dir(h.Socket), h.UUID, logSettings())
	qemu := fmt.Sprintf(`# written by libvirtharness: test host %s
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_address = %q
migration_host = %q
migration_port_min = %d
migration_port_max = %d
`, h.Name, h.Addr, h.Addr, h.MigrationPorts[0], h.MigrationPorts[1])
	if err := os.WriteFile(filepath.Join(h.Dir, "etc", "libvirtd.conf"), []byte(daemon), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.Dir, "etc", "qemu.conf"), []byte(qemu), 0o644)
}

// Start (re)starts the daemon and waits until it answers over TCP.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		select {
		case <-h.exited:
		default:
			return fmt.Errorf("%s already running", h.Name)
		}
	}
	libvirtd, err := lookPath("libvirtd")
	if err != nil {
		return err
	}
	tini, err := lookPath("tini")
	if err != nil {
		return err
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	fmt.Fprintf(&script, "hostname acli-%s 2>/dev/null || true\n", h.Name)
	for sub, target := range mountTargets {
		fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(filepath.Join(h.Dir, sub)), target)
	}
	fmt.Fprintf(&script, "exec %s -s -- %s --listen -f /etc/libvirt/libvirtd.conf -p %s\n",
		tini, libvirtd, shellQuote(h.pidFile()))

	out, err := os.OpenFile(filepath.Join(h.Dir, "daemon.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"unshare", "-m", "-u", "--propagation", "private", "sh", "-c", script.String()}
	if h.netns != "" {
		args = append([]string{"nsenter", "--net=" + h.netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if len(h.env) > 0 {
		cmd.Env = append(os.Environ(), h.env...)
	}
	// Own process group: a signal to the test binary's group must not take the daemons down mid-test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	os.Remove(h.Socket)
	os.Remove(h.pidFile())
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	exited := make(chan struct{})
	h.cmd, h.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		out.Close()
		h.mu.Lock()
		h.waitErr = err
		if st := cmd.ProcessState; st != nil {
			h.cpu += st.UserTime() + st.SystemTime()
		}
		h.mu.Unlock()
		close(exited)
	}()
	for {
		if err := h.ping(2 * time.Second); err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: libvirtd exited during start: %s", h.Name, tail(filepath.Join(h.Dir, "daemon.out")))
		case <-ctx.Done():
			h.killLocked()
			return fmt.Errorf("%s: libvirtd did not answer on %s: %w", h.Name, h.Addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	h.StartTime = time.Since(begin)
	return nil
}

func (h *Host) pidFile() string { return filepath.Join(h.Dir, "libvirtd.pid") }

// ping opens a real libvirt connection and asks for the library version:
// over TCP, or over the unix socket for a host in a network namespace.
func (h *Host) ping(timeout time.Duration) error {
	l := golibvirt.NewWithDialer(dialers.NewRemote(h.Addr, dialers.WithRemoteTimeout(timeout)))
	if h.netns != "" {
		l = golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(h.Socket), dialers.WithLocalTimeout(timeout)))
	}
	done := make(chan error, 1)
	go func() {
		if err := l.ConnectToURI(golibvirt.QEMUSystem); err != nil {
			done <- err
			return
		}
		_, err := l.ConnectGetLibVersion()
		l.Disconnect()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return errors.New("no answer")
	}
}

// Running reports whether the daemon process is alive.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// DaemonPID is libvirtd's own PID (a child of tini), or 0 when not running.
func (h *Host) DaemonPID() int {
	b, err := os.ReadFile(h.pidFile())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Kill SIGKILLs libvirtd, as a crash would. Its QEMU processes keep running, as they would on a
// real host; Stop reaps them.
func (h *Host) Kill() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if pid := h.DaemonPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return h.waitLocked(5 * time.Second)
}

// Stop destroys the host's running domains, then stops the daemon and any QEMU left over.
func (h *Host) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	if h.cmd != nil {
		select {
		case <-h.exited:
		default:
			// QEMU outlives its daemon: destroy domains while the daemon can still do it cleanly.
			if err := destroyAll(h.Socket); err != nil {
				errs = append(errs, fmt.Errorf("destroy domains: %w", err))
			}
			h.cmd.Process.Signal(syscall.SIGTERM) // tini forwards it to libvirtd
			if err := h.waitLocked(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := killQEMU(h); err != nil {
		errs = append(errs, err)
	}
	saveCapsCache(h)
	return errors.Join(errs...)
}

func (h *Host) killLocked() {
	if pid := h.DaemonPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
	}
	h.waitLocked(5 * time.Second)
}

func (h *Host) waitLocked(d time.Duration) error {
	if h.cmd == nil {
		return nil
	}
	exited := h.exited
	h.mu.Unlock()
	defer h.mu.Lock()
	select {
	case <-exited:
		return nil
	case <-time.After(d):
	}
	h.cmd.Process.Kill()
	if pid := h.DaemonPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-exited:
		return fmt.Errorf("%s: daemon did not exit within %v, killed", h.Name, d)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s: daemon did not exit even after SIGKILL", h.Name)
	}
}

func (h *Host) release() {
	if h.lock != nil {
		h.lock.Close()
		h.lock = nil
	}
}

// destroyAll destroys the daemon's running domains; go-libvirt calls have no deadline, so
// a daemon that does not answer in time is left to the SIGTERM and SIGKILL that follow.
func destroyAll(sock string) error {
	done := make(chan error, 1)
	go func() { done <- destroyAllNow(sock) }()
	select {
	case err := <-done:
		return err
	case <-time.After(destroyTimeout):
		return fmt.Errorf("libvirtd did not destroy its domains within %v", destroyTimeout)
	}
}

const destroyTimeout = 15 * time.Second

func destroyAllNow(sock string) error {
	l := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(2*time.Second)))
	if err := l.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		return err
	}
	defer l.Disconnect()
	doms, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range doms {
		if err := l.DomainDestroyFlags(d, 0); err != nil && !golibvirt.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killQEMU kills QEMU processes whose daemon is gone, by the pid files in the host's run dir,
// and returns once none of them runs.
func killQEMU(h *Host) error {
	if err := killAndWait(qemuPIDs(h), isQEMU); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	files, _ := filepath.Glob(filepath.Join(h.Dir, "run", "qemu", "*.pid"))
	for _, f := range files {
		os.Remove(f)
	}
	return nil
}

// killAndWait SIGKILLs pids (each checked by alive first) and waits until alive is false
// for all of them.
func killAndWait(pids []int, alive func(int) bool) error {
	for _, pid := range pids {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still runs 5 s after SIGKILL", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// isLibvirtd reports whether pid is a live libvirtd.
func isLibvirtd(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(exe) == "libvirtd"
}

// isDaemon reports whether pid is this host's libvirtd, started with its pid file: a stale
// pid file of a daemon long dead may name a PID reused since by another cluster's libvirtd
// (PIDs wrap at 32768 on a busy machine).
func (h *Host) isDaemon(pid int) bool {
	if !isLibvirtd(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && slices.Contains(strings.Split(string(b), "\x00"), h.pidFile())
}

// ReapOrphans stops the daemons and QEMUs of every cluster whose owning process died without
// Stop (a test binary killed by its timeout), by the pid files in the cluster's state
// directory, then removes the directory if the harness created it. A cluster whose owner
// still runs is never touched. It returns the PIDs it stopped.
func ReapOrphans() ([]int, error) {
	// Only renamed entries: a "new-" one may not be locked by its registrant
	// yet, and reaping it would pull it from under its rename.
	entries, _ := filepath.Glob(filepath.Join(ownersDir, "*.owner"))
	removeAbandoned(filepath.Join(ownersDir, "new-*"), time.Minute)
	var stopped []int
	var errs []error
	for _, e := range entries {
		pids, err := reap(e)
		stopped = append(stopped, pids...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return stopped, errors.Join(errs...)
}

// removeAbandoned removes registrations older than age that nobody holds:
// their process died between creating and renaming them.
func removeAbandoned(pattern string, age time.Duration) {
	names, _ := filepath.Glob(pattern)
	for _, n := range names {
		fi, err := os.Stat(n)
		if err != nil || time.Since(fi.ModTime()) < age {
			continue
		}
		f, err := os.OpenFile(n, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(n)
		}
		f.Close()
	}
}

func reap(entry string) ([]int, error) {
	f, err := os.OpenFile(entry, os.O_RDWR, 0)
	if err != nil {
		return nil, nil // reaped by another process meanwhile
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, nil // its owner runs
	}
	b, _ := io.ReadAll(f)
	dir, own, _ := strings.Cut(string(b), "\n")
	if dir == "" { // a registration that died before it was written
		os.Remove(entry)
		return nil, nil
	}
	var daemons, qemus []int
	hosts, _ := filepath.Glob(filepath.Join(dir, "h*"))
	for _, hd := range hosts {
		h := &Host{Name: filepath.Base(hd), Dir: hd}
		if pid := h.DaemonPID(); pid > 0 && h.isDaemon(pid) {
			daemons = append(daemons, pid)
		}
		qemus = append(qemus, qemuPIDs(h)...)
	}
	// The daemons first, so none starts or restarts anything meanwhile.
	err = errors.Join(killAndWait(daemons, isLibvirtd), killAndWait(qemus, isQEMU))
	if err != nil {
		return append(daemons, qemus...), fmt.Errorf("reap %s: %w", dir, err)
	}
	if strings.TrimSpace(own) == "own" {
		os.RemoveAll(dir)
	}
	os.Remove(entry)
	return append(daemons, qemus...), nil
}

// qemuPIDs lists the host's running QEMU processes, from the pid files in its run dir.
func qemuPIDs(h *Host) []int {
	var pids []int
	files, _ := filepath.Glob(filepath.Join(h.Dir, "run", "qemu", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		// Only a QEMU: a stale pid file must never make us kill an unrelated process.
		if isQEMU(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isQEMU reports whether pid is a live QEMU (a zombie has no executable).
func isQEMU(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.Contains(exe, "qemu-system")
}

// PowerOff is the harness's fence agent, the power cut a real cluster's agent makes through
// the machine's BMC: it SIGKILLs libvirtd and every QEMU of the host and returns nil only
// once none of them runs, which proves no guest of the host can write any more. Start boots
// the host again, with no guest running.
func (h *Host) PowerOff() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	pids := qemuPIDs(h)
	if pid := h.DaemonPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := h.waitLocked(5 * time.Second); err != nil {
		return err
	}
	if err := killAndWait(pids, isQEMU); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return killQEMU(h)
}

// The QEMU capabilities probe costs ~1.5 s per fresh daemon; the result depends only on the
// QEMU binary and libvirt version (libvirt re-validates it), so it is shared between runs.
var capsCacheDir = filepath.Join(lockDir, "qemu-capabilities")

func seedCapsCache(h *Host) {
	copyDir(capsCacheDir, filepath.Join(h.Dir, "cache", "qemu", "capabilities"))
}

func saveCapsCache(h *Host) {
	copyDir(filepath.Join(h.Dir, "cache", "qemu", "capabilities"), capsCacheDir)
}

func copyDir(from, to string) {
	files, _ := filepath.Glob(filepath.Join(from, "*.xml"))
	if len(files) == 0 {
		return
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// Write then rename: a parallel reader never sees half a file.
		tmp := filepath.Join(to, "."+filepath.Base(f)+strconv.Itoa(os.Getpid()))
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, filepath.Join(to, filepath.Base(f)))
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, _ := f.Stat()
	if st != nil && st.Size() > 2000 {
		f.Seek(-2000, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
