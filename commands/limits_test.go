package commands

import (
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/limits"
	"github.com/acli-dev/acli/manager/managertest"
)

// What clusterd refuses for its size is bad input: exit 2 with the field
// and the limit, never "refused" (5) nor a failure (1).
func TestOversizedInputIsUsageError(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	h := &harness{t: t, c: client.New(conn)}
	for _, s := range []struct{ line, stderr string }{
		{"vm.create web01 memory=1G description=" + strings.Repeat("d", 5000),
			"Error: description is 5000 bytes; at most 4096 are allowed\n"},
		{"vm.create web01 memory=1G description=" + strings.Repeat("d", 2<<20),
			"Error: the request is 2097174 bytes; clusterd accepts at most 1048576\n"},
		{"net.create vlan7 vswitch_name=" + strings.Repeat("v", 300),
			"Error: vswitch_name is 300 bytes; at most 256 are allowed\n"},
	} {
		code, out, errOut := h.run(strings.Fields(s.line)...)
		if code != client.ExitUsage || out != "" || errOut != s.stderr {
			t.Errorf("%.40s...: exit %d\nout: %q\nerr: %.200q\nwant: %q", s.line, code, out, errOut, s.stderr)
		}
	}
	if code, out, _ := h.run("vm.list"); code != 0 || strings.Contains(out, "web01") {
		t.Fatalf("a refused create left a VM: %s", out)
	}
}

// Following many tasks stays within clusterd's streams per connection: a
// power-on of 100 VMs (each task running for a while) completes.
func TestManyTasksFollowedWithinTheStreamCap(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3, Speed: 0.5, Limits: limits.Config{StreamsPerConn: maxWatches}})
	h := &harness{t: t, c: client.New(conn)}
	if code, _, errOut := h.run("vm.create", "v[001..100]", "memory=64M"); code != 0 {
		t.Fatalf("vm.create: exit %d: %s", code, errOut)
	}
	code, out, errOut := h.run("vm.on", "v*")
	if code != 0 || strings.Count(out, ": complete") != 100 {
		t.Fatalf("vm.on of 100 VMs: exit %d\nerr: %s\nout: %.2000s", code, errOut, out)
	}
}
