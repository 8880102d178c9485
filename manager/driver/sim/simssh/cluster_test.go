package simssh

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/fanout"
	"github.com/acli-dev/acli/manager/managertest"
)

// startCluster runs a real manager with the sim driver and serves its
// machines; hosts come back through the interceptor, as acli sees them.
func startCluster(t *testing.T) (*Cluster, *managertest.Harness, func() []*acliv1.Host) {
	t.Helper()
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, err := NewCluster(ClusterOptions{DataDir: t.TempDir(), State: func(id string) (bool, bool) {
		up, cvmUp, _ := h.Driver.HostState(id)
		return up, cvmUp
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(context.Background(), h.Conn); err != nil {
		t.Fatal(err)
	}
	hosts := acliv1.NewHostServiceClient(h.Conn)
	list := func() []*acliv1.Host {
		resp, err := c.UnaryInterceptor()(context.Background(), &acliv1.ListHostsRequest{}, &grpc.UnaryServerInfo{},
			func(ctx context.Context, req any) (any, error) {
				return hosts.ListHosts(ctx, req.(*acliv1.ListHostsRequest))
			})
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*acliv1.ListHostsResponse).Hosts
	}
	return c, h, list
}

func fanoutRun(t *testing.T, c *Cluster, hosts []*acliv1.Host, cvm bool, cmd string) fanout.Result {
	t.Helper()
	opts := fanout.Options{IdentityFiles: []string{c.ClientKeyPath()}, DefaultUser: "root", ConnectTimeout: 5 * time.Second}
	for _, h := range hosts {
		tg := fanout.Target{Host: h.HypervisorIp, Port: int(h.SshPort), HostKeys: []string{h.SshHostKey}}
		if cvm {
			tg = fanout.Target{Host: h.CvmIp, Port: int(h.CvmSshPort), HostKeys: []string{h.CvmSshHostKey}}
		}
		opts.Targets = append(opts.Targets, tg)
	}
	res, err := fanout.Run(context.Background(), opts, cmd, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func waitTask(t *testing.T, conn grpc.ClientConnInterface, task *acliv1.Task, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	tasks := acliv1.NewTaskServiceClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := tasks.GetTask(context.Background(), &acliv1.GetTaskRequest{Uuid: task.Uuid})
		if err != nil {
			t.Fatal(err)
		}
		switch got.Status {
		case acliv1.TaskStatus_kSucceeded:
			return
		case acliv1.TaskStatus_kFailed, acliv1.TaskStatus_kAborted:
			t.Fatalf("task %s: %v", got.Operation, got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s", got.Operation, got.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterPublishesVerifiedEndpointsAndVirshList(t *testing.T) {
	c, h, list := startCluster(t)
	vms := acliv1.NewVmServiceClient(h.Conn)
	task, err := vms.CreateVm(context.Background(), &acliv1.CreateVmRequest{Name: "db01", MemoryBytes: 1 << 30})
	waitTask(t, h.Conn, task, err)
	task, err = vms.SetPowerState(context.Background(), &acliv1.SetPowerStateRequest{Vm: "db01", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"})
	waitTask(t, h.Conn, task, err)

	hosts := list()
	for _, hh := range hosts {
		k, err := c.srv.HostKey(hh.HypervisorIp)
		if err != nil {
			t.Fatal(err)
		}
		if hh.SshPort == 0 || hh.SshHostKey != k.AuthorizedKey || hh.SshHostKeyFingerprint != k.Fingerprint ||
			hh.CvmSshPort == 0 || hh.CvmSshHostKey == "" || hh.CvmSshHostKey == hh.SshHostKey {
			t.Fatalf("host %s endpoints not filled: %+v", hh.Name, hh)
		}
	}
	res := fanoutRun(t, c, hosts, false, "hostname; virsh list --name")
	for i, want := range []string{"h1\n%s\n\n", "h2\n%s\ndb01\n\n", "h3\n%s\n\n"} {
		want = fmt.Sprintf(want, CVMDomain(hosts[i].Uuid))
		if r := res.Hosts[i]; r.Status != fanout.StatusOK || r.Stdout != want {
			t.Errorf("host %d: %s %q, want %q (%s)", i, r.Status, r.Stdout, want, r.Error)
		}
	}
	res = fanoutRun(t, c, hosts, true, "hostname")
	if r := res.Hosts[1]; r.Status != fanout.StatusOK || r.Stdout != "NTNX-h2-CVM\n" {
		t.Errorf("cvm: %+v", r)
	}
}

func TestClusterFailedMachinesDropConnections(t *testing.T) {
	c, h, list := startCluster(t)
	hosts := list()
	if _, err := h.Driver.FailCvm(hosts[0].Uuid); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Driver.FailHost(hosts[2].Uuid); err != nil {
		t.Fatal(err)
	}
	status := func(res fanout.Result) string {
		var s []string
		for _, r := range res.Hosts {
			s = append(s, string(r.Status))
		}
		return strings.Join(s, " ")
	}
	if got := status(fanoutRun(t, c, hosts, false, "true")); got != "ok ok unreachable" {
		t.Errorf("hypervisors: %s", got)
	}
	if got := status(fanoutRun(t, c, hosts, true, "true")); got != "unreachable ok unreachable" {
		t.Errorf("CVMs: %s", got)
	}
	if _, err := h.Driver.RecoverHost(hosts[2].Uuid); err != nil {
		t.Fatal(err)
	}
	if got := status(fanoutRun(t, c, hosts, false, "true")); got != "ok ok ok" {
		t.Errorf("after recovery: %s", got)
	}
}

// Two clusters on the same addresses (parallel tests, a demo beside a
// test run): the second finds DefaultPort taken and serves on free ports,
// and each cluster's records name its own ports.
func TestClustersShareAddressesOnDifferentPorts(t *testing.T) {
	c1, _, list1 := startCluster(t)
	c2, _, list2 := startCluster(t)
	h1, h2 := list1(), list2()
	for i := range h1 {
		a, b := h1[i], h2[i]
		if a.HypervisorIp != b.HypervisorIp || a.CvmIp != b.CvmIp {
			t.Fatalf("clusters use different addresses: %s/%s vs %s/%s", a.HypervisorIp, a.CvmIp, b.HypervisorIp, b.CvmIp)
		}
		if a.SshPort == 0 || b.SshPort == 0 || a.SshPort == b.SshPort || a.CvmSshPort == b.CvmSshPort {
			t.Errorf("%s: ports %d/%d and %d/%d", a.Name, a.SshPort, a.CvmSshPort, b.SshPort, b.CvmSshPort)
		}
	}
	for i, run := range []struct {
		c     *Cluster
		hosts []*acliv1.Host
	}{{c1, h1}, {c2, h2}} {
		for _, cvm := range []bool{false, true} {
			if res := fanoutRun(t, run.c, run.hosts, cvm, "hostname"); res.Status != 0 {
				t.Errorf("cluster %d (cvm %v): %+v", i+1, cvm, res.Hosts)
			}
		}
	}
	// A cluster's key does not open the other's machines.
	if res := fanoutRun(t, c1, h2, false, "true"); res.Hosts[0].Status != fanout.StatusUnreachable {
		t.Errorf("cluster 1's key on cluster 2: %+v", res.Hosts[0])
	}
}

// The data path as operators look at it: virsh list on a host shows its
// CVM domain; netstat and ss show the redirector listening on the host and
// each iSCSI session on the host that runs the VM and on the CVM that
// serves it (external initiators on 3205); virsh destroy of the CVM domain
// fails the CVM, its sessions move, and virsh start brings it back.
func TestClusterShowsTheDataPath(t *testing.T) {
	c, h, list := startCluster(t)
	ctx := context.Background()
	vgs := acliv1.NewVolumeGroupServiceClient(h.Conn)
	task, err := vgs.CreateVolumeGroup(ctx, &acliv1.CreateVolumeGroupRequest{Name: "data"})
	waitTask(t, h.Conn, task, err)
	for range 3 {
		task, err = vgs.CreateVgDisk(ctx, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", SizeBytes: 1 << 30})
		waitTask(t, h.Conn, task, err)
	}
	task, err = vgs.AttachExternal(ctx, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: "iqn.1994-05.com.redhat:client1"})
	waitTask(t, h.Conn, task, err)
	vms := acliv1.NewVmServiceClient(h.Conn)
	task, err = vms.CreateVm(ctx, &acliv1.CreateVmRequest{Name: "db01", MemoryBytes: 1 << 30})
	waitTask(t, h.Conn, task, err)
	task, err = vgs.AttachToVm(ctx, &acliv1.AttachToVmRequest{VolumeGroup: "data", Vm: "db01"})
	waitTask(t, h.Conn, task, err)
	task, err = vms.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: "db01", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"})
	waitTask(t, h.Conn, task, err)
	hosts := list()

	res := fanoutRun(t, c, hosts, true, "ss -tn | grep :3205 | wc -l")
	for i, r := range res.Hosts {
		if r.Status != fanout.StatusOK || r.Stdout != "1\n" {
			t.Errorf("CVM %d: %q sessions on 3205 (%s), want 1 each", i+1, r.Stdout, r.Error)
		}
	}
	res = fanoutRun(t, c, hosts[1:2], false, "netstat -na | grep 3261")
	out := res.Hosts[0].Stdout
	if !strings.Contains(out, "127.0.0.1:3261") || !strings.Contains(out, "LISTEN") ||
		strings.Count(out, hosts[1].CvmIp+":3261") != 3 || strings.Count(out, "ESTABLISHED") != 3 {
		t.Errorf("h2's netstat:\n%s", out)
	}
	res = fanoutRun(t, c, hosts[1:2], true, "ss -tn | grep :3261")
	if out := res.Hosts[0].Stdout; strings.Count(out, "ESTAB") != 3 || strings.Count(out, hosts[1].HypervisorIp+":") != 3 {
		t.Errorf("CVM of h2's ss:\n%s", out)
	}

	cvm := CVMDomain(hosts[0].Uuid)
	res = fanoutRun(t, c, hosts[:1], false, "virsh destroy "+cvm+"; virsh list --all | grep CVM; virsh destroy "+cvm)
	if r := res.Hosts[0]; r.Status != fanout.StatusFailed || !strings.HasPrefix(r.Stdout, "Domain '"+cvm+"' destroyed\n\n") ||
		!strings.Contains(r.Stdout, " -    "+cvm+"   shut off") || !strings.Contains(r.Stderr, "domain is not running") {
		t.Errorf("virsh destroy: %s %q %q", r.Status, r.Stdout, r.Stderr)
	}
	up, cvmUp, _ := h.Driver.HostState(hosts[0].Uuid)
	if !up || cvmUp {
		t.Fatalf("after virsh destroy of its CVM, h1 up=%v cvm up=%v", up, cvmUp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res = fanoutRun(t, c, hosts[1:], true, "ss -tn | grep -c :3205")
		if res.Hosts[0].Stdout+res.Hosts[1].Stdout == "2\n1\n" || res.Hosts[0].Stdout+res.Hosts[1].Stdout == "1\n2\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed CVM's session did not move: %q %q", res.Hosts[0].Stdout, res.Hosts[1].Stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res = fanoutRun(t, c, hosts[:1], false, "virsh start "+cvm+"; virsh list | grep CVM")
	if r := res.Hosts[0]; !strings.HasPrefix(r.Stdout, "Domain '"+cvm+"' started\n\n") || !strings.Contains(r.Stdout, cvm+"   running") {
		t.Errorf("virsh start: %s %q %q", r.Status, r.Stdout, r.Stderr)
	}
	res = fanoutRun(t, c, hosts[1:2], false, "virsh destroy db01")
	if r := res.Hosts[0]; r.Status != fanout.StatusFailed || !strings.Contains(r.Stderr, "acli vm.on/vm.off") {
		t.Errorf("virsh destroy of a user VM: %s %q %q", r.Status, r.Stdout, r.Stderr)
	}
	if _, cvmUp, _ := h.Driver.HostState(hosts[0].Uuid); !cvmUp {
		t.Fatal("virsh start did not bring the CVM back")
	}
}
