package simssh

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Conn is one TCP socket as netstat and ss show it.
type Conn struct {
	Local, Peer string // ip:port; Peer "0.0.0.0:*" for a listener
	Listen      bool
}

// DataPath shows the iSCSI data path on the simulated machines: the
// sockets of each (the redirector and its sessions on a host, the target
// portals and their sessions on a CVM) and the CVM domain's power.
type DataPath interface {
	// Conns lists the sockets of machine t.
	Conns(t Target) []Conn
	// PowerCVM stops (virsh destroy) or starts (virsh start) the CVM of
	// the host at hostIP; domain is the name virsh was given.
	PowerCVM(hostIP, domain string, on bool) error
}

// SetDataPath makes netstat, ss and virsh destroy/start of the CVM
// domain work on the machines.
func (s *Server) SetDataPath(dp DataPath) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dp = dp
}

func (s *Server) dataPath() DataPath {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dp
}

// CVMDomain is the libvirt domain name of a host's CVM, as on AHV:
// NTNX-<block serial>-<node position>-CVM. The simulated block serial is
// taken from the host's UUID.
func CVMDomain(hostUUID string) string {
	serial := strings.ToUpper(strings.ReplaceAll(hostUUID, "-", ""))
	if len(serial) > 10 {
		serial = serial[:10]
	}
	return "NTNX-" + serial + "-A-CVM"
}

// ephemeral is a stable client port for a session, so repeated netstat
// runs agree.
func ephemeral(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return 32768 + int(h.Sum32()%28000)
}

// runNetstat: netstat -n[a][t][l] (-a adds listeners, -l shows only them).
func runNetstat(c *call) error {
	all, listen, ok := sockFlags(c, "netstat")
	if !ok {
		return exitError(1)
	}
	c.printf("Active Internet connections (%s)\n", map[bool]string{true: "servers and established", false: "w/o servers"}[all])
	if listen {
		c.printf("Active Internet connections (only servers)\n")
	}
	c.printf("%-5s %6s %6s %-23s %-23s %s\n", "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State")
	for _, s := range c.conns(all, listen) {
		st := "ESTABLISHED"
		if s.Listen {
			st = "LISTEN"
		}
		c.printf("%-5s %6d %6d %-23s %-23s %s\n", "tcp", 0, 0, s.Local, s.Peer, st)
	}
	return nil
}

// runSs: ss -t[n][a|l].
func runSs(c *call) error {
	all, listen, ok := sockFlags(c, "ss")
	if !ok {
		return exitError(1)
	}
	c.printf("%-6s %-6s %-6s %-22s %-22s\n", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port")
	for _, s := range c.conns(all, listen) {
		st, peer := "ESTAB", s.Peer
		if s.Listen {
			st, peer = "LISTEN", "0.0.0.0:*"
		}
		c.printf("%-6s %-6d %-6d %-22s %-22s\n", st, 0, 0, s.Local, peer)
	}
	return nil
}

// sockFlags reads the single-letter flags netstat and ss share here.
func sockFlags(c *call, name string) (all, listen, ok bool) {
	for _, a := range c.args[1:] {
		if !strings.HasPrefix(a, "-") || a == "-" {
			fmt.Fprintf(c.errw, "%s: unsupported argument %q (the simulated %s takes -t -n -a -l)\n", name, a, name)
			return false, false, false
		}
		for _, f := range a[1:] {
			switch f {
			case 'a':
				all = true
			case 'l':
				listen = true
			case 't', 'n', 'p', 'e', 'u', 'w':
			default:
				fmt.Fprintf(c.errw, "%s: invalid option -- '%c' (the simulated %s takes -t -n -a -l)\n", name, f, name)
				return false, false, false
			}
		}
	}
	return all, listen, true
}

func (c *call) conns(all, listen bool) []Conn {
	if c.m.dp == nil {
		return nil
	}
	out := slices.DeleteFunc(c.m.dp.Conns(c.m.t), func(s Conn) bool {
		if listen {
			return !s.Listen
		}
		return s.Listen && !all
	})
	return out
}

// Conns implements DataPath from the manager's model: a host's
// redirector listens on 127.0.0.1:3261 and each session of a VM it runs
// is a connection from the host to the CVM serving it; a CVM listens on
// 3261 and 3205 and holds each session it serves, from the VM's host or
// the external initiator.
func (c *Cluster) Conns(t Target) []Conn {
	c.mu.Lock()
	hosts, vms, vgs := c.hosts, c.vms, c.vgs
	c.mu.Unlock()
	if hosts == nil || vgs == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	ss, err := vgs.ListSessions(ctx, &acliv1.ListSessionsRequest{})
	if err != nil {
		c.log.Warn("simulated netstat: cannot list sessions", "err", err)
		return nil
	}
	hl, err := hosts.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil
	}
	hostIP := map[string]string{} // host UUID -> hypervisor IP
	for _, h := range hl.Hosts {
		hostIP[h.Uuid] = h.HypervisorIp
	}
	vmHost := map[string]string{} // VM UUID -> hypervisor IP
	if vl, err := vms.ListVms(ctx, &acliv1.ListVmsRequest{}); err == nil {
		for _, v := range vl.Vms {
			if v.PowerState == acliv1.PowerState_kOn {
				vmHost[v.Uuid] = hostIP[v.HostUuid]
			}
		}
	}
	var out []Conn
	if t.Kind == KindCVM {
		out = append(out, Conn{Local: fmt.Sprintf("%s:%d", t.IP, 3205), Peer: "0.0.0.0:*", Listen: true},
			Conn{Local: fmt.Sprintf("%s:%d", t.IP, 3261), Peer: "0.0.0.0:*", Listen: true})
	} else {
		out = append(out, Conn{Local: "127.0.0.1:3261", Peer: "0.0.0.0:*", Listen: true})
	}
	for _, s := range ss.Sessions {
		if s.State != acliv1.IscsiSessionState_kSessionActive {
			continue
		}
		key := fmt.Sprintf("%s/%s/%d", s.InitiatorIqn, s.VolumeGroupUuid, s.DiskIndex)
		from := externalAddr(s.InitiatorIqn)
		if s.VmUuid != "" {
			if from = vmHost[s.VmUuid]; from == "" {
				continue // the VM is off: no session
			}
		}
		client := fmt.Sprintf("%s:%d", from, ephemeral(key))
		server := fmt.Sprintf("%s:%d", s.CvmIp, s.Port)
		switch {
		case t.Kind == KindCVM && s.CvmIp == t.IP:
			out = append(out, Conn{Local: server, Peer: client})
		case t.Kind == KindHost && s.VmUuid != "" && from == t.IP:
			out = append(out, Conn{Local: client, Peer: server})
		}
	}
	return out
}

// externalAddr is where an external initiator connects from: the model
// knows its IQN only, so the simulated address is derived from it.
func externalAddr(iqn string) string {
	h := fnv.New32a()
	h.Write([]byte(iqn))
	return fmt.Sprintf("10.0.%d.%d", 100+h.Sum32()%100, 10+h.Sum32()/100%200)
}

// PowerCVM implements DataPath through the sim's fault injection.
func (c *Cluster) PowerCVM(hostIP, domain string, on bool) error {
	c.mu.Lock()
	sim := c.sim
	c.mu.Unlock()
	if sim == nil {
		return errors.New("no cluster manager to ask")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if on {
		_, err = sim.RecoverCvm(ctx, &acliv1.SimHostRequest{Host: hostIP})
	} else {
		_, err = sim.FailCvm(ctx, &acliv1.SimHostRequest{Host: hostIP})
	}
	if err != nil {
		return fmt.Errorf("domain '%s': %v", domain, status.Convert(err).Message())
	}
	return nil
}
