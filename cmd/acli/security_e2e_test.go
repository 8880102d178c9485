package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/pki"
)

// secured is a clusterd made by clusterd init, serving TLS on 127.44.1.x.
type secured struct {
	dir, addr string
}

func initCluster(t *testing.T, listen string) string {
	t.Helper()
	dir := t.TempDir()
	r := runCmd(t, exec.Command(filepath.Join(binDir, "clusterd"), "init", "--data-dir", dir, "--listen", listen))
	if r.code != 0 || !strings.Contains(r.out, "export ACLI_CONFIG="+filepath.Join(dir, "acli.yaml")) {
		t.Fatalf("clusterd init: exit %d\n%s%s", r.code, r.out, r.err)
	}
	for _, f := range []string{"pki/ca.key", "pki/server.key", "pki/admin.key", "pki/ca.crt", "acli.yaml"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, st)
		}
	}
	return dir
}

// run runs acli with only the environment given (plus HOME), so that no
// ACLI_* variable of the caller leaks in.
func (s secured) run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "acli"), args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "ACLI_SERVER=" + s.addr}, env...)
	return runCmd(t, cmd)
}

func (s secured) admin() []string {
	return []string{"ACLI_CONFIG=" + filepath.Join(s.dir, "acli.yaml")}
}

func (s secured) ca() string { return filepath.Join(s.dir, "pki", "ca.crt") }

func wantExit(t *testing.T, r result, code int, text string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.err, text) || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Fatalf("exit %d, want %d with one line containing %q\nstdout: %s\nstderr: %s", r.code, code, text, r.out, r.err)
	}
}

func (s secured) token(t *testing.T, user, role string, extra ...string) string {
	t.Helper()
	r := s.run(t, s.admin(), append([]string{"-o", "json", "token.create", "user=" + user, "role=" + role}, extra...)...)
	var env struct {
		Data struct {
			Secret string `json:"secret"`
		} `json:"data"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.out), &env) != nil || env.Data.Secret == "" {
		t.Fatalf("token.create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	return env.Data.Secret
}

func TestSecuredCluster(t *testing.T) {
	dir := initCluster(t, "127.44.1.1:2030")
	d, err := launchClusterd(t, dir, "--listen", "127.44.1.1:0", "--sim", "3", "--sim-speed", "1000", "--sim-ssh-port", "0")
	if err != nil {
		t.Fatalf("clusterd: %v", err)
	}
	s := secured{dir: dir, addr: d.addr}
	other := initCluster(t, "127.44.1.2:2030")

	// The context clusterd init wrote: the admin certificate.
	r := s.run(t, s.admin(), "token.whoami")
	if r.code != 0 || !strings.Contains(r.out, "User:           admin") || !strings.Contains(r.out, "Identified by:  certificate") {
		t.Fatalf("whoami: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := s.run(t, s.admin(), "vm.create", "web01", "memory=1G"); r.code != 0 {
		t.Fatalf("admin vm.create: exit %d %s", r.code, r.err)
	}

	t.Run("refusals", func(t *testing.T) {
		wantExit(t, s.run(t, nil, "host.list"), 4, "clusterd at "+s.addr+" requires TLS: give --cacert")
		wantExit(t, s.run(t, nil, "--cacert", s.ca(), "host.list"), 4,
			"unauthenticated: clusterd needs a client certificate (--cert/--key) or a token (--token)")
		wantExit(t, s.run(t, nil, "--cacert", filepath.Join(other, "pki", "ca.crt"), "host.list"), 4,
			"presented a certificate not signed by "+filepath.Join(other, "pki", "ca.crt"))
		wantExit(t, s.run(t, nil, "--cacert", s.ca(), "--cert", filepath.Join(other, "pki", "admin.crt"), "--key", filepath.Join(other, "pki", "admin.key"), "host.list"), 4,
			`client certificate "admin" is not signed by the cluster's CA`)
		ca, err := pki.Load(filepath.Join(dir, "pki", "ca.crt"), filepath.Join(dir, "pki", "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		old, err := ca.Client("olduser", "admin", -time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		od := t.TempDir()
		if err := old.Write(filepath.Join(od, "c.crt"), filepath.Join(od, "c.key")); err != nil {
			t.Fatal(err)
		}
		wantExit(t, s.run(t, nil, "--cacert", s.ca(), "--cert", filepath.Join(od, "c.crt"), "--key", filepath.Join(od, "c.key"), "host.list"), 4,
			`client certificate "olduser" expired at`)
		wantExit(t, s.run(t, nil, "--cacert", s.ca(), "--token", "acli_0123456789ab_nosuchsecret", "host.list"), 4, "the token is not valid")
		wantExit(t, s.run(t, s.admin(), "--context", "prod", "host.list"), 2, `no context "prod"`)
		wantExit(t, s.run(t, nil, "--server", "127.44.1.3:1", "--cacert", s.ca(), "host.list"), 6, "cannot reach clusterd at 127.44.1.3:1")
	})

	t.Run("roles", func(t *testing.T) {
		tok := map[string]string{}
		for _, role := range []string{"viewer", "operator"} {
			tok[role] = s.token(t, role+"1", role)
		}
		as := func(role string, args ...string) result {
			return s.run(t, []string{"ACLI_CACERT=" + s.ca(), "ACLI_TOKEN=" + tok[role]}, args...)
		}
		if r := as("viewer", "vm.list"); r.code != 0 {
			t.Fatalf("viewer vm.list: %d %s", r.code, r.err)
		}
		wantExit(t, as("viewer", "vm.on", "web01"), 4, "VmService/SetPowerState needs the operator role; viewer1 has viewer")
		wantExit(t, as("viewer", "-y", "token.revoke", "000000000000"), 4, "TokenService/RevokeToken needs the admin role; viewer1 has viewer")
		if r := as("operator", "vm.on", "web01"); r.code != 0 {
			t.Fatalf("operator vm.on: %d %s", r.code, r.err)
		}
		// task.get shows who started the task.
		var tl struct {
			Data []struct{ Uuid, Principal string } `json:"data"`
		}
		if r := s.run(t, s.admin(), "-o", "json", "task.list", "include_completed=true", "limit=1"); r.code != 0 || json.Unmarshal([]byte(r.out), &tl) != nil || len(tl.Data) != 1 {
			t.Fatalf("task.list: %d %s%s", r.code, r.out, r.err)
		}
		if r := s.run(t, s.admin(), "-o", "block", "task.get", tl.Data[0].Uuid); r.code != 0 || !strings.Contains(r.out, "Started by:   operator1\n") {
			t.Fatalf("task.get of operator1's vm.on: %d\n%s%s", r.code, r.out, r.err)
		}
		wantExit(t, as("operator", "vm.create", "web02", "memory=1G"), 4, "VmService/CreateVm needs the admin role; operator1 has operator")
		wantExit(t, as("operator", "sim.fail_host", "h1"), 4, "SimService/FailHost needs the admin role")
		wantExit(t, as("operator", "audit.list"), 4, "AuditService/ListAudit needs the admin role")

		// Revoked and expired tokens.
		short := s.token(t, "temp", "admin", "expires=1s")
		id := strings.Split(tok["operator"], "_")[1]
		if r := s.run(t, s.admin(), "-y", "token.revoke", id); r.code != 0 || !strings.Contains(r.out, "revoked") {
			t.Fatalf("token.revoke: %d %s%s", r.code, r.out, r.err)
		}
		wantExit(t, as("operator", "vm.list"), 4, "token "+id+" was revoked at")
		time.Sleep(1100 * time.Millisecond)
		wantExit(t, s.run(t, []string{"ACLI_CACERT=" + s.ca(), "ACLI_TOKEN=" + short}, "vm.list"), 4, "expired at")

		// The audit log holds the denials and the mutations, with who and from where.
		r := s.run(t, s.admin(), "-o", "json", "audit.list", "limit=1000")
		var env struct {
			Data []struct {
				Principal, Role, Source, Rpc, Result, Error, Args string
				TaskUuid                                          string `json:"task_uuid"`
			} `json:"data"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.out), &env) != nil {
			t.Fatalf("audit.list: %d %s %s", r.code, r.out, r.err)
		}
		found := map[string]bool{}
		for _, e := range env.Data {
			if !strings.HasPrefix(e.Source, "127.") {
				t.Errorf("entry without source: %+v", e)
			}
			found[e.Principal+" "+e.Rpc[strings.LastIndex(e.Rpc, "/")+1:]+" "+e.Result] = true
			if strings.HasSuffix(e.Rpc, "/CreateVm") && e.Result == "OK" && (e.TaskUuid == "" || !strings.Contains(e.Args, `"web01"`)) {
				t.Errorf("CreateVm entry: %+v", e)
			}
			if strings.Contains(e.Args, "acli_") {
				t.Errorf("a token in the audit log: %+v", e)
			}
		}
		for _, w := range []string{"admin CreateVm OK", "viewer1 SetPowerState PermissionDenied", "operator1 SetPowerState OK",
			"operator1 CreateVm PermissionDenied", "operator1 FailHost PermissionDenied", "admin RevokeToken OK", "admin CreateToken OK",
			" ListVms Unauthenticated"} {
			if !found[w] {
				t.Errorf("no audit entry %q in %v", w, found)
			}
		}
	})
}
