package commands

import (
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// What clusterd refuses for its size is bad input: exit 2 with the field
// and the limit, never "refused" (5) nor a failure (1).
func TestOversizedInputIsUsageError(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	h := &harness{t: t, c: client.New(conn)}
	for _, s := range []struct{ line, stderr string }{
		{"vm.create web01 memory=1G description=" + strings.Repeat("d", 2<<20),
			"Error: the request is 2097174 bytes; clusterd accepts at most 1048576\n"},
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
