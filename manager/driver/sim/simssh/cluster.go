package simssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// DefaultPort is the SSH port of simulated machines. Each machine has its
// own loopback address, so they can all use it; when it is taken on an
// address (another simulated cluster on the same addresses), that machine
// gets a free port instead, and the Host record says which.
const DefaultPort = 2222

// ClusterOptions configure a Cluster.
type ClusterOptions struct {
	// DataDir holds ssh/ (keys, shims); see New.
	DataDir string
	// Port is the preferred port on every address (DefaultPort when 0).
	Port int
	// State reports whether a host and its CVM are up, from the driver's
	// point of view (the truth about a failed machine, before the manager
	// has noticed). nil means always up.
	State func(hostUUID string) (hostUp, cvmUp bool)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Cluster serves SSH for every simulated hypervisor and CVM of a clusterd:
// it learns the hosts and VMs from clusterd's own API, and fills the SSH
// fields of the Host records that API returns (ports, host keys and their
// fingerprints), so acli can verify the machines it connects to.
type Cluster struct {
	srv   *Server
	port  int
	state func(string) (bool, bool)
	log   *slog.Logger

	mu      sync.Mutex
	hosts   acliv1.HostServiceClient
	vms     acliv1.VmServiceClient
	vgs     acliv1.VolumeGroupServiceClient
	sim     acliv1.SimServiceClient
	machine map[string]machine // by IP
}

type machine struct {
	hostUUID string
	kind     Kind
}

// NewCluster creates the keys under opts.DataDir/ssh; nothing is served
// until Start.
func NewCluster(opts ClusterOptions) (*Cluster, error) {
	c := &Cluster{port: opts.Port, state: opts.State, log: opts.Logger, machine: map[string]machine{}}
	if c.port == 0 {
		c.port = DefaultPort
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	srv, err := New(opts.DataDir, c.lookup)
	if err != nil {
		return nil, err
	}
	srv.SetAlive(c.alive)
	srv.SetDataPath(c)
	c.srv = srv
	return c, nil
}

// ClientKeyPath is the private key the machines accept (for acli -i, or
// ACLI_SSH_IDENTITY).
func (c *Cluster) ClientKeyPath() string { return c.srv.ClientKeyPath() }

// Start attaches the cluster to clusterd's API (a connection to the
// manager itself) and serves every host it lists. Hosts added later are
// served when the API first returns them.
func (c *Cluster) Start(ctx context.Context, api grpc.ClientConnInterface) error {
	c.mu.Lock()
	c.hosts = acliv1.NewHostServiceClient(api)
	c.vms = acliv1.NewVmServiceClient(api)
	c.vgs = acliv1.NewVolumeGroupServiceClient(api)
	c.sim = acliv1.NewSimServiceClient(api)
	hosts := c.hosts
	c.mu.Unlock()
	resp, err := hosts.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return fmt.Errorf("simssh: list hosts: %w", err)
	}
	var errs []error
	for _, h := range resp.Hosts {
		errs = append(errs, c.serveHost(h))
	}
	return errors.Join(errs...)
}

// Close stops every server.
func (c *Cluster) Close() error { return c.srv.Close() }

// Fill sets h's SSH fields from the machines served for it, serving them
// first if h is new.
func (c *Cluster) Fill(h *acliv1.Host) {
	if h == nil {
		return
	}
	if err := c.serveHost(h); err != nil {
		c.log.Warn("simulated SSH unavailable", "host", h.Name, "err", err)
	}
	if ip := h.HypervisorIp; ip != "" {
		if p := c.srv.Port(ip); p != 0 {
			h.SshPort = int32(p)
			if k, err := c.srv.HostKey(ip); err == nil {
				h.SshHostKey, h.SshHostKeyFingerprint = k.AuthorizedKey, k.Fingerprint
			}
		}
	}
	if ip := h.CvmIp; ip != "" {
		if p := c.srv.Port(ip); p != 0 {
			h.CvmSshPort = int32(p)
			if k, err := c.srv.HostKey(ip); err == nil {
				h.CvmSshHostKey, h.CvmSshHostKeyFingerprint = k.AuthorizedKey, k.Fingerprint
			}
		}
	}
}

// UnaryInterceptor fills the SSH fields of the hosts in GetHost and
// ListHosts answers. SSH endpoints are facts of this process (ports can
// differ between runs), so they are added on the way out rather than
// stored in the model.
func (c *Cluster) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return resp, err
		}
		switch r := resp.(type) {
		case *acliv1.Host:
			c.Fill(r)
		case *acliv1.ListHostsResponse:
			for _, h := range r.Hosts {
				c.Fill(h)
			}
		}
		return resp, err
	}
}

// serveHost serves h's hypervisor and CVM addresses unless already served.
func (c *Cluster) serveHost(h *acliv1.Host) error {
	var errs []error
	for _, t := range []Target{
		{IP: h.HypervisorIp, Name: h.Name, Kind: KindHost},
		{IP: h.CvmIp, Name: "NTNX-" + h.Name + "-CVM", Kind: KindCVM, HostIP: h.HypervisorIp},
	} {
		if t.IP == "" {
			continue
		}
		c.mu.Lock()
		_, done := c.machine[t.IP]
		if !done {
			c.machine[t.IP] = machine{hostUUID: h.Uuid, kind: t.Kind}
		}
		c.mu.Unlock()
		if done {
			continue
		}
		if err := c.serve(t); err != nil {
			c.mu.Lock()
			delete(c.machine, t.IP)
			c.mu.Unlock()
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serve listens on the preferred port, else on a free one.
func (c *Cluster) serve(t Target) error {
	t.Port = c.port
	err := c.srv.Serve([]Target{t})
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Port = 0
		if err = c.srv.Serve([]Target{t}); err == nil {
			c.log.Warn("simulated SSH port taken; using a free one", "ip", t.IP, "wanted", c.port, "port", c.srv.Port(t.IP))
		}
	}
	return err
}

func (c *Cluster) alive(t Target) bool {
	c.mu.Lock()
	m, ok := c.machine[t.IP]
	c.mu.Unlock()
	if !ok || c.state == nil {
		return ok
	}
	hostUp, cvmUp := c.state(m.hostUUID)
	if m.kind == KindCVM {
		return hostUp && cvmUp
	}
	return hostUp
}

// lookupTimeout bounds the model query made when a session starts.
const lookupTimeout = 2 * time.Second

// lookup answers virsh list from the manager's model: the VMs it places
// on the host, running ones numbered like libvirt domain IDs.
func (c *Cluster) lookup(hostIP string) []VMInfo {
	c.mu.Lock()
	vms := c.vms
	c.mu.Unlock()
	if vms == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	resp, err := vms.ListVms(ctx, &acliv1.ListVmsRequest{Host: hostIP})
	if err != nil {
		c.log.Warn("simulated virsh: cannot list VMs", "host", hostIP, "err", err)
		return nil
	}
	list := resp.Vms
	// IDs follow names, so they stay put while the set of VMs does.
	sort.SliceStable(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	out := make([]VMInfo, 0, len(list)+1)
	id := 0
	// The CVM is a domain of its host, started first, as on AHV.
	if h := c.hostByIP(ctx, hostIP); h != nil && h.CvmIp != "" {
		cvm := VMInfo{Name: CVMDomain(h.Uuid), State: "shut off"}
		up := h.CvmState == acliv1.CvmState_kCvmUp
		if c.state != nil {
			hostUp, cvmUp := c.state(h.Uuid)
			up = hostUp && cvmUp
		}
		if up {
			id++
			cvm.ID, cvm.State = id, "running"
		}
		out = append(out, cvm)
	}
	for _, v := range list {
		info := VMInfo{Name: v.Name, State: "shut off"}
		switch v.PowerState {
		case acliv1.PowerState_kOn:
			info.State = "running"
		case acliv1.PowerState_kPaused:
			info.State = "paused"
		}
		if info.State != "shut off" {
			id++
			info.ID = id
		}
		out = append(out, info)
	}
	return out
}

// hostByIP is the host record whose hypervisor IP is ip, or nil.
func (c *Cluster) hostByIP(ctx context.Context, ip string) *acliv1.Host {
	c.mu.Lock()
	hosts := c.hosts
	c.mu.Unlock()
	resp, err := hosts.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil
	}
	for _, h := range resp.Hosts {
		if h.HypervisorIp == ip {
			return h
		}
	}
	return nil
}

// SelfAddr turns a listen address into one to dial: an unspecified IP
// (0.0.0.0, ::) becomes loopback.
func SelfAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}
