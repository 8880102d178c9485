package maintenance_test

import (
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/maintenance"
)

func TestCvmMaintenanceDecisions(t *testing.T) {
	base := func(mut func(*acliv1.Host)) *acliv1.Host {
		h := &acliv1.Host{Uuid: "uuid-h1", Name: "h1", HypervisorIp: "127.42.0.1", CvmIp: "127.42.1.1",
			NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp, Schedulable: true}
		if mut != nil {
			mut(h)
		}
		return h
	}
	inMaint := func(h *acliv1.Host) { h.CvmState, h.CvmMaintenanceRequested = acliv1.CvmState_kCvmMaintenance, true }
	spent := []apierr.Violation{{Type: maintenance.Redundancy, Subject: "host:h2", Description: "cannot take out the CVM of h1: h2 is out"}}
	tests := []struct {
		name    string
		host    *acliv1.Host
		enter   bool
		budget  []apierr.Violation
		noop    string
		err     string // in the error
		cvm     acliv1.CvmState
		message string
	}{
		{"enter", base(nil), true, nil, "", "", acliv1.CvmState_kCvmMaintenance, "cvm 127.42.1.1 of host h1 (127.42.0.1) entered maintenance mode"},
		{"exit", base(inMaint), false, nil, "", "", acliv1.CvmState_kCvmUp, "cvm 127.42.1.1 of host h1 (127.42.0.1) exited maintenance mode"},
		{"enter again", base(inMaint), true, nil, "cvm 127.42.1.1 of host h1 (127.42.0.1) is already in maintenance mode", "", 0, ""},
		{"exit when not in", base(nil), false, nil, "cvm 127.42.1.1 of host h1 (127.42.0.1) is not in maintenance mode", "", 0, ""},
		// Intent recorded while the CVM was down: exiting ends it.
		{"exit while down", base(func(h *acliv1.Host) { h.CvmState, h.CvmMaintenanceRequested = acliv1.CvmState_kCvmDown, true }), false, nil, "", "", acliv1.CvmState_kCvmDown, "cvm 127.42.1.1 of host h1 (127.42.0.1) exited maintenance mode"},
		{"host down", base(func(h *acliv1.Host) { h.NodeState, h.CvmState = acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown }), true, nil, "", "host h1 (127.42.0.1) is down; recover it first", 0, ""},
		{"cvm down", base(func(h *acliv1.Host) { h.CvmState = acliv1.CvmState_kCvmDown }), true, nil, "", "is down; it is already out of service", 0, ""},
		{"budget spent", base(nil), true, spent, "", "cannot enter maintenance mode", 0, ""},
		{"budget not asked on exit", base(inMaint), false, spent, "", "", acliv1.CvmState_kCvmUp, "cvm 127.42.1.1 of host h1 (127.42.0.1) exited maintenance mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := maintenance.Cvm(tt.host, tt.enter, func() []apierr.Violation { return tt.budget })
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case c.Noop != tt.noop:
				t.Fatalf("noop %q, want %q", c.Noop, tt.noop)
			case tt.noop != "":
				if c.Next != nil {
					t.Fatal("a no-op changes the host")
				}
				return
			}
			if c.Next.CvmState != tt.cvm || c.Next.CvmMaintenanceRequested != tt.enter || c.Message != tt.message {
				t.Fatalf("next %s requested=%v %q", c.Next.CvmState, c.Next.CvmMaintenanceRequested, c.Message)
			}
		})
	}
}
