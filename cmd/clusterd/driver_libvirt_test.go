package main

import (
	"context"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestLibvirtUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dir", "x", "--driver", "libvrt"}, `--driver "libvrt" is not available; use --driver sim or --driver libvirt`},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--sim", "3"}, "--sim and --sim-config apply to --driver sim; libvirt hosts join with acli host.add"},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-heartbeat", "1ms"}, "--libvirt-heartbeat 1ms is too short"},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-shutdown-timeout", "0s"}, "--libvirt-shutdown-timeout 0s must be positive"},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-migration-timeout", "-1s"}, "must not be negative; 0 means no limit"},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-call-timeout", "10ms"}, "--libvirt-call-timeout 10ms is too short; use at least 1s"},
		{[]string{"--data-dir", "x", "--libvirt-hartbeat", "1s"}, "did you mean --libvirt-heartbeat?"},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-data-services-ip", "1.2.3"}, `--libvirt-data-services-ip "1.2.3" is not an IP address`},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-data-services-ip", "127.0.0.9"}, "--libvirt-data-services-ip needs --libvirt-datapath"},
		{[]string{"--data-dir", "x", "--driver", "libvirt", "--libvirt-datapath", "--libvirt-cvm-restart", "-1s"}, "--libvirt-cvm-restart -1s must not be negative"},
	} {
		code, msg := runFail(t, tc.args...)
		if code != 2 || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 0 {
			t.Errorf("clusterd %s: exit %d, %q; want exit 2 and %q", strings.Join(tc.args, " "), code, msg, tc.want)
		}
	}
}

// The fence agent is told which host to fence; only its exit status 0
// counts as fenced, and its output says why not.
func TestFenceCommand(t *testing.T) {
	fence := fenceCommand(`test "$ACLI_FENCE_HOST $ACLI_FENCE_IP $ACLI_FENCE_URI" = "h3 127.42.0.3 qemu+tcp://127.42.0.3/system" || { echo "BMC of $ACLI_FENCE_HOST unreachable"; exit 1; }`)
	h3 := &acliv1.Host{Name: "h3", HypervisorIp: "127.42.0.3", LibvirtUri: "qemu+tcp://127.42.0.3/system"}
	if err := fence(context.Background(), h3); err != nil {
		t.Fatalf("fencing h3: %v", err)
	}
	h2 := &acliv1.Host{Name: "h2", HypervisorIp: "127.42.0.2", LibvirtUri: "qemu+tcp://127.42.0.2/system"}
	if err := fence(context.Background(), h2); err == nil || !strings.Contains(err.Error(), "exit status 1: BMC of h2 unreachable") {
		t.Fatalf("fencing h2: %v", err)
	}
}
