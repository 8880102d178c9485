package main

import (
	"strings"
	"testing"
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
