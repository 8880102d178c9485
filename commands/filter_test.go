package commands

import (
	"strings"
	"testing"
)

// Positionals of list commands select rows by name, UUID or alias, with
// globs, ranges and comma lists; a pattern matching nothing lists nothing.
func TestListFilters(t *testing.T) {
	h := fixture(t)
	for _, tc := range []struct {
		line string
		code int
		out  string
		err  string
	}{
		{"-o name vm.list", 0, "db01\nweb01\nweb02\n", ""},
		{"-o name vm.list web*", 0, "web01\nweb02\n", ""},
		{"-o name vm.list web01,db01", 0, "db01\nweb01\n", ""},
		{"-o name vm.list web0[2..9] db01", 0, "db01\nweb02\n", ""},
		{"-o name vm.list web* power_state=on", 0, "web01\n", ""},
		{"-o name vm.list *0? host=node-2", 0, "web01\n", ""},
		{"-o name vm.list nosuch*", 0, "", ""},
		{"-o name host.list node-[13]", 0, "node-1\nnode-3\n", ""},
		{"-o name net.list *100", 0, "vlan100\n", ""},
		{"vm.list web[", 2, "", "Error: pattern \"web[\": unclosed [\n"},
		{"vm.list web[3..1]", 2, "", "Error: range \"[3..1]\": 3 is greater than 1 (write [1..3])\n"},
	} {
		code, out, errOut := h.run(strings.Fields(tc.line)...)
		if code != tc.code || out != tc.out || errOut != tc.err {
			t.Errorf("%s: exit %d, out %q, err %q; want %d %q %q", tc.line, code, out, errOut, tc.code, tc.out, tc.err)
		}
	}
	// By UUID, and a host by its hypervisor IP.
	_, uuid, _ := h.run("--jq", ".[0].uuid", "vm.list", "db01")
	if code, out, _ := h.run("-o", "name", "vm.list", strings.TrimSpace(uuid)); code != 0 || out != "db01\n" {
		t.Errorf("vm.list UUID %q: %d %q", uuid, code, out)
	}
	_, ip, _ := h.run("--jq", ".[0].hypervisor_ip", "host.list", "node-2")
	if code, out, _ := h.run("-o", "name", "host.list", strings.TrimSpace(ip)); code != 0 || out != "node-2\n" {
		t.Errorf("host.list IP %q: %d %q", ip, code, out)
	}
}
