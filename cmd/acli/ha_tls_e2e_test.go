package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/store/etcd/etcdtest"
)

// TestSecuredManagersForwardTheCaller: two managers on etcd with TLS and
// client certificates. The follower serves TLS, authenticates and
// authorizes each caller itself, and forwards over TLS with its manager
// certificate, so the leader acts for, records and audits the caller, not
// the follower. A client naming a caller itself is not believed.
func TestSecuredManagersForwardTheCaller(t *testing.T) {
	ec := etcdtest.Start(t, 1)
	octet := 1 + rand.IntN(254)
	ip := func(n int) string { return fmt.Sprintf("127.47.%d.%d", octet, 11+n) }
	dir := t.TempDir()
	if r := runCmd(t, exec.Command(filepath.Join(binDir, "clusterd"), "init", "--data-dir", dir, "--listen", ip(0)+":2030", "--hosts", ip(1))); r.code != 0 {
		t.Fatalf("clusterd init: %d %s%s", r.code, r.out, r.err)
	}
	dir2 := t.TempDir()
	if r := runCmd(t, exec.Command("cp", "-a", filepath.Join(dir, "pki"), dir2)); r.code != 0 {
		t.Fatalf("cp: %s", r.err)
	}
	c := &haCluster{etcd: ec}
	c.managers = []*manager{startManager(t, ip(0), ec.Endpoints(), "--data-dir", dir), startManager(t, ip(1), ec.Endpoints(), "--data-dir", dir2)}
	lead := c.leader(t, nil)
	follower := c.managers[0]
	if follower == lead {
		follower = c.managers[1]
	}
	faddr, _ := follower.state()
	laddr, _ := lead.state()
	s := secured{dir: dir, addr: faddr}

	wantExit(t, s.run(t, nil, "host.list"), 4, "clusterd at "+faddr+" requires TLS: give --cacert")
	if r := s.run(t, s.admin(), "vm.create", "web01", "memory=1G"); r.code != 0 {
		t.Fatalf("admin vm.create through the follower: %d %s%s", r.code, r.out, r.err)
	}
	r := s.run(t, s.admin(), "task.list", "include_completed=true")
	id := strings.Fields(strings.Split(r.out, "\n")[1])[0]
	if r := s.run(t, s.admin(), "-o", "block", "task.get", id); r.code != 0 || !strings.Contains(r.out, "Started by:   admin\n") {
		t.Fatalf("task.get through the follower: %d\n%s%s", r.code, r.out, r.err)
	}

	viewer := s.token(t, "viewer1", "viewer")
	as := []string{"ACLI_CACERT=" + s.ca(), "ACLI_TOKEN=" + viewer}
	if r := s.run(t, as, "vm.list"); r.code != 0 || !strings.Contains(r.out, "web01") {
		t.Fatalf("viewer vm.list through the follower: %d %s%s", r.code, r.out, r.err)
	}
	wantExit(t, s.run(t, as, "vm.on", "web01"), 4, "VmService/SetPowerState needs the operator role; viewer1 has viewer")

	// A viewer claiming to be a forwarded admin, to the leader and through
	// the follower: the claim is ignored.
	for _, addr := range []string{laddr, faddr} {
		cl, err := client.Dial(context.Background(), client.Options{Addr: addr, CACert: s.ca(), Token: viewer})
		if err != nil {
			t.Fatal(err)
		}
		ctx := metadata.AppendToOutgoingContext(context.Background(), "acli-forwarded-user", "admin", "acli-forwarded-role", "admin",
			"acli-forwarded-method", "certificate")
		_, err = cl.Vm.CreateVm(ctx, &acliv1.CreateVmRequest{Name: "spoof", MemoryBytes: 1 << 30})
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "viewer1 has viewer") {
			t.Errorf("forged forwarding to %s: %v", addr, err)
		}
		cl.Close()
	}

	// The leader's audit log names the callers, never the follower.
	r = s.run(t, s.admin(), "-o", "json", "audit.list", "limit=1000", "rpc=CreateVm")
	for _, w := range []string{`"principal":"admin"`, `"principal":"viewer1"`} {
		if r.code != 0 || !strings.Contains(strings.ReplaceAll(r.out, " ", ""), w) {
			t.Errorf("audit.list lacks %s: %d\n%s%s", w, r.code, r.out, r.err)
		}
	}
	if strings.Contains(r.out, `"principal": "clusterd"`) || strings.Contains(r.out, `"principal":"clusterd"`) {
		t.Errorf("the follower is audited as the caller:\n%s", r.out)
	}
}
