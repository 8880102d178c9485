package libvirtharness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// OVS is an Open vSwitch run for one test: ovsdb-server and ovs-vswitchd as
// child processes with their own run and database directory, in the
// test's network namespace. Its bridges use the userspace datapath
// (datapath_type=netdev), which needs no kernel module.
type OVS struct {
	Dir string // OVS_RUNDIR, OVS_DBDIR and the logs

	netns string
	procs []*exec.Cmd
}

var ovsBinaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "nsenter"}

// OVSAvailable reports why Open vSwitch cannot run here, or nil.
func OVSAvailable() error {
	for _, b := range ovsBinaries {
		if _, err := lookPath(b); err != nil {
			return fmt.Errorf("%w (apt-get install openvswitch-switch)", err)
		}
	}
	if _, err := os.Stat(ovsSchema); err != nil {
		return fmt.Errorf("no Open vSwitch schema: %w", err)
	}
	return nil
}

const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// StartOVS starts the daemons in network namespace netns (a path such as
// /run/netns/NAME; empty: this one) and waits until the database answers.
func StartOVS(ctx context.Context, netns string) (*OVS, error) {
	if err := OVSAvailable(); err != nil {
		return nil, err
	}
	// Short: the database socket's path must fit a sockaddr_un.
	dir, err := os.MkdirTemp("", "acli-ovs")
	if err != nil {
		return nil, err
	}
	o := &OVS{Dir: dir, netns: netns}
	db := filepath.Join(dir, "conf.db")
	if out, err := exec.CommandContext(ctx, "ovsdb-tool", "create", db, ovsSchema).CombinedOutput(); err != nil {
		o.Stop()
		return nil, fmt.Errorf("ovsdb-tool create: %v: %s", err, out)
	}
	if err := o.start("ovsdb-server", db, "--remote=punix:"+o.sock(), "--log-file="+filepath.Join(dir, "ovsdb-server.log")); err != nil {
		o.Stop()
		return nil, err
	}
	for {
		_, err := o.Vsctl(ctx, "--no-wait", "init")
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			o.Stop()
			return nil, fmt.Errorf("ovsdb-server did not answer: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := o.start("ovs-vswitchd", "unix:"+o.sock(), "--disable-system", "--log-file="+filepath.Join(dir, "ovs-vswitchd.log")); err != nil {
		o.Stop()
		return nil, err
	}
	return o, nil
}

func (o *OVS) sock() string { return filepath.Join(o.Dir, "db.sock") }

// Env is the environment ovs-vsctl needs to find this switch's database:
// give it to the libvirtd that plugs VMs into its bridges.
func (o *OVS) Env() []string {
	return []string{"OVS_RUNDIR=" + o.Dir, "OVS_DBDIR=" + o.Dir, "OVS_LOGDIR=" + o.Dir}
}

func (o *OVS) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if o.netns != "" {
		args = append([]string{"--net=" + o.netns, name}, args...)
		name = "nsenter"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), o.Env()...)
	return cmd
}

func (o *OVS) start(name string, args ...string) error {
	cmd := o.command(context.Background(), name, args...)
	out, err := os.Create(filepath.Join(o.Dir, name+".out"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	out.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	o.procs = append(o.procs, cmd)
	return nil
}

// Vsctl runs ovs-vsctl against this switch and returns its output.
func (o *OVS) Vsctl(ctx context.Context, args ...string) (string, error) {
	out, err := o.command(ctx, "ovs-vsctl", append([]string{"--timeout=20"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovs-vsctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// AddBridge adds a userspace-datapath bridge and waits until ovs-vswitchd
// has made it.
func (o *OVS) AddBridge(ctx context.Context, name string) error {
	_, err := o.Vsctl(ctx, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
	return err
}

// Stop ends the daemons (by PID, newest first) and removes the directory.
func (o *OVS) Stop() error {
	var errs []error
	for i := len(o.procs) - 1; i >= 0; i-- {
		p := o.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
			<-done
			errs = append(errs, fmt.Errorf("%s ignored SIGTERM", filepath.Base(p.Path)))
		}
	}
	o.procs = nil
	errs = append(errs, os.RemoveAll(o.Dir))
	return errors.Join(errs...)
}
