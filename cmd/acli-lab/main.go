// Command acli-lab brings up, on loopback, a whole cluster with its iSCSI
// data path: N libvirtd hosts, a clusterd managing them with
// --libvirt-datapath (one CVM storage service and one login redirector per
// host, the data services IP), the hosts added. It stays in the foreground
// and tears everything down, by PID, on Ctrl-C or SIGTERM.
//
//	acli-lab up [N] [--dir DIR] [--bin DIR]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// The lab's addresses: clusterd on .1, CVMs on .11 on, the data services
// IP on .100 (hosts take free 127.0.0.x addresses from the harness).
const labNet = "127.46.16."

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("acli-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "/tmp/acli-lab", "directory of the lab's state (emptied first)")
	bin := fs.String("bin", "bin", "directory holding acli and clusterd")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: acli-lab up [N] [--dir DIR] [--bin DIR]") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "up" || len(rest) > 2 {
		fs.Usage()
		return 2
	}
	n := 3
	if len(rest) == 2 {
		v, err := strconv.Atoi(rest[1])
		if err != nil || v < 1 || v > 8 {
			fmt.Fprintf(stderr, "acli-lab: %q hosts: give a number from 1 to 8, e.g. acli-lab up 3\n", rest[1])
			return 2
		}
		n = v
	}
	for _, check := range []func() error{datapath.Available, libvirtharness.Available} {
		if err := check(); err != nil {
			fmt.Fprintf(stderr, "acli-lab: %v\n", err)
			return 1
		}
	}
	abs, _ := filepath.Abs(*bin)
	l := &lab{dir: *dir, acli: filepath.Join(abs, "acli"), clusterd: filepath.Join(abs, "clusterd"), out: stdout}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := l.up(ctx, n)
	if err == nil {
		fmt.Fprintln(stdout, "lab up; Ctrl-C tears it down")
		<-ctx.Done()
	}
	if derr := l.down(); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		fmt.Fprintf(stderr, "acli-lab: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "lab down: every process stopped")
	return 0
}

type lab struct {
	dir, acli, clusterd string
	out                 io.Writer
	hosts               *libvirtharness.Cluster
	cd                  *exec.Cmd
	cdDone              chan error
	addr                string
}

func (l *lab) up(ctx context.Context, n int) error {
	for _, b := range []string{l.acli, l.clusterd} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s not built (make build)", b)
		}
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := libvirtharness.Start(sctx, libvirtharness.Options{Hosts: n, Dir: filepath.Join(l.dir, "hosts")})
	if err != nil {
		return err
	}
	l.hosts = c
	for _, h := range c.Hosts {
		fmt.Fprintf(l.out, "host %s: libvirtd pid %d on %s (%s)\n", h.Name, h.DaemonPID(), h.Addr, h.TCPURI())
	}

	port, err := freePort(labNet + "1")
	if err != nil {
		return err
	}
	l.addr = net.JoinHostPort(labNet+"1", strconv.Itoa(port))
	logf, err := os.Create(filepath.Join(l.dir, "clusterd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	l.cd = exec.Command(l.clusterd, "--data-dir", filepath.Join(l.dir, "clusterd"), "--listen", l.addr,
		"--driver", "libvirt", "--libvirt-datapath", "--libvirt-data-services-ip", labNet+"100")
	l.cd.Stdout, l.cd.Stderr = logf, logf
	l.cd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.cd.Start(); err != nil {
		return err
	}
	l.cdDone = make(chan error, 1)
	go func() { l.cdDone <- l.cd.Wait() }()
	fmt.Fprintf(l.out, "clusterd: pid %d on %s, log %s\n", l.cd.Process.Pid, l.addr, logf.Name())
	if err := l.waitClusterd(sctx); err != nil {
		return err
	}
	for i, h := range c.Hosts {
		cvm := labNet + strconv.Itoa(11+i)
		if out, err := l.acliRun(sctx, "host.add", h.Name, "hypervisor_ip="+h.Addr, "cvm_ip="+cvm, "libvirt_uri="+h.TCPURI()); err != nil {
			return fmt.Errorf("host.add %s: %v: %s", h.Name, err, out)
		}
		fmt.Fprintf(l.out, "host %s added: redirector %s:%d, CVM %s (ports %d, %d)\n", h.Name, h.Addr, datapath.PortLocal, cvm, datapath.PortLocal, datapath.PortExternal)
	}
	for _, pid := range children(l.cd.Process.Pid, "tgtd") {
		fmt.Fprintf(l.out, "CVM storage service: tgtd pid %d\n", pid)
	}
	fmt.Fprintf(l.out, "data services IP: %s:%d\n\n", labNet+"100", datapath.PortDSIP)
	fmt.Fprintf(l.out, "export ACLI_SERVER=%s\n", l.addr)
	fmt.Fprintf(l.out, "%s host.list            # the hosts and their CVMs\n", l.acli)
	fmt.Fprintf(l.out, "kill -9 <tgtd pid>   # a CVM crashes: its sessions move, it restarts after 10 s, they fail back\n")
	fmt.Fprintf(l.out, "ss -tn '( sport = :3261 or dport = :3261 or dport = :3205 )'   # the iSCSI sessions\n\n")
	return nil
}

func (l *lab) waitClusterd(ctx context.Context) error {
	for {
		if _, err := l.acliRun(ctx, "host.list"); err == nil {
			return nil
		}
		select {
		case err := <-l.cdDone:
			l.cdDone <- err
			return fmt.Errorf("clusterd exited (%v); see %s", err, filepath.Join(l.dir, "clusterd.log"))
		case <-ctx.Done():
			return fmt.Errorf("clusterd does not answer on %s: %w", l.addr, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *lab) acliRun(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, l.acli, args...)
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+l.addr, "HOME="+l.dir)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// down stops clusterd by its PID (with its redirectors), then the CVM
// services it leaves serving (by the PIDs it recorded), then the hosts'
// libvirtd and QEMU processes.
func (l *lab) down() error {
	var errs []error
	if l.cd != nil && l.cd.Process != nil {
		l.cd.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.cdDone:
		case <-time.After(30 * time.Second):
			l.cd.Process.Kill()
			<-l.cdDone
			errs = append(errs, errors.New("clusterd ignored SIGTERM for 30 s and was killed"))
		}
	}
	pids, err := datapath.StopRecorded(filepath.Join(l.dir, "clusterd", "datapath"))
	for _, pid := range pids {
		fmt.Fprintf(l.out, "CVM storage service: tgtd pid %d stopped\n", pid)
	}
	errs = append(errs, err)
	if l.hosts != nil {
		errs = append(errs, l.hosts.Stop())
	}
	return errors.Join(errs...)
}

// children lists the PIDs of pid's children running comm.
func children(pid int, comm string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, close := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(string(b[close+1:]))
		if string(b[open+1:close]) == comm && len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, p)
		}
	}
	return out
}

func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
