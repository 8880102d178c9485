package main

import (
	"context"
	"fmt"
	flag "github.com/spf13/pflag"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/driver/libvirt"
)

// libvirtOptions are the settings of --driver libvirt.
type libvirtOptions struct {
	clusterName      string
	heartbeat        time.Duration
	shutdownTimeout  time.Duration
	callTimeout      time.Duration
	migrationTimeout time.Duration
	storageDir       string
	dataPath         bool
	dataServicesIP   string
	cvmRestart       time.Duration
	bridges          bool
	fenceCommand     string
}

func addLibvirtFlags(fs *flag.FlagSet) *libvirtOptions {
	o := &libvirtOptions{}
	fs.StringVar(&o.clusterName, "cluster-name", "acli-libvirt", "name of a new libvirt cluster (hosts join it with host.add)")
	fs.DurationVar(&o.heartbeat, "libvirt-heartbeat", time.Second, "how often each libvirt host is probed; --heartbeat-misses unanswered probes mark it down")
	fs.DurationVar(&o.shutdownTimeout, "libvirt-shutdown-timeout", 60*time.Second, "how long vm.shutdown waits for the guest (ACPI) before powering it off")
	fs.DurationVar(&o.callTimeout, "libvirt-call-timeout", 2*time.Minute, "how long a call to a host's libvirtd may go unanswered (a guest stalled while starting, say) before the operation fails")
	fs.DurationVar(&o.migrationTimeout, "libvirt-migration-timeout", 0, "abort a live migration still running after this long, leaving the VM on its source (0: no limit)")
	fs.StringVar(&o.storageDir, "libvirt-storage-dir", "", "directory every host reaches at the same path, holding the storage containers' vDisks (default DATA-DIR/containers)")
	fs.BoolVar(&o.dataPath, "libvirt-datapath", false, "serve vDisks over iSCSI: a CVM storage service (tgtd) on each host's cvm_ip, which keeps serving while clusterd restarts (the next one adopts it by its recorded PID), and a login redirector on its hypervisor_ip:3261 (needs root and tgt)")
	fs.StringVar(&o.dataServicesIP, "libvirt-data-services-ip", "", "with --libvirt-datapath, the address of the data services portal (port 3260) for volume groups and external initiators")
	fs.DurationVar(&o.cvmRestart, "libvirt-cvm-restart", 10*time.Second, "with --libvirt-datapath, restart a crashed CVM storage service after this long (0: leave it down)")
	fs.BoolVar(&o.bridges, "libvirt-network-bridges", false, "plug VM NICs into their virtual switch's bridge where it is Open vSwitch (a port tagged with the network's VLAN), else into the bridge named for their network, acli-<network> (each host provides it), and let net.update_virtual_switch set the hosts' uplinks")
	fs.StringVar(&o.fenceCommand, "libvirt-fence-command", "", "fence agent HA runs (sh -c) for a down host whose VMs it cannot power off there; exit 0 once the host runs no guest (ACLI_FENCE_HOST, ACLI_FENCE_IP, ACLI_FENCE_URI name it)")
	return o
}

// fenceCommand runs the fence agent for a host: exit status 0 means the
// host runs no guest any more (powered off through its BMC, say).
func fenceCommand(command string) func(ctx context.Context, h *acliv1.Host) error {
	return func(ctx context.Context, h *acliv1.Host) error {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
		cmd.Env = append(os.Environ(), "ACLI_FENCE_HOST="+h.Name, "ACLI_FENCE_IP="+h.HypervisorIp, "ACLI_FENCE_URI="+h.LibvirtUri)
		out, err := cmd.CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if len(msg) > 200 {
				msg = "..." + msg[len(msg)-200:]
			}
			if msg != "" {
				return fmt.Errorf("%v: %s", err, msg)
			}
			return err
		}
		return nil
	}
}

func (o *libvirtOptions) check() error {
	switch {
	case o.heartbeat < 10*time.Millisecond:
		return fmt.Errorf("--libvirt-heartbeat %v is too short; use at least 10ms, e.g. 1s", o.heartbeat)
	case o.shutdownTimeout <= 0:
		return fmt.Errorf("--libvirt-shutdown-timeout %v must be positive, e.g. 60s", o.shutdownTimeout)
	case o.callTimeout < time.Second:
		return fmt.Errorf("--libvirt-call-timeout %v is too short; use at least 1s, e.g. 2m", o.callTimeout)
	case o.migrationTimeout < 0:
		return fmt.Errorf("--libvirt-migration-timeout %v must not be negative; 0 means no limit", o.migrationTimeout)
	case o.dataServicesIP != "" && net.ParseIP(o.dataServicesIP) == nil:
		return fmt.Errorf("--libvirt-data-services-ip %q is not an IP address, e.g. 127.0.0.100", o.dataServicesIP)
	case o.dataServicesIP != "" && !o.dataPath:
		return fmt.Errorf("--libvirt-data-services-ip needs --libvirt-datapath")
	case o.cvmRestart < 0:
		return fmt.Errorf("--libvirt-cvm-restart %v must not be negative; 0 leaves a crashed CVM down", o.cvmRestart)
	}
	if o.dataPath {
		if err := datapath.Available(); err != nil {
			return fmt.Errorf("--libvirt-datapath: %v", err)
		}
	}
	return nil
}

func newLibvirtDriver(o *libvirtOptions, dataDir string, log *slog.Logger) *libvirt.Driver {
	dir := o.storageDir
	if dir == "" {
		dir = filepath.Join(dataDir, "containers")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	var dp *datapath.Config
	if o.dataPath {
		// The CVM targets belong to the hosts: they keep serving while
		// clusterd restarts, and the next clusterd adopts them.
		dp = &datapath.Config{Dir: filepath.Join(dataDir, "datapath"), RestartAfter: o.cvmRestart, KeepTargets: true}
	}
	var fence func(context.Context, *acliv1.Host) error
	if o.fenceCommand != "" {
		fence = fenceCommand(o.fenceCommand)
	}
	return libvirt.NewDriver(libvirt.Config{
		FenceHost:         fence,
		Storage:           libvirt.Storage{Dir: dir},
		DataPath:          dp,
		DataServicesIP:    o.dataServicesIP,
		NetworkBridges:    o.bridges,
		ClusterName:       o.clusterName,
		Dial:              libvirt.DialOptions{CallTimeout: o.callTimeout},
		HeartbeatInterval: o.heartbeat,
		ShutdownTimeout:   o.shutdownTimeout,
		MigrationTimeout:  o.migrationTimeout,
		Logger:            log,
	})
}
