package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
)

func TestListenBeyondLoopbackNeedsTLS(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "10.1.2.3:2030", "example.com:2030"} {
		code, msg := runFail(t, "--listen", addr, "--data-dir", t.TempDir())
		if code != 2 || !strings.Contains(msg, "refusing to listen on "+addr+" without TLS") || strings.Contains(msg, "\n") {
			t.Errorf("--listen %s: exit %d, %q", addr, code, msg)
		}
	}
}

func TestSecurityUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--anonymous-role", "root"}, `--anonymous-role: role "root" is not a role; use viewer, operator or admin, or none`},
		{[]string{"--client-ca", "x.crt"}, "--client-ca needs TLS"},
		{[]string{"--tls-cert", "x.crt"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "x.crt", "--tls-key", "x.key"}, "--tls-cert/--tls-key: open x.crt: no such file or directory"},
	} {
		code, msg := runFail(t, append([]string{"--listen", "127.0.0.1:0", "--data-dir", dir}, tc.args...)...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, msg, tc.want)
		}
	}
}

func TestInitTwiceKeepsTheCA(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command(binary, "init", "--data-dir", dir, "--listen", "127.44.2.1:2030").CombinedOutput(); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	code, msg := runFail(t, "init", "--data-dir", dir)
	if code != 5 || msg != "clusterd init: "+filepath.Join(dir, "pki")+" already holds a cluster CA; not replacing it" {
		t.Fatalf("second init: exit %d, %q", code, msg)
	}
	// The initialised data dir serves TLS without further flags.
	d := startDaemon(t, "--listen", "127.44.2.1:0", "--data-dir", dir, "--sim-speed", "1000", "--sim-ssh-port", "0")
	ctx := context.Background()
	if _, err := acliv1.NewClusterServiceClient(dial(t, d.addr)).GetCluster(ctx, &acliv1.GetClusterRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call to a TLS clusterd: %v", err)
	}
	pk := func(f string) string { return filepath.Join(dir, "pki", f) }
	c, err := client.Dial(ctx, client.Options{Addr: d.addr, CACert: pk("ca.crt"), Cert: pk("admin.crt"), Key: pk("admin.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Cluster.GetCluster(ctx, &acliv1.GetClusterRequest{}); err != nil {
		t.Fatalf("admin over TLS: %v", err)
	}
	d.stop(t)
}
