package commands

import (
	"strings"
	"testing"
)

// The grammar of scripts written for acli: name:uuid references, vm.create's
// defaults.
func TestACLIGrammar(t *testing.T) {
	h := fixture(t)
	const web01 = "00000000-0000-4000-8000-000000000005"
	for _, c := range []struct {
		line     string
		code     int
		out, err string
	}{
		{"vm.off web01:" + web01, 0, "VmPowerOff: pending\nVmPowerOff: complete\n", ""},
		{"vm.on web01:" + strings.ToUpper(web01), 0, "VmPowerOn: pending\nVmPowerOn: complete\n", ""},
		{"vm.off web02:" + web01, 3, "", `Error: VM "web02:` + web01 + `" not found: UUID ` + web01 + ` is VM "web01"` + "\n"},
		{"vm.off web01:00000000-0000-4000-8000-00000000dead", 3, "", `Error: VM "web01:00000000-0000-4000-8000-00000000dead" not found (no VM has UUID 00000000-0000-4000-8000-00000000dead)` + "\n"},
		{"-y vm.nic_delete web01 50:6b:8d:00:00:02", 3, "", "Error: VM web01 has no NIC 50:6b:8d:00:00:02\n"},
		{"-y vm.nic_delete web01 5g:6b:8d:00:00:01", 2, "", "Error: vm.nic_delete: \"5g:6b:8d:00:00:01\" is not a MAC address (e.g. 50:6b:8d:00:00:01)\n"},
		{"-y vm.nic_delete web01", 2, "", "Error: vm.nic_delete: missing MAC address: give it as the second argument or mac=, e.g. vm.nic_delete web01 50:6b:8d:00:00:01\n"},
		{"-y vm.nic_delete web01 50:6b:8d:00:00:01", 0, "VmNicDelete: pending\nVmNicDelete: complete\n", ""},
		{"vm.create d1", 0, "VmCreate: pending\nVmCreate: complete\n", ""},
		{"--jq .[0].memory_bytes,.[0].num_vcpus vm.list d1", 0, "2147483648\n1\n", ""},
	} {
		code, out, errOut := h.run(strings.Fields(c.line)...)
		if code != c.code || out != c.out || errOut != c.err {
			t.Errorf("%s: exit %d (want %d)\nstdout %q\nwant   %q\nstderr %q\nwant   %q", c.line, code, c.code, out, c.out, errOut, c.err)
		}
	}
}
