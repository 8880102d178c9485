package hostsync

import (
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

func TestCheckJoin(t *testing.T) {
	h := &acliv1.Host{Name: "h4", HypervisorIp: "127.042.0.4", CvmIp: "127.42.1.4"}
	if bad := CheckJoin(h); len(bad) != 1 || bad[0].Field != "hypervisor_ip" {
		t.Fatalf("a malformed address: %v", bad)
	}
	h = &acliv1.Host{Name: "h4", HypervisorIp: "::ffff:127.42.0.4"}
	if bad := CheckJoin(h); len(bad) != 0 || h.HypervisorIp != "::ffff:127.42.0.4" {
		t.Fatalf("%v %q", bad, h.HypervisorIp)
	}
	bad := CheckJoin(&acliv1.Host{Name: "=5", CvmIp: "x"})
	var fields []string
	for _, f := range bad {
		fields = append(fields, f.Field)
	}
	if got := strings.Join(fields, ","); got != "name,hypervisor_ip,cvm_ip" {
		t.Fatalf("bad fields %s: %v", got, bad)
	}
	if bad := CheckJoin(&acliv1.Host{Name: "h4", HypervisorIp: "127.42.0.4", CvmIp: "127.42.0.4"}); len(bad) != 1 || bad[0].Field != "cvm_ip" {
		t.Fatalf("cvm_ip equal to hypervisor_ip: %v", bad)
	}
}

func TestCheckNewAndLeave(t *testing.T) {
	pinned := vmOn("pinned", "", acliv1.PowerState_kOff)
	pinned.HostAffinity = []string{"uuid-h2"}
	away := vmOn("away", "h2", acliv1.PowerState_kOn)
	away.OriginalHostUuid = "uuid-h1"
	db := driftDB(t, vmOn("web", "h1", acliv1.PowerState_kOn), away, pinned)
	tests := []struct {
		h    *acliv1.Host
		want string
	}{
		{&acliv1.Host{Name: "h1", HypervisorIp: "127.42.0.9"}, "host names are unique"},
		{&acliv1.Host{Name: "h9", HypervisorIp: "127.42.0.2"}, "belongs to host h2"},
		{&acliv1.Host{Name: "h9", HypervisorIp: "127.42.0.9", CvmIp: "127.42.0.1"}, "cvm_ip 127.42.0.1 is already used by host h1"},
		{&acliv1.Host{Name: "h9", HypervisorIp: "127.42.0.9"}, ""},
	}
	for _, tt := range tests {
		var err error
		db.View(func(tx *state.Tx) { err = CheckNew(tx, tt.h) })
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s at %s: %v, want %q", tt.h.Name, tt.h.HypervisorIp, err, tt.want)
		}
	}
	for host, want := range map[string]string{
		"uuid-h1": "host h1 runs 1 VM(s) (web)",
		"uuid-h2": "host h2 runs 1 VM(s) (away)",
	} {
		var err error
		db.View(func(tx *state.Tx) { err = CheckLeave(tx, tx.Host(host)) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("leave %s: %v, want %q", host, err, want)
		}
	}
	// With no VM running there: returning VMs and affinity still hold a host.
	back := vmOn("back", "", acliv1.PowerState_kOff)
	back.OriginalHostUuid = "uuid-h1"
	db2 := driftDB(t, back, pinned)
	for host, want := range map[string]string{
		"uuid-h1": "1 VM(s) (back) return to host h1 when it exits maintenance",
		"uuid-h2": "1 VM(s) (pinned) have host affinity to h2",
	} {
		var err error
		db2.View(func(tx *state.Tx) { err = CheckLeave(tx, tx.Host(host)) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("leave %s: %v, want %q", host, err, want)
		}
	}
	var err error
	driftDB(t).View(func(tx *state.Tx) { err = CheckLeave(tx, tx.Host("uuid-h1")) })
	if err != nil {
		t.Errorf("an empty host cannot leave: %v", err)
	}
}
