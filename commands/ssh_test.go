package commands

import (
	"context"
	"errors"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/fanout"
	"github.com/acli-dev/acli/render"
)

func TestSSHTargets(t *testing.T) {
	hosts := []*acliv1.Host{
		{Name: "h1", HypervisorIp: "10.0.0.1", SshPort: 2222, SshHostKey: "ssh-ed25519 AAAA1", CvmIp: "10.0.1.1", CvmSshPort: 2200, CvmSshHostKey: "ssh-ed25519 CCCC1"},
		{Name: "h2", HypervisorIp: "10.0.0.2", CvmIp: "10.0.1.2"},
		{Name: "h3", HypervisorIp: "10.0.0.3", CvmIp: "10.0.1.3"},
		{Name: "compute-only", HypervisorIp: "10.0.0.4"},
	}
	local := func(ip string) bool { return ip == "10.0.1.1" }
	str := func(ts []fanout.Target) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.String()+"|"+strings.Join(t.HostKeys, ","))
		}
		return strings.Join(s, " ")
	}
	if got, want := str(SSHTargets(hosts, fanout.StyleHostSSH, local)), "10.0.0.1:2222|ssh-ed25519 AAAA1 10.0.0.2| 10.0.0.3| 10.0.0.4|"; got != want {
		t.Errorf("hostssh targets %q, want %q", got, want)
	}
	// The local CVM goes last; hosts without a CVM have no allssh target.
	if got, want := str(SSHTargets(hosts, fanout.StyleAllSSH, local)), "10.0.1.2| 10.0.1.3| 10.0.1.1:2200|ssh-ed25519 CCCC1"; got != want {
		t.Errorf("allssh targets %q, want %q", got, want)
	}
}

func TestFanoutCommandsUsage(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout when code is 0, else in the one stderr line
	}{
		{[]string{"help"}, 0, `hostssh [flags] "<command>"`},
		{[]string{"help", "allssh"}, 0, "Usage: allssh [flags]"},
		{[]string{"hostssh", "--help"}, 0, "--command-timeout"},
		{[]string{"hostssh"}, 2, "hostssh: missing command"},
		{[]string{"allssh", "--fanuot", "2", "x"}, 2, "unknown flag --fanuot (did you mean --fanout?)"},
		{[]string{"hostssh", "-o", "yml", "x"}, 2, `unknown output format "yml": want text, json, yaml or csv`},
		{[]string{"hostssh", "--hosts", "n[1-]", "x"}, 2, `bad host range "n[1-]"`},
	} {
		code, out, errOut := h.run(tc.args...)
		text := out
		if tc.code != 0 {
			text = errOut
			if strings.Count(errOut, "\n") != 1 {
				t.Errorf("%v: stderr is not one line: %q", tc.args, errOut)
			}
		}
		if code != tc.code || !strings.Contains(text, tc.want) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q; want %q", tc.args, code, tc.code, out, errOut, tc.want)
		}
	}
}

func TestFanoutIdentityEnvAndClusterdErrors(t *testing.T) {
	h := newHarness(t)
	f, _, errb := h.factory()
	f.Getenv = func(k string) string {
		if k == IdentityEnv {
			return "/nonexistent/id_ed25519"
		}
		return ""
	}
	if code := f.Execute(context.Background(), []string{"hostssh", "hostname"}); code != 2 || !strings.Contains(errb.String(), "ACLI_SSH_IDENTITY=/nonexistent/id_ed25519: no such file or directory") {
		t.Errorf("missing identity: exit %d, stderr %q", code, errb.String())
	}

	// clusterd unreachable keeps its exit code (6), it is no usage error.
	io, _, errb2 := render.Test("", false)
	f2 := &Factory{IO: io, Registry: Default(), Getenv: func(string) string { return "" },
		Connect: func(_ context.Context, o client.Options) (*client.Client, error) {
			return nil, &client.UnreachableError{Addr: o.Addr, Err: errors.New("connection refused")}
		}}
	if code := f2.Execute(context.Background(), []string{"allssh", "hostname"}); code != client.ExitUnreachable || !strings.Contains(errb2.String(), "allssh: cannot reach clusterd") {
		t.Errorf("unreachable clusterd: exit %d, stderr %q", code, errb2.String())
	}
}

func TestPublishedKeysTrustedOnlyOverTLSOrLoopback(t *testing.T) {
	for _, c := range []struct {
		o    client.Options
		want bool
	}{
		{client.Options{Addr: "127.0.0.1:2030"}, true},
		{client.Options{Addr: "127.0.0.1:2030,127.0.0.2:2030"}, true},
		{client.Options{Addr: "10.0.0.5:2030"}, false},
		{client.Options{Addr: "127.0.0.1:2030,10.0.0.5:2030"}, false},
		{client.Options{Addr: "cluster.example:2030"}, false},
		{client.Options{Addr: "10.0.0.5:2030", CACert: "ca.crt"}, true},
	} {
		if got := publishedKeysTrusted(c.o); got != c.want {
			t.Errorf("%+v: %v, want %v", c.o, got, c.want)
		}
	}
}
