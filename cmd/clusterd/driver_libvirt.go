package main

import (
	"fmt"
	flag "github.com/spf13/pflag"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/acli-dev/acli/manager/driver/libvirt"
)

// libvirtOptions are the settings of --driver libvirt.
type libvirtOptions struct {
	clusterName      string
	heartbeat        time.Duration
	shutdownTimeout  time.Duration
	migrationTimeout time.Duration
	storageDir       string
}

func addLibvirtFlags(fs *flag.FlagSet) *libvirtOptions {
	o := &libvirtOptions{}
	fs.StringVar(&o.clusterName, "cluster-name", "acli-libvirt", "name of a new libvirt cluster (hosts join it with host.add)")
	fs.DurationVar(&o.heartbeat, "libvirt-heartbeat", time.Second, "how often each libvirt host is probed; --heartbeat-misses unanswered probes mark it down")
	fs.DurationVar(&o.shutdownTimeout, "libvirt-shutdown-timeout", 60*time.Second, "how long vm.shutdown waits for the guest (ACPI) before powering it off")
	fs.DurationVar(&o.migrationTimeout, "libvirt-migration-timeout", 0, "abort a live migration still running after this long, leaving the VM on its source (0: no limit)")
	fs.StringVar(&o.storageDir, "libvirt-storage-dir", "", "directory every host reaches at the same path, holding the storage containers' vDisks (default DATA-DIR/containers)")
	return o
}

func (o *libvirtOptions) check() error {
	switch {
	case o.heartbeat < 10*time.Millisecond:
		return fmt.Errorf("--libvirt-heartbeat %v is too short; use at least 10ms, e.g. 1s", o.heartbeat)
	case o.shutdownTimeout <= 0:
		return fmt.Errorf("--libvirt-shutdown-timeout %v must be positive, e.g. 60s", o.shutdownTimeout)
	case o.migrationTimeout < 0:
		return fmt.Errorf("--libvirt-migration-timeout %v must not be negative; 0 means no limit", o.migrationTimeout)
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
	return libvirt.NewDriver(libvirt.Config{
		Storage:           libvirt.Storage{Dir: dir},
		ClusterName:       o.clusterName,
		HeartbeatInterval: o.heartbeat,
		ShutdownTimeout:   o.shutdownTimeout,
		MigrationTimeout:  o.migrationTimeout,
		Logger:            log,
	})
}
