package commands

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One test per exit code, each through the whole command path.
func TestExitCodes(t *testing.T) {
	t.Run("0 ok", func(t *testing.T) {
		h := fixture(t)
		if code, _, errOut := h.run("host.list"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("1 task failed", func(t *testing.T) {
		h := fixture(t)
		h.fake.FailNextTask(codes.Internal, "hypervisor refused the domain")
		code, out, errOut := h.run("vm.on", "web02")
		if code != 1 || !strings.Contains(out, "VmPowerOn: failed: hypervisor refused the domain") ||
			!strings.Contains(errOut, "Error: VmPowerOn: hypervisor refused the domain") {
			t.Fatalf("exit %d\nout: %s\nerr: %s", code, out, errOut)
		}
	})
	t.Run("2 usage", func(t *testing.T) {
		h := fixture(t)
		before := h.fake.Calls("CreateVm")
		code, _, errOut := h.run("vm.create", "x", "memroy=4G")
		if code != 2 || !strings.Contains(errOut, `unknown key "memroy"; did you mean "memory"?`) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if h.fake.Calls("CreateVm") != before {
			t.Fatal("a usage error must not reach the server")
		}
	})
	t.Run("3 not found", func(t *testing.T) {
		h := fixture(t)
		code, _, errOut := h.run("vm.get", "nosuchvm")
		if code != 3 || errOut != "Error: VM \"nosuchvm\" not found\n" {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("3 glob matches nothing", func(t *testing.T) {
		h := fixture(t)
		code, _, errOut := h.run("vm.on", "zz*")
		if code != 3 || !strings.Contains(errOut, `no VM matches "zz*"`) {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("4 permission denied", func(t *testing.T) {
		h := fixture(t)
		h.fake.FailRPC("ListHosts", status.Error(codes.PermissionDenied, "token lacks cluster:read"))
		code, _, errOut := h.run("host.list")
		if code != 4 || !strings.Contains(errOut, "token lacks cluster:read") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("4 unauthenticated", func(t *testing.T) {
		h := fixture(t)
		h.fake.FailRPC("GetCluster", status.Error(codes.Unauthenticated, "missing token"))
		if code, _, _ := h.run("cluster.get"); code != 4 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("5 precondition with details", func(t *testing.T) {
		h := fixture(t)
		code, _, errOut := h.run("-y", "vm.delete", "web01")
		want := "Error: VM web01 is kOn\n  [STATE] vm/web01: power the VM off first (vm.off web01)\n"
		if code != 5 || errOut != want {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("5 already exists", func(t *testing.T) {
		h := fixture(t)
		if code, _, errOut := h.run("net.create", "vlan100"); code != 5 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("6 unreachable", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		_ = lis.Close() // nothing listens there now
		io, out, errb := render.Test("", false)
		f := NewFactory(io, func(string) string { return "" })
		defer f.Close()
		start := time.Now()
		code := f.Execute(context.Background(), []string{"--server", addr, "-o", "json", "host.list"})
		if code != 6 || !strings.Contains(errb.String(), "cannot reach clusterd at "+addr+": connection refused") {
			t.Fatalf("exit %d: %q", code, errb.String())
		}
		if !strings.Contains(out.String(), `"status": 6}`) {
			t.Fatalf("json: %s", out.String())
		}
		if d := time.Since(start); d > client.DefaultDialTimeout+time.Second {
			t.Fatalf("took %s, beyond the dial timeout", d)
		}
	})
	t.Run("7 timed out waiting", func(t *testing.T) {
		h := fixture(t)
		h.fake.HoldTasks(true)
		code, _, errOut := h.run("--timeout", "300ms", "vm.on", "web02")
		if code != 7 || !strings.Contains(errOut, "timed out waiting for VmPowerOn; task ") || !strings.Contains(errOut, "is still running") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
		resp, err := h.c.Task.ListTasks(context.Background(), &acliv1.ListTasksRequest{})
		if err != nil || len(resp.GetTasks()) != 1 || resp.GetTasks()[0].GetStatus() != acliv1.TaskStatus_kRunning {
			t.Fatalf("the task must be left running: %v %v", resp, err)
		}
	})
}

func TestExitTableHasNoCollisions(t *testing.T) {
	// Every gRPC code maps to exactly one exit code, and each exit code
	// means one class of problem.
	want := map[codes.Code]int{
		codes.OK: 0, codes.Canceled: 1, codes.Unknown: 1, codes.InvalidArgument: 2, codes.DeadlineExceeded: 7,
		codes.NotFound: 3, codes.AlreadyExists: 5, codes.PermissionDenied: 4, codes.ResourceExhausted: 5,
		codes.FailedPrecondition: 5, codes.Aborted: 5, codes.OutOfRange: 2, codes.Unimplemented: 1,
		codes.Internal: 1, codes.Unavailable: 6, codes.DataLoss: 1, codes.Unauthenticated: 4,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := client.ExitForStatus(c); got != want[c] {
			t.Errorf("%s → %d, want %d", c, got, want[c])
		}
	}
}

func TestConfirmation(t *testing.T) {
	t.Run("pipe without -y refuses", func(t *testing.T) {
		h := fixture(t)
		code, _, errOut := h.run("vm.delete", "web02")
		if code != 2 || !strings.Contains(errOut, "pass -y") || h.fake.Calls("DeleteVm") != 0 {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("yes piped on stdin answers", func(t *testing.T) {
		h := fixture(t)
		h.in = "yes\n"
		h.run("vm.create", "tmp1", "memory=1G")
		h.run("vm.create", "tmp2", "memory=1G")
		code, out, errOut := h.run("vm.delete", "tmp*")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		slices.Sort(lines) // the two tasks run at once
		if code != 0 || strings.Join(lines, "|") != "VmDelete tmp1: complete|VmDelete tmp1: pending|VmDelete tmp2: complete|VmDelete tmp2: pending" ||
			errOut != "Delete 2 VMs? (yes/no) yes\n" || h.fake.Calls("DeleteVm") != 2 {
			t.Fatalf("exit %d out %q err %q", code, out, errOut)
		}
	})
	t.Run("anything but yes on stdin deletes nothing", func(t *testing.T) {
		h := fixture(t)
		h.in = "no\n"
		code, out, errOut := h.run("vm.delete", "web02")
		if code != 1 || out != "" || errOut != "Delete VM web02? (yes/no) no\nError: not confirmed (answer \"no\"); nothing changed\n" || h.fake.Calls("DeleteVm") != 0 {
			t.Fatalf("exit %d out %q err %q", code, out, errOut)
		}
	})
	t.Run("-y answers", func(t *testing.T) {
		h := fixture(t)
		if code, _, errOut := h.run("-y", "vm.delete", "web02"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("terminal yes", func(t *testing.T) {
		h := fixture(t)
		h.tty, h.in = true, "yes\n"
		h.run("vm.create", "tmp1", "memory=1G")
		code, out, errOut := h.run("vm.delete", "web02,tmp1")
		if code != 0 || !strings.HasPrefix(out, "Delete 2 VMs? (yes/no) ") {
			t.Fatalf("exit %d out %q err %q", code, out, errOut)
		}
		if h.fake.Calls("DeleteVm") != 2 {
			t.Fatalf("DeleteVm calls: %d", h.fake.Calls("DeleteVm"))
		}
	})
	t.Run("terminal no", func(t *testing.T) {
		h := fixture(t)
		h.tty, h.in = true, "no\n"
		code, out, _ := h.run("net.delete", "vlan0")
		if code != 1 || !strings.HasPrefix(out, "Delete network vlan0? (yes/no) ") || h.fake.Calls("DeleteNetwork") != 0 {
			t.Fatalf("exit %d out %q", code, out)
		}
	})
}

func TestHelpNeverDials(t *testing.T) {
	io, out, _ := render.Test("", false)
	f := NewFactory(io, func(string) string { return "" })
	f.Connect = func(context.Context, client.Options) (*client.Client, error) {
		t.Fatal("help must not dial")
		return nil, nil
	}
	for _, args := range [][]string{{"help"}, {"help", "vm"}, {"help", "vm.create"}, {"vm.create", "--help"}, {"vm.create", "x", "memory=lots"}} {
		out.Reset()
		code := f.Execute(context.Background(), args)
		if args[0] == "vm.create" && len(args) == 3 {
			if code != 2 {
				t.Fatalf("%v: exit %d", args, code)
			}
			continue
		}
		if code != 0 || out.Len() == 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
}

func TestHelpText(t *testing.T) {
	reg := Default()
	h, err := Help(reg, []string{"vm"})
	if err != nil || !strings.Contains(h, "vm.create") || !strings.Contains(h, "vm.nic_delete") {
		t.Fatalf("%v\n%s", err, h)
	}
	h, _ = Help(reg, []string{"vm.create"})
	for _, want := range []string{"memory=", "size", "default 2G", "num_vcpus=", "default 1", "e.g. memory=4G", "Examples:", "acli vm.create web01 memory=4G"} {
		if !strings.Contains(h, want) {
			t.Errorf("vm.create help lacks %q", want)
		}
	}
	h2 := newHarness(t)
	if code, out, errOut := h2.run("vm.migrat", "--help"); code != 2 || out != "" || !strings.Contains(errOut, `unknown action "migrat"`) {
		t.Fatalf("unknown command with --help: %d %q %q", code, out, errOut)
	}
	if _, err := Help(reg, []string{"vmm"}); err == nil || !strings.Contains(err.Error(), `did you mean "vm"`) {
		t.Fatalf("help vmm: %v", err)
	}
}
