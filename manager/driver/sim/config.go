package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// MaxHosts bounds a simulated cluster.
const MaxHosts = 1000

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// Config is the shape of a simulated cluster, as read from --sim-config.
//
//	cluster_name: lab
//	redundancy_factor: 2
//	hosts: 4                 # or host_list, not both
//	cpu_cores: 32            # default per host
//	memory_gib: 256          # default per host
//	link_gbps: 10            # migration link
//	idle_dirty_rate_mbps: 2  # how fast a VM without its own rate dirties memory
//	addressing:              # optional; defaults mirror a real lab
//	  hypervisor_start: 127.20.0.21
//	  cvm_start: 127.20.0.31
//	  data_services_ip: 127.20.0.30
//	host_list:
//	  - {name: big1, cpu_cores: 64, memory_gib: 1024}
//	  - {name: gpu1, devices: [{kind: gpu, vendor: Nvidia, model: Tesla_M60, count: 2}]}
//	timing: {power_on: 1s, power_off: 200ms, shutdown: 2s, reboot: 2s, reset: 500ms}
type Config struct {
	ClusterName      string  `yaml:"cluster_name"`
	RedundancyFactor int     `yaml:"redundancy_factor"`
	Hosts            int     `yaml:"hosts"`
	CPUCores         int     `yaml:"cpu_cores"`
	MemoryGiB        int64   `yaml:"memory_gib"`
	LinkGbps         float64 `yaml:"link_gbps"`
	// IdleDirtyRateMBps is the dirty rate (MiB/s) of a VM whose record
	// gives none (Vm.dirty_rate_mbps 0): an idle guest.
	IdleDirtyRateMBps int64      `yaml:"idle_dirty_rate_mbps"`
	Addressing        Addressing `yaml:"addressing"`
	HostList          []HostSpec `yaml:"host_list"`
	Timing            Timing     `yaml:"timing"`
	// Speed divides every simulated duration (1 = real time). Set by --sim-speed.
	Speed float64 `yaml:"speed"`
}

// Addressing places the simulated hosts in 127.0.0.0/8.
type Addressing struct {
	// HypervisorStart is the first hypervisor IP; the others follow it.
	HypervisorStart string `yaml:"hypervisor_start"`
	// CvmStart is the first CVM IP.
	CvmStart string `yaml:"cvm_start"`
	// DataServicesIP is the cluster's iSCSI portal.
	DataServicesIP string `yaml:"data_services_ip"`
}

// HostSpec describes one host; zero fields take the cluster defaults.
type HostSpec struct {
	Name         string `yaml:"name"`
	HypervisorIP string `yaml:"hypervisor_ip"`
	CvmIP        string `yaml:"cvm_ip"`
	CPUCores     int    `yaml:"cpu_cores"`
	MemoryGiB    int64  `yaml:"memory_gib"`
	// Devices are the host's passthrough GPUs and PCIe devices.
	Devices []DeviceSpec `yaml:"devices"`
	devices []*acliv1.HostDevice
}

// Timing holds the simulated (unscaled) duration of each operation.
type Timing struct {
	PowerOn  time.Duration `yaml:"power_on"`
	PowerOff time.Duration `yaml:"power_off"`
	Shutdown time.Duration `yaml:"shutdown"`
	Reboot   time.Duration `yaml:"reboot"`
	Reset    time.Duration `yaml:"reset"`
	// Heartbeat is the interval between host heartbeats.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// Defaults of a simulated lab.
const (
	DefaultCores     = 32
	DefaultMemoryGiB = 256
	DefaultLinkGbps  = 10
	DefaultRF        = 2
	DefaultName      = "sim-cluster"
)

// DefaultTiming is what real AHV hosts roughly take.
var DefaultTiming = Timing{
	PowerOn:   time.Second,
	PowerOff:  200 * time.Millisecond,
	Shutdown:  2 * time.Second,
	Reboot:    2 * time.Second,
	Reset:     500 * time.Millisecond,
	Heartbeat: time.Second,
}

// ForHosts is the --sim N configuration.
func ForHosts(n int) Config { return Config{Hosts: n} }

// LoadConfig reads a --sim-config YAML file. Unknown keys are errors, so a
// misspelt key is reported rather than silently ignored.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("sim config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("sim config %s: %v", path, err)
	}
	return c, nil
}

// Resolved is a validated configuration with every host spelled out.
type Resolved struct {
	ClusterName       string
	RedundancyFactor  int
	DataServicesIP    string
	LinkGbps          float64
	IdleDirtyRateMBps int64
	Speed             float64
	Timing            Timing
	Hosts             []HostSpec
}

// Resolve applies defaults and validates the configuration.
func (c Config) Resolve() (Resolved, error) {
	r := Resolved{
		ClusterName:       c.ClusterName,
		RedundancyFactor:  c.RedundancyFactor,
		LinkGbps:          c.LinkGbps,
		IdleDirtyRateMBps: c.IdleDirtyRateMBps,
		Speed:             c.Speed,
		Timing:            c.Timing,
	}
	if r.ClusterName == "" {
		r.ClusterName = DefaultName
	}
	if r.RedundancyFactor == 0 {
		r.RedundancyFactor = DefaultRF
	}
	if r.RedundancyFactor != 2 && r.RedundancyFactor != 3 {
		return r, fmt.Errorf("sim config: redundancy_factor %d is invalid; use 2 or 3", r.RedundancyFactor)
	}
	if r.LinkGbps == 0 {
		r.LinkGbps = DefaultLinkGbps
	}
	if r.LinkGbps < 0 {
		return r, fmt.Errorf("sim config: link_gbps %v must be positive", r.LinkGbps)
	}
	if r.IdleDirtyRateMBps == 0 {
		r.IdleDirtyRateMBps = DefaultDirtyRateMBps
	}
	if r.IdleDirtyRateMBps < 0 {
		return r, fmt.Errorf("sim config: idle_dirty_rate_mbps %d must be positive, e.g. 2", r.IdleDirtyRateMBps)
	}
	if r.Speed == 0 {
		r.Speed = 1
	}
	if r.Speed < 0 {
		return r, fmt.Errorf("sim speed %v must be positive, e.g. 1 (real time) or 1000", r.Speed)
	}
	r.Timing = withDefaults(r.Timing)

	n := c.Hosts
	switch {
	case len(c.HostList) > 0 && c.Hosts > 0 && c.Hosts != len(c.HostList):
		return r, fmt.Errorf("sim config: hosts: %d disagrees with the %d entries of host_list; give one of them", c.Hosts, len(c.HostList))
	case len(c.HostList) > 0:
		n = len(c.HostList)
	case n <= 0:
		return r, fmt.Errorf("sim cluster needs at least 1 host (got %d), e.g. --sim 3", n)
	}
	if n > MaxHosts {
		return r, fmt.Errorf("sim cluster of %d hosts is too large; at most %d", n, MaxHosts)
	}
	if n < r.RedundancyFactor {
		return r, fmt.Errorf("sim cluster of %d hosts cannot have redundancy factor %d; use at least %d hosts", n, r.RedundancyFactor, r.RedundancyFactor)
	}

	hyp, cvm, err := addresses(c.Addressing, n)
	if err != nil {
		return r, err
	}
	r.DataServicesIP = c.Addressing.DataServicesIP
	if r.DataServicesIP == "" {
		r.DataServicesIP = "127.20.0.30"
	}
	if err := checkLoopback("data_services_ip", r.DataServicesIP); err != nil {
		return r, err
	}
	cores, mem := c.CPUCores, c.MemoryGiB
	if cores == 0 {
		cores = DefaultCores
	}
	if mem == 0 {
		mem = DefaultMemoryGiB
	}
	seenName := map[string]int{}
	seenIP := map[string]string{r.DataServicesIP: "data_services_ip"}
	for i := 0; i < n; i++ {
		var h HostSpec
		if i < len(c.HostList) {
			h = c.HostList[i]
		}
		if h.Name == "" {
			h.Name = fmt.Sprintf("h%d", i+1)
		}
		if h.HypervisorIP == "" {
			h.HypervisorIP = hyp[i]
		}
		if h.CvmIP == "" {
			h.CvmIP = cvm[i]
		}
		if h.CPUCores == 0 {
			h.CPUCores = cores
		}
		if h.MemoryGiB == 0 {
			h.MemoryGiB = mem
		}
		if h.CPUCores < 0 || h.MemoryGiB < 0 {
			return r, fmt.Errorf("sim config: host %s: cpu_cores and memory_gib must be positive", h.Name)
		}
		if h.devices, err = hostDevices(h.Name, h.Devices); err != nil {
			return r, err
		}
		if j, dup := seenName[h.Name]; dup {
			return r, fmt.Errorf("sim config: host name %s is used by hosts %d and %d", h.Name, j+1, i+1)
		}
		seenName[h.Name] = i
		for _, ip := range []struct{ field, v string }{{"hypervisor_ip", h.HypervisorIP}, {"cvm_ip", h.CvmIP}} {
			if err := checkLoopback(h.Name+" "+ip.field, ip.v); err != nil {
				return r, err
			}
			if other, dup := seenIP[ip.v]; dup {
				return r, fmt.Errorf("sim config: address %s of host %s is already used by %s", ip.v, h.Name, other)
			}
			seenIP[ip.v] = h.Name + " " + ip.field
		}
		r.Hosts = append(r.Hosts, h)
	}
	return r, nil
}

func withDefaults(t Timing) Timing {
	d := DefaultTiming
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.PowerOn, &d.PowerOn}, {&t.PowerOff, &d.PowerOff}, {&t.Shutdown, &d.Shutdown},
		{&t.Reboot, &d.Reboot}, {&t.Reset, &d.Reset}, {&t.Heartbeat, &d.Heartbeat},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

func checkLoopback(field, ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("sim config: %s %q is not an IPv4 address, e.g. 127.20.0.21", field, ip)
	}
	if !loopback.Contains(a) {
		return fmt.Errorf("sim config: %s %s is outside 127.0.0.0/8; simulated hosts live on loopback", field, ip)
	}
	return nil
}

// addresses returns n hypervisor and CVM IPs. With explicit starts they are
// consecutive (skipping .0 and .255). The default mirrors a real lab for the
// first nine hosts (hypervisors 127.20.0.21-29, CVMs 127.20.0.31-39 around
// the data services IP .30) and continues in 127.20.1-4.x (hypervisors) and
// 127.20.101-104.x (CVMs), 250 hosts per /24, for larger clusters.
func addresses(a Addressing, n int) (hyp, cvm []string, err error) {
	gen := func(field, start string, def func(i int) string) ([]string, error) {
		out := make([]string, n)
		if start == "" {
			for i := range out {
				out[i] = def(i)
			}
			return out, nil
		}
		ip, err := netip.ParseAddr(start)
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("sim config: addressing.%s %q is not an IPv4 address, e.g. 127.20.0.21", field, start)
		}
		if !loopback.Contains(ip) {
			return nil, fmt.Errorf("sim config: addressing.%s %s is outside 127.0.0.0/8; simulated hosts live on loopback", field, start)
		}
		for i := range out {
			for b := ip.As4(); b[3] == 0 || b[3] == 255; b = ip.As4() {
				ip = ip.Next()
			}
			if !loopback.Contains(ip) {
				return nil, fmt.Errorf("sim config: addressing.%s %s runs out of 127.0.0.0/8 after %d hosts", field, start, i)
			}
			out[i] = ip.String()
			ip = ip.Next()
		}
		return out, nil
	}
	hyp, err = gen("hypervisor_start", a.HypervisorStart, func(i int) string { return defaultIP(21, 1, i) })
	if err != nil {
		return nil, nil, err
	}
	cvm, err = gen("cvm_start", a.CvmStart, func(i int) string { return defaultIP(31, 101, i) })
	return hyp, cvm, err
}

func defaultIP(first, subnet, i int) string {
	if i < 9 {
		return fmt.Sprintf("127.20.0.%d", first+i)
	}
	j := i - 9
	return fmt.Sprintf("127.20.%d.%d", subnet+j/250, 1+j%250)
}
