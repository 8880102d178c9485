package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clusterd-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "clusterd")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building clusterd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type daemon struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	done   chan error
}

var readyLine = regexp.MustCompile(`^clusterd: serving on (\S+) \(sim, (\d+) hosts\)$`)

// startDaemon runs clusterd on a free loopback port and waits for its ready line.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	d := &daemon{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		d.done <- cmd.Wait()
	}()
	select {
	case l, ok := <-lines:
		m := readyLine.FindStringSubmatch(l)
		if !ok || m == nil {
			t.Fatalf("no ready line (got %q); stderr:\n%s", l, d.stderr)
		}
		d.addr = m[1]
	case <-time.After(20 * time.Second):
		t.Fatalf("clusterd not ready; stderr:\n%s", d.stderr)
	}
	return d
}

// stop sends SIGTERM and requires a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("clusterd exited with %v after SIGTERM; stderr:\n%s", err, d.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("clusterd did not stop after SIGTERM")
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func waitTask(t *testing.T, conn *grpc.ClientConn) func(*acliv1.Task, error) {
	return func(task *acliv1.Task, err error) { waitTaskDone(t, conn, task, err) }
}

func waitTaskDone(t *testing.T, conn *grpc.ClientConn, task *acliv1.Task, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	stream, err := acliv1.NewTaskServiceClient(conn).WatchTask(context.Background(), &acliv1.GetTaskRequest{Uuid: task.Uuid})
	if err != nil {
		t.Fatal(err)
	}
	var last *acliv1.Task
	for {
		got, err := stream.Recv()
		if err != nil {
			break
		}
		last = got
	}
	if last == nil || last.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("task %s ended %v", task.Operation, last)
	}
}

func TestServeRestartAndFindVms(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, "--data-dir", dir, "--sim", "3", "--sim-speed", "1000")
	conn := dial(t, d.addr)
	ctx := context.Background()
	if hs, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || hs.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", hs, err)
	}
	vms := acliv1.NewVmServiceClient(conn)
	for _, name := range []string{"web01", "web02", "db01"} {
		waitTask(t, conn)(vms.CreateVm(ctx, &acliv1.CreateVmRequest{Name: name, MemoryBytes: 4 << 30}))
	}
	waitTask(t, conn)(vms.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: "db01", Transition: acliv1.PowerTransition_kPowerOn}))
	// Reflection lists the services (what grpcurl list shows).
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	resp, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.Name)
	}
	if joined := strings.Join(services, " "); !strings.Contains(joined, "acli.v1.VmService") || !strings.Contains(joined, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", services)
	}
	rs.CloseSend()

	// SIGTERM with a watcher attached: the stream ends Unavailable and the
	// daemon still exits promptly.
	watch, err := acliv1.NewEventServiceClient(conn).WatchEvents(ctx, &acliv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	watchErr := make(chan error, 1)
	go func() {
		for {
			if _, err := watch.Recv(); err != nil {
				watchErr <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the stream reach the server
	d.stop(t)
	if strings.Contains(d.stderr.String(), "drain timeout") {
		t.Fatalf("an open watcher held up the graceful stop:\n%s", d.stderr)
	}
	if err := <-watchErr; status.Code(err) != codes.Unavailable {
		t.Fatalf("watcher ended with %v, want Unavailable", err)
	}
	if !strings.Contains(d.stderr.String(), "clusterd stopped") {
		t.Fatalf("no clean stop logged:\n%s", d.stderr)
	}

	d = startDaemon(t, "--data-dir", dir, "--sim", "3", "--sim-speed", "1000")
	conn = dial(t, d.addr)
	list, err := acliv1.NewVmServiceClient(conn).ListVms(ctx, &acliv1.ListVmsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range list.Vms {
		got = append(got, fmt.Sprintf("%s:%s", v.Name, v.PowerState))
	}
	if strings.Join(got, ",") != "db01:kOn,web01:kOff,web02:kOff" {
		t.Fatalf("after restart: %v", got)
	}
	d.stop(t)
}

func runFail(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("clusterd %v: want a non-zero exit, got %v", args, err)
	}
	return ee.ExitCode(), strings.TrimSpace(stderr.String())
}

func TestCorruptDataFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	garbage := bytes.Repeat([]byte("this is not a database\n"), 500)
	os.WriteFile(path, garbage, 0o600)
	code, msg := runFail(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	if code != 1 || !strings.Contains(msg, "is corrupt or not a clusterd data file") || strings.Count(msg, "\n") != 0 {
		t.Fatalf("exit %d, stderr %q", code, msg)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, garbage) {
		t.Fatal("corrupt data file was modified")
	}
}

// An empty state.db is a cluster whose state was lost, not a new cluster:
// clusterd refuses it, naming the file, and leaves it as it was.
func TestEmptyDataFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, msg := runFail(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	if code != 1 || !strings.Contains(msg, path) || !strings.Contains(msg, "the file is empty") || strings.Count(msg, "\n") != 0 {
		t.Fatalf("exit %d, stderr %q", code, msg)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("empty data file was modified: %v %v", fi.Size(), err)
	}
}

func TestLockedDataFileAndBusyPort(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, "--data-dir", dir, "--sim-speed", "1000")
	code, msg := runFail(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	if code != 1 || !strings.Contains(msg, "is locked by another process") {
		t.Fatalf("second clusterd on the same dir: exit %d, %q", code, msg)
	}
	code, msg = runFail(t, "--listen", d.addr, "--data-dir", t.TempDir())
	if code != 1 || !strings.Contains(msg, "cannot listen on "+d.addr) || !strings.Contains(msg, "address already in use") {
		t.Fatalf("busy port: exit %d, %q", code, msg)
	}
	d.stop(t)
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dri", "x"}, "unknown flag --data-dri (did you mean --data-dir?)"},
		{[]string{"--listen", "127.0.0.1:0"}, "--data-dir is required"},
		{[]string{"--data-dir", "x", "--sim", "3", "--sim-config", "c.yaml"}, "not both"},
		{[]string{"--data-dir", "x", "--sim", "1001"}, "at most 1000"},
		{[]string{"--data-dir", "x", "--sim-speed", "0"}, "--sim-speed 0 must be positive"},
		{[]string{"--data-dir", "x", "--iscsi-failback", "later"}, "use immediate, delayed or off"},
		{[]string{"--data-dir", "x", "--iscsi-failback", "delayed", "--iscsi-failback-delay", "0s"}, "must be positive with --iscsi-failback delayed"},
		{[]string{"--data-dir", "x", "--iscsi-failover-deadline", "0s"}, "--iscsi-failover-deadline 0s must be positive"},
		{[]string{"--data-dir", "x", "--store", "etc://a:2379"}, "use bolt, or etcd://HOST:PORT"},
		{[]string{"--data-dir", "x", "--store", "etcd://"}, "use bolt, or etcd://HOST:PORT"},
		{[]string{"--data-dir", "x", "--store", "etcd://a:2379,b"}, `etcd member "b" is not HOST:PORT`},
		{[]string{"--data-dir", "x", "--store", "etcd://a:2379", "--lease-ttl", "1500ms"}, "--lease-ttl 1.5s must be whole seconds"},
		{[]string{"--data-dir", "x", "--store", "etcd://a:2379", "--etcd-cert", "c.pem"}, "--etcd-cert and --etcd-key go together"},
		{[]string{"--data-dir", "x", "--store", "etcd://a:2379", "--etcd-cacert", "/nonexistent.pem"}, "--etcd-cacert: open /nonexistent.pem"},
		{[]string{"--data-dir", "x", "--etcd-cacert", "ca.pem"}, "apply only to --store etcd://"},
		{[]string{"--data-dir", "x", "--store", "etcd://a:2379", "--advertise", "a:0"}, `--advertise "a:0" is not host:port`},
		{[]string{"--data-dir", "x", "--stor", "bolt"}, "did you mean --store?"},
	} {
		code, msg := runFail(t, tc.args...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("clusterd %v: exit %d, %q; want 2 and %q", tc.args, code, msg, tc.want)
		}
	}
}
