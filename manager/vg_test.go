package manager_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/managertest"
)

const initiator = "iqn.1994-05.com.redhat:client1"

// vgs adds the volume group client to clients.
func vgClient(h *managertest.Harness) acliv1.VolumeGroupServiceClient {
	return acliv1.NewVolumeGroupServiceClient(h.Conn)
}

// makeVg creates a VG with n disks of 10 GiB.
func makeVg(t *testing.T, c clients, vg acliv1.VolumeGroupServiceClient, name string, n int) {
	t.Helper()
	succeed(t, c)(vg.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: name}))
	for range n {
		succeed(t, c)(vg.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: name, SizeBytes: 10 * gib}))
	}
}

func sessions(t *testing.T, vg acliv1.VolumeGroupServiceClient, name string) []*acliv1.IscsiSession {
	t.Helper()
	resp, err := vg.ListSessions(bg, &acliv1.ListSessionsRequest{VolumeGroup: name})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Sessions
}

// servedBy maps "<initiator>/<disk>" to the serving CVM IP.
func servedBy(ss []*acliv1.IscsiSession) map[string]string {
	out := map[string]string{}
	for _, s := range ss {
		out[fmt.Sprintf("%s/%d", s.InitiatorIqn, s.DiskIndex)] = s.CvmIp
	}
	return out
}

func cvmCounts(ss []*acliv1.IscsiSession) map[string]int {
	out := map[string]int{}
	for _, s := range ss {
		out[s.CvmIp]++
	}
	return out
}

// iscsiEvents collects the iscsi events published from now on.
func iscsiEvents(t *testing.T, c clients) func(want int) []*acliv1.Event {
	t.Helper()
	last, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	var since uint64
	if len(last.Events) > 0 {
		since = last.Events[0].Seq
	}
	return func(want int) []*acliv1.Event {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			all, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "iscsi", Limit: 10000})
			if err != nil {
				t.Fatal(err)
			}
			var out []*acliv1.Event
			for _, e := range all.Events {
				if e.Seq > since {
					out = append(out, e)
				}
			}
			slices.SortFunc(out, func(a, b *acliv1.Event) int { return int(a.Seq) - int(b.Seq) })
			if len(out) >= want || time.Now().After(deadline) {
				return out
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func moveEvents(evs []*acliv1.Event) []string {
	var out []string
	for _, e := range evs {
		if strings.HasPrefix(e.Message, "session ") && strings.Contains(e.Message, " moved ") {
			out = append(out, e.Message)
		}
	}
	slices.Sort(out)
	return out
}

// cvmDownAt returns the time of the latest "cvm ... is down" event of ip.
func cvmEventAt(t *testing.T, c clients, ip, state string) time.Time {
	t.Helper()
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "cvm", Limit: 1000})
	var at time.Time
	for _, e := range evs.Events {
		if strings.HasPrefix(e.Message, "cvm "+ip+" ") && strings.Contains(e.Message, " is "+state) && e.Time.AsTime().After(at) {
			at = e.Time.AsTime()
		}
	}
	if at.IsZero() {
		t.Fatalf("no event of cvm %s being %s", ip, state)
	}
	return at
}

// TestVgExternalFailoverAndFailback: a 3-disk VG attached to an external
// initiator gets one session per CVM; when the CVM of host 1 fails its
// session moves to a healthy CVM within the deadline, with an event, and
// comes back when it recovers.
func TestVgExternalFailoverAndFailback(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 3)
	task := succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: "IQN.1994-05.com.RedHat:client1"}))
	if msg := task.Messages[len(task.Messages)-1]; !strings.Contains(msg, "3 sessions on 127.20.0.31, 127.20.0.32, 127.20.0.33") {
		t.Fatalf("attach message %q", msg)
	}
	before := sessions(t, vg, "data")
	if len(before) != 3 {
		t.Fatalf("sessions %v", before)
	}
	for _, s := range before {
		if s.InitiatorIqn != initiator || s.Port != 3205 || s.State != acliv1.IscsiSessionState_kSessionActive ||
			s.PreferredCvmIp != s.CvmIp || !strings.HasSuffix(s.TargetIqn, fmt.Sprintf("-tgt%d", s.DiskIndex)) ||
			!strings.HasPrefix(s.TargetIqn, "iqn.2010-06.dev.acli:data-") || s.CvmHostUuid == "" || s.Since == nil {
			t.Fatalf("session %v", s)
		}
	}
	if got := cvmCounts(before); len(got) != 3 {
		t.Fatalf("sessions not spread over the three CVMs: %v", got)
	}
	want := servedBy(before)

	evs := iscsiEvents(t, c)
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.21"}); err != nil {
		t.Fatal(err)
	}
	committedWithin(t, h, h.Manager.IscsiDeadline())
	during := sessions(t, vg, "data")
	counts := cvmCounts(during)
	if counts["127.20.0.31"] != 0 || counts["127.20.0.32"]+counts["127.20.0.33"] != 3 || len(during) != 3 {
		t.Fatalf("after failing cvm 127.20.0.31: %v", counts)
	}
	var moved *acliv1.IscsiSession
	for _, s := range during {
		if s.State != acliv1.IscsiSessionState_kSessionActive {
			t.Fatalf("session %v not active", s)
		}
		if s.PreferredCvmIp == "127.20.0.31" {
			moved = s
		}
	}
	if moved == nil {
		t.Fatalf("no session remembers 127.20.0.31 as preferred: %v", during)
	}
	wantMsg := fmt.Sprintf("session %s/%d moved 127.20.0.31 -> %s", initiator, moved.DiskIndex, moved.CvmIp)
	got := evs(1)
	if mv := moveEvents(got); !slices.Equal(mv, []string{wantMsg}) {
		t.Fatalf("move events %q, want %q", mv, wantMsg)
	}
	downAt := cvmEventAt(t, c, "127.20.0.31", "down")
	for _, e := range got {
		if e.Message == wantMsg {
			if lag := e.Time.AsTime().Sub(downAt); lag < 0 || lag > h.Manager.IscsiDeadline() {
				t.Fatalf("moved %v after the cvm went down; deadline %v", lag, h.Manager.IscsiDeadline())
			}
			if e.Severity != "warning" || e.Entities[0].Name != "data" {
				t.Fatalf("move event %v", e)
			}
		}
	}

	evs = iscsiEvents(t, c)
	if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.21"}); err != nil {
		t.Fatal(err)
	}
	after := sessions(t, vg, "data")
	if got := servedBy(after); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after recovery sessions are %v, want them back at %v", got, want)
	}
	back := fmt.Sprintf("session %s/%d moved %s -> 127.20.0.31", initiator, moved.DiskIndex, moved.CvmIp)
	if mv := moveEvents(evs(1)); !slices.Equal(mv, []string{back}) {
		t.Fatalf("failback events %q, want %q", mv, back)
	}
}

// TestVgVmAttachedAndOwnDisks: a VM's own disks and its VG's disks are
// served by the CVM on its host (port 3261), redirected while that CVM is
// down, back when it recovers, and follow the VM when it migrates.
func TestVgVmAttachedAndOwnDisks(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	createVm(t, c, "db", 4*gib)
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "db", SizeBytes: 20 * gib}))
	makeVg(t, c, vg, "dbdata", 2)
	task := succeed(t, c)(vg.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "dbdata", Vm: "db"}))
	if !strings.Contains(task.Messages[0], "sessions start when it powers on") {
		t.Fatalf("attach to a stopped VM: %q", task.Messages)
	}
	if ss := sessions(t, vg, "dbdata"); len(ss) != 0 {
		t.Fatalf("a stopped VM has sessions: %v", ss)
	}
	succeed(t, c)(power(c, "db", acliv1.PowerTransition_kPowerOn))
	committedWithin(t, h, time.Second) // the VM's sessions start
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	cvmOf := map[string]string{}
	for _, hh := range hosts.Hosts {
		cvmOf[hh.Uuid] = hh.CvmIp
	}
	// checkDisks asserts every disk's CVM and path; it polls because VM
	// sessions follow power-on and migration on the periodic pass.
	checkDisks := func(wantPath string, wantNot string) *acliv1.Vm {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			v, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "db"})
			if err != nil {
				t.Fatal(err)
			}
			local := cvmOf[v.HostUuid]
			var bad []string
			if len(v.Disks) != 3 || len(v.VolumeGroupUuids) != 1 {
				bad = append(bad, fmt.Sprintf("%d disks, vgs %v", len(v.Disks), v.VolumeGroupUuids))
			}
			for _, d := range v.Disks {
				switch {
				case d.Path != wantPath:
					bad = append(bad, fmt.Sprintf("%s.%d path %q", d.Bus, d.Index, d.Path))
				case wantPath == "local" && d.ServedByCvmIp != local:
					bad = append(bad, fmt.Sprintf("%s.%d served by %s, local is %s", d.Bus, d.Index, d.ServedByCvmIp, local))
				case wantPath == "redirected" && (d.ServedByCvmIp == wantNot || d.ServedByCvmIp == ""):
					bad = append(bad, fmt.Sprintf("%s.%d served by %q", d.Bus, d.Index, d.ServedByCvmIp))
				}
			}
			if len(bad) == 0 {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("vm disks: %s (%v)", strings.Join(bad, "; "), v.Disks)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	v := checkDisks("local", "")
	local := cvmOf[v.HostUuid]
	ss := sessions(t, vg, "dbdata")
	for _, s := range ss {
		if s.Port != 3261 || s.VmUuid != v.Uuid || s.CvmIp != local || !strings.Contains(s.InitiatorIqn, v.Uuid) {
			t.Fatalf("vm session %v (local cvm %s)", s, local)
		}
	}

	evs := iscsiEvents(t, c)
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: v.HostUuid}); err != nil {
		t.Fatal(err)
	}
	committedWithin(t, h, h.Manager.IscsiDeadline())
	checkDisks("redirected", local)
	for _, s := range sessions(t, vg, "dbdata") {
		if s.CvmIp == local || s.PreferredCvmIp != local || s.Port != 3261 {
			t.Fatalf("vm session during failover %v", s)
		}
	}
	got := evs(3)
	if mv := moveEvents(got); len(mv) != 2 {
		t.Fatalf("move events %q in %v", mv, got)
	}
	if !slices.ContainsFunc(got, func(e *acliv1.Event) bool {
		return strings.HasPrefix(e.Message, "vm db disks redirected "+local+" -> ")
	}) {
		t.Fatalf("no redirect event for vm db: %v", got)
	}
	if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: v.HostUuid}); err != nil {
		t.Fatal(err)
	}
	checkDisks("local", "")

	// Migrate: own disks and VG sessions follow the VM to its new host.
	succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "db"}))
	moved := checkDisks("local", "")
	if moved.HostUuid == v.HostUuid {
		t.Fatalf("vm did not migrate")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := h.Manager.CheckIscsi(true); err == nil && cvmCounts(sessions(t, vg, "dbdata"))[cvmOf[moved.HostUuid]] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VG sessions did not follow the VM: %v", sessions(t, vg, "dbdata"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Power off: the VM's sessions end.
	succeed(t, c)(power(c, "db", acliv1.PowerTransition_kPowerOff))
	for len(sessions(t, vg, "dbdata")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("sessions of a stopped VM remain")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVgPropertyRandomCvmFailures fails and recovers CVMs at random
// (sometimes all of them) while a watcher checks the invariant on every
// snapshot readers can see; after each step the committed sessions hold it
// too, and each session is active exactly when its CVM is up.
func TestVgPropertyRandomCvmFailures(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := managertest.New(t, managertest.Options{Hosts: 4})
			c, vg := newClients(h.Conn), vgClient(h)
			makeVg(t, c, vg, "ext", 3)
			makeVg(t, c, vg, "vmvg", 2)
			for _, ini := range []string{initiator, "iqn.2001-04.com.example:storage.disk2", "eui.02004567A425678D"} {
				succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "ext", InitiatorName: ini}))
			}
			createVm(t, c, "app", 2*gib)
			succeed(t, c)(vg.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "vmvg", Vm: "app"}))
			succeed(t, c)(power(c, "app", acliv1.PowerTransition_kPowerOn))
			deadline := time.Now().Add(5 * time.Second)
			for h.Manager.CheckIscsi(true) != nil {
				if time.Now().After(deadline) {
					t.Fatal(h.Manager.CheckIscsi(true))
				}
				time.Sleep(5 * time.Millisecond)
			}

			var stop atomic.Bool
			var watchErr atomic.Value
			var checks atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					if err := h.Manager.CheckIscsi(false); err != nil {
						watchErr.CompareAndSwap(nil, err.Error())
					}
					checks.Add(1)
				}
			}()
			hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
			rng := rand.New(rand.NewPCG(seed, 7))
			for step := range 40 {
				hh := hosts.Hosts[rng.IntN(len(hosts.Hosts))]
				var err error
				if rng.IntN(2) == 0 {
					_, err = c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: hh.Name})
				} else {
					_, err = c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: hh.Name})
				}
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				// The fault RPC or the driver's event, whichever comes
				// first, fails over; the committed state follows within
				// the deadline (readers never see it lag: the watcher).
				committedWithin(t, h, h.Manager.IscsiDeadline())
				assertSessionStates(t, c, vg, step)
			}
			stop.Store(true)
			wg.Wait()
			if e := watchErr.Load(); e != nil {
				t.Fatalf("watcher: %v", e)
			}
			if checks.Load() == 0 {
				t.Fatal("the watcher never ran")
			}
		})
	}
}

// committedWithin waits until the committed sessions hold the invariant.
func committedWithin(t *testing.T, h *managertest.Harness, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := h.Manager.CheckIscsi(true)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", d, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// assertSessionStates checks through the API that sessions are active on up
// CVMs, and down only when no CVM is up.
func assertSessionStates(t *testing.T, c clients, vg acliv1.VolumeGroupServiceClient, step int) {
	t.Helper()
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	up := map[string]bool{}
	anyUp := false
	for _, h := range hosts.Hosts {
		up[h.CvmIp] = h.CvmState == acliv1.CvmState_kCvmUp
		anyUp = anyUp || up[h.CvmIp]
	}
	ss := sessions(t, vg, "")
	if len(ss) != 3*3+2 {
		t.Fatalf("step %d: %d sessions, want 11", step, len(ss))
	}
	for _, s := range ss {
		active := s.State == acliv1.IscsiSessionState_kSessionActive
		if active != up[s.CvmIp] || active != anyUp {
			t.Fatalf("step %d: session %s/%d on %s is %s (cvm up %v, any up %v)", step, s.InitiatorIqn, s.DiskIndex, s.CvmIp, s.State, up[s.CvmIp], anyUp)
		}
	}
}

// TestVgRestartKeepsSessions: VGs and sessions, failed over ones with
// their preferred CVM, survive a restart; failback still works after it.
func TestVgRestartKeepsSessions(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 3)
	succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	want := servedBy(sessions(t, vg, "data"))
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.22"}); err != nil {
		t.Fatal(err)
	}
	during := sessions(t, vg, "data")
	h.Stop()

	h = managertest.New(t, managertest.Options{Hosts: 3, Dir: h.Dir})
	c, vg = newClients(h.Conn), vgClient(h)
	g, err := vg.GetVolumeGroup(bg, &acliv1.GetVolumeGroupRequest{VolumeGroup: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Disks) != 3 || !slices.Equal(g.ExternalInitiators, []string{initiator}) || len(g.Sessions) != 3 {
		t.Fatalf("vg after restart %v", g)
	}
	for i, s := range sessions(t, vg, "data") {
		if s.CvmIp != during[i].CvmIp || s.PreferredCvmIp != during[i].PreferredCvmIp || !s.Since.AsTime().Equal(during[i].Since.AsTime()) {
			t.Fatalf("session %d after restart %v, before %v", i, s, during[i])
		}
	}
	if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.22"}); err != nil {
		t.Fatal(err)
	}
	if got := servedBy(sessions(t, vg, "data")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after restart and recovery %v, want %v", got, want)
	}
}

// TestVgFailbackPolicies: a delayed failback waits for the CVM to stay up
// (by the sessions' clock, which the test moves); NoFailback leaves sessions
// where failover put them.
func TestVgFailbackPolicies(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  manager.IscsiConfig
		back bool
	}{
		{"delayed", manager.IscsiConfig{FailbackDelay: 300 * time.Second}, true}, // 300 ms at speed 1000
		{"never", manager.IscsiConfig{NoFailback: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The sessions' clock moves only when the test moves it: on
			// the wall clock, a loaded machine's 100 ms sleep can outlast
			// the 300 ms delay.
			var ahead atomic.Int64
			start := time.Now()
			tc.cfg.Now = func() time.Time { return start.Add(time.Duration(ahead.Load())) }
			tc.cfg.ReconcileInterval = 10 * time.Millisecond
			h := managertest.New(t, managertest.Options{Hosts: 3, Manager: func(cfg *manager.Config) { cfg.Iscsi = tc.cfg }})
			c, vg := newClients(h.Conn), vgClient(h)
			makeVg(t, c, vg, "data", 3)
			succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
			want := servedBy(sessions(t, vg, "data"))
			c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.23"})
			failed := servedBy(sessions(t, vg, "data"))
			c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.23"})
			time.Sleep(100 * time.Millisecond) // ten periodic passes, the clock standing still
			if got := servedBy(sessions(t, vg, "data")); fmt.Sprint(got) != fmt.Sprint(failed) {
				t.Fatalf("sessions moved back before the delay: %v", got)
			}
			ahead.Store(int64(time.Hour))
			if !tc.back {
				time.Sleep(100 * time.Millisecond)
				if got := servedBy(sessions(t, vg, "data")); fmt.Sprint(got) != fmt.Sprint(failed) {
					t.Fatalf("sessions moved back with failback off: %v", got)
				}
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for fmt.Sprint(servedBy(sessions(t, vg, "data"))) != fmt.Sprint(want) {
				if time.Now().After(deadline) {
					t.Fatal("sessions never failed back")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestVgBadInput: every refusal is one line naming the problem, with the
// structured detail the CLI maps to its exit code.
func TestVgBadInput(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 1)

	_, err := vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: "iqn:2024-01.com.example:h1"})
	st := wantCode(t, err, codes.InvalidArgument, "did you mean iqn.2024-01.com.example:h1?")
	if br := detail[*errdetails.BadRequest](t, st); br.FieldViolations[0].Field != "initiator_name" {
		t.Fatalf("bad request %v", br)
	}
	_, err = vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: "iqn.2024-13.com.example"})
	wantCode(t, err, codes.InvalidArgument, "month 01-12")

	_, err = vg.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data"})
	st = wantCode(t, err, codes.InvalidArgument, "must be greater than 0")
	if br := detail[*errdetails.BadRequest](t, st); br.FieldViolations[0].Field != "size_bytes" {
		t.Fatalf("bad request %v", br)
	}
	_, err = vg.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", SizeBytes: -1})
	wantCode(t, err, codes.InvalidArgument, "size -1")

	_, err = vg.GetVolumeGroup(bg, &acliv1.GetVolumeGroupRequest{VolumeGroup: "dta"})
	st = wantCode(t, err, codes.NotFound, `did you mean "data"?`)
	if ri := detail[*errdetails.ResourceInfo](t, st); ri.ResourceType != "volume group" || ri.ResourceName != "dta" {
		t.Fatalf("resource info %v", ri)
	}
	_, err = vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "nope", InitiatorName: initiator})
	wantCode(t, err, codes.NotFound, `volume group "nope" not found`)

	_, err = vg.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: "data"})
	wantCode(t, err, codes.AlreadyExists, "volume group names are unique")
	_, err = vg.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: "x", IscsiTargetPrefix: "my_prefix"})
	wantCode(t, err, codes.InvalidArgument, `did you mean "my-prefix"?`)
	_, err = vg.DeleteVgDisk(bg, &acliv1.DeleteVgDiskRequest{VolumeGroup: "data", Index: 7})
	wantCode(t, err, codes.NotFound, `vg disk "7" not found`)

	succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	_, err = vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator})
	wantCode(t, err, codes.AlreadyExists, "already attached")
	createVm(t, c, "web", gib)
	succeed(t, c)(vg.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "data", Vm: "web"}))
	_, err = vg.DeleteVolumeGroup(bg, &acliv1.DeleteVolumeGroupRequest{VolumeGroup: "data"})
	st = wantCode(t, err, codes.FailedPrecondition, "volume group data is attached; detach it first: attached to initiator "+initiator)
	pf := detail[*errdetails.PreconditionFailure](t, st)
	var subjects []string
	for _, v := range pf.Violations {
		subjects = append(subjects, v.Subject)
	}
	if !slices.Equal(subjects, []string{"initiator:" + initiator, "vm:web"}) {
		t.Fatalf("violations %v", subjects)
	}
	_, err = vg.DetachFromVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "data", Vm: "nosuch"})
	wantCode(t, err, codes.NotFound, `vm "nosuch" not found`)

	// Detach everything, then delete works and the VG is gone.
	succeed(t, c)(vg.DetachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	succeed(t, c)(vg.DetachFromVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "data", Vm: "web"}))
	succeed(t, c)(vg.DeleteVolumeGroup(bg, &acliv1.DeleteVolumeGroupRequest{VolumeGroup: "data"}))
	list, _ := vg.ListVolumeGroups(bg, &acliv1.ListVolumeGroupsRequest{})
	if len(list.VolumeGroups) != 0 {
		t.Fatalf("volume groups after delete: %v", list.VolumeGroups)
	}
}

// TestVgDisksAndUpdate: adding and removing vDisks of an attached VG starts
// and ends their sessions; renaming keeps the target; update changes fields.
func TestVgDisksAndUpdate(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 2)
	succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	succeed(t, c)(vg.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", SizeBytes: gib}))
	if ss := sessions(t, vg, "data"); len(ss) != 3 || len(cvmCounts(ss)) != 3 {
		t.Fatalf("sessions after adding a disk: %v", ss)
	}
	succeed(t, c)(vg.DeleteVgDisk(bg, &acliv1.DeleteVgDiskRequest{VolumeGroup: "data", Index: 0}))
	ss := sessions(t, vg, "data")
	if len(ss) != 2 || ss[0].DiskIndex != 1 || ss[1].DiskIndex != 2 {
		t.Fatalf("sessions after deleting disk 0: %v", ss)
	}
	before, _ := vg.GetVolumeGroup(bg, &acliv1.GetVolumeGroupRequest{VolumeGroup: "data"})
	name, desc, lb := "data2", "db logs", true
	succeed(t, c)(vg.UpdateVolumeGroup(bg, &acliv1.UpdateVolumeGroupRequest{VolumeGroup: "data", Name: &name, Description: &desc, LoadBalanceVmAttachments: &lb}))
	after, err := vg.GetVolumeGroup(bg, &acliv1.GetVolumeGroupRequest{VolumeGroup: before.Uuid})
	if err != nil {
		t.Fatal(err)
	}
	if after.Name != "data2" || after.Description != desc || !after.LoadBalanceVmAttachments || after.IscsiTarget != before.IscsiTarget ||
		after.Sessions[0].VolumeGroupName != "data2" {
		t.Fatalf("after update %v", after)
	}
	if _, err := vg.GetVolumeGroup(bg, &acliv1.GetVolumeGroupRequest{VolumeGroup: "data"}); err == nil {
		t.Fatal("old name still resolves")
	}

	// Deleting a VM detaches it: the VG forgets it and can be deleted.
	makeVg(t, c, vg, "scratch", 1)
	createVm(t, c, "tmp", gib)
	succeed(t, c)(vg.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "scratch", Vm: "tmp"}))
	succeed(t, c)(power(c, "tmp", acliv1.PowerTransition_kPowerOn))
	committedWithin(t, h, time.Second)
	succeed(t, c)(power(c, "tmp", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "tmp"}))
	g, _ := vg.GetVolumeGroup(bg, &acliv1.GetVolumeGroupRequest{VolumeGroup: "scratch"})
	if len(g.VmUuids) != 0 || len(g.Sessions) != 0 {
		t.Fatalf("vg of a deleted vm: %v", g)
	}
	succeed(t, c)(vg.DeleteVolumeGroup(bg, &acliv1.DeleteVolumeGroupRequest{VolumeGroup: "scratch"}))
	committedWithin(t, h, time.Second)
}
