package commands

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/client/clienttest"
	"github.com/acli-dev/acli/render"
)

var update = flag.Bool("update", false, "rewrite golden files")

const goldenDir = "../testdata/golden"

// harness runs acli commands in-process against a fake clusterd.
type harness struct {
	t    *testing.T
	fake *clienttest.Fake
	c    *client.Client
	tty  bool
	in   string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	fake := clienttest.New()
	return &harness{t: t, fake: fake, c: fake.Serve(t)}
}

// fixture is a small cluster: three hosts, two networks, three VMs.
func fixture(t *testing.T) *harness {
	h := newHarness(t)
	for _, line := range []string{
		"net.create vlan0",
		"net.create vlan100 vlan=100 ip_config=10.1.0.0/24",
		"vm.create web01 memory=4G num_vcpus=2 description=frontend",
		"vm.create web02 memory=2G",
		"vm.create db01 memory=16G num_vcpus=8 ha_priority=100",
		"vm.nic_create web01 network=vlan100 mac=50:6b:8d:00:00:01 ip=10.1.0.11",
		"vm.disk_create web01 create_size=20G",
		"vm.on web01 host=node-2",
		"net.create prod vlan=10 ip_config=10.2.0.1/24",
		"net.add_dhcp_pool prod start=10.2.0.50 end=10.2.0.99",
		"net.update_dhcp_dns prod servers=10.2.0.2,10.2.0.3 domains=example.local",
		"vm.nic_create web01 network=prod mac=50:6b:8d:00:00:0a ip=10.2.0.50 vlan_mode=kTrunked trunked_networks=20,30 connected=false",
	} {
		if code, _, errOut := h.run(strings.Fields(line)...); code != 0 {
			t.Fatalf("fixture %q: exit %d: %s", line, code, errOut)
		}
	}
	return h
}

func (h *harness) factory() (*Factory, *bytes.Buffer, *bytes.Buffer) {
	io, out, errb := render.Test(h.in, h.tty)
	f := &Factory{IO: io, Registry: Default(), Getenv: func(string) string { return "" },
		Connect: func(context.Context, client.Options) (*client.Client, error) { return h.c, nil },
		Now:     func() time.Time { return clienttest.Epoch.Add(time.Hour) }, Location: time.UTC}
	return f, out, errb
}

// run executes one acli command line and returns exit code, stdout, stderr.
func (h *harness) run(args ...string) (int, string, string) {
	h.t.Helper()
	f, out, errb := h.factory()
	code := f.Execute(context.Background(), args)
	return code, out.String(), errb.String()
}

// golden compares got with testdata/golden/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("missing golden %s (run go test -update): %v", path, err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}
