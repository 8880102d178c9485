package ha

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/scheduler"
)

// fakeClock moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	tick   chan time.Time
	timers []chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1000, 0), tick: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Ticker(time.Duration) (<-chan time.Time, func()) {
	return c.tick, func() {}
}
func (c *fakeClock) After(time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, ch)
	return ch
}

// advance moves the time on and ticks once (the monitor reads the tick).
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	c.tick <- now
}

// fire ends every timer set so far; it reports how many.
func (c *fakeClock) fire() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.timers)
	for _, ch := range c.timers {
		ch <- c.now
	}
	c.timers = nil
	return n
}

// waitTimer waits until the code under test sets a timer.
func (c *fakeClock) waitTimer(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.timers)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no timer was set")
}

var errRefused = errors.New("refused by the rules")

// fakeCluster is a small cluster whose Record enforces the placement rule
// at commit, as manager/state does: a running VM only on an up,
// schedulable host. It logs every action in order.
type fakeCluster struct {
	mu      sync.Mutex
	hosts   map[string]*acliv1.Host
	vms     map[string]*acliv1.Vm
	revs    map[string]int64
	fence   func(vm string) error // nil: fencing succeeds
	prePlan func()                // runs before each plan
	onPlan  func(round int)       // runs after each plan
	onOn    func(host string)     // runs after each power-on
	plans   int
	log     []string
	events  []string
	msgs    []string
}

func newFakeCluster(hosts ...string) *fakeCluster {
	c := &fakeCluster{hosts: map[string]*acliv1.Host{}, vms: map[string]*acliv1.Vm{}, revs: map[string]int64{}}
	for i, h := range hosts {
		c.hosts[h] = &acliv1.Host{Uuid: h, Name: h, HypervisorIp: fmt.Sprintf("127.42.0.%d", i+1), Schedulable: true,
			NodeState: acliv1.NodeState_AcropolisNormal}
	}
	return c
}

func (c *fakeCluster) addVM(name, host string, prio int32) {
	c.vms[name] = &acliv1.Vm{Uuid: name, Name: name, HostUuid: host, HostName: host, PowerState: acliv1.PowerState_kOn, HaPriority: prio}
	c.revs[name] = 1
}

func (c *fakeCluster) setHost(h string, down, schedulable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := acliv1.NodeState_AcropolisNormal
	if down {
		st = acliv1.NodeState_kNodeDown
	}
	c.hosts[h].NodeState, c.hosts[h].Schedulable = st, schedulable
}

func (c *fakeCluster) takes(h string) bool {
	r := c.hosts[h]
	return r != nil && r.NodeState == acliv1.NodeState_AcropolisNormal && r.Schedulable
}

func (c *fakeCluster) logf(format string, args ...any) {
	c.log = append(c.log, fmt.Sprintf(format, args...))
}

// Plan puts each VM of the down host on the first host (by name) that
// takes VMs.
func (c *fakeCluster) Plan(down string) (*scheduler.HAPlan, error) {
	if c.prePlan != nil {
		c.prePlan()
	}
	c.mu.Lock()
	plan := &scheduler.HAPlan{}
	var targets []string
	for h := range c.hosts {
		if h != down && c.takes(h) {
			targets = append(targets, h)
		}
	}
	slices.Sort(targets)
	for _, v := range c.vms {
		if v.HostUuid != down || v.PowerState != acliv1.PowerState_kOn {
			continue
		}
		s := scheduler.Step{VM: scheduler.VMRef{UUID: v.Uuid, Name: v.Name}, Action: scheduler.ActionRestart}
		if len(targets) == 0 {
			s.Reason = "no eligible host for vm " + v.Name
			plan.NotRestarted = append(plan.NotRestarted, s)
			continue
		}
		s.Target = scheduler.HostRef{UUID: targets[0], Name: targets[0]}
		plan.Restarts = append(plan.Restarts, s)
	}
	c.plans++
	round, hook := c.plans, c.onPlan
	c.logf("plan %d", round)
	c.mu.Unlock()
	if hook != nil {
		hook(round)
	}
	return plan, nil
}

func (c *fakeCluster) Claim(_ context.Context, vm string) (*acliv1.Vm, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.vms[vm]
	if v == nil {
		return nil, 0, nil
	}
	return v, c.revs[vm], nil
}

func (c *fakeCluster) LetGo(string) {}

func (c *fakeCluster) Fence(_ context.Context, down *acliv1.Host, vm *acliv1.Vm) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fence != nil {
		if err := c.fence(vm.Uuid); err != nil {
			c.logf("fence %s on %s failed", vm.Name, down.Name)
			return err
		}
	}
	c.logf("fence %s on %s", vm.Name, down.Name)
	return nil
}

// Target re-validates like the manager: a planned target that no longer
// takes VMs is replaced by another that does.
func (c *fakeCluster) Target(down *acliv1.Host, _ *acliv1.Vm, planned string) (*acliv1.Host, func(), string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.takes(planned) {
		return c.hosts[planned], func() {}, ""
	}
	var others []string
	for h := range c.hosts {
		if h != down.Uuid && h != planned && c.takes(h) {
			others = append(others, h)
		}
	}
	if len(others) == 0 {
		return nil, nil, "target " + planned + " can no longer take it, and no other host can take it now"
	}
	slices.Sort(others)
	return c.hosts[others[0]], func() {}, ""
}

func (c *fakeCluster) WithDevicesOn(vm *acliv1.Vm, _ string) (*acliv1.Vm, error) { return vm, nil }

func (c *fakeCluster) PowerOn(_ context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	c.mu.Lock()
	c.logf("power-on %s on %s", vm.Name, h.Name)
	hook := c.onOn
	c.mu.Unlock()
	if hook != nil {
		hook(h.Uuid)
	}
	return nil
}

func (c *fakeCluster) PowerOff(_ context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logf("power-off %s on %s", vm.Name, h.Name)
	return nil
}

func (c *fakeCluster) Record(_ context.Context, next *acliv1.Vm, rev int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revs[next.Uuid] != rev {
		return fmt.Errorf("vm %s changed meanwhile", next.Name)
	}
	if next.PowerState == acliv1.PowerState_kOn && !c.takes(next.HostUuid) {
		c.logf("record %s on %s refused", next.Name, next.HostName)
		return errRefused
	}
	c.vms[next.Uuid] = next
	c.revs[next.Uuid]++
	if next.HostUuid == "" {
		c.logf("record %s off", next.Name)
	} else {
		c.logf("record %s on %s", next.Name, next.HostName)
	}
	return nil
}

func (c *fakeCluster) Refused(err error) bool { return errors.Is(err, errRefused) }

func (c *fakeCluster) Down(h string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[h].NodeState == acliv1.NodeState_kNodeDown
}

func (c *fakeCluster) Progress(int32, string, ...any) {}
func (c *fakeCluster) Message(_ int32, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, fmt.Sprintf(format, args...))
}
func (c *fakeCluster) Event(severity string, _ *acliv1.Vm, _ []*acliv1.Host, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, severity+": "+fmt.Sprintf(format, args...))
}

func (c *fakeCluster) vmHost(vm string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vms[vm].HostUuid
}

func (c *fakeCluster) trace() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, "\n")
}

func wantTrace(t *testing.T, c *fakeCluster, want ...string) {
	t.Helper()
	if got := c.trace(); got != strings.Join(want, "\n") {
		t.Fatalf("actions:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestRestartFencesFirst(t *testing.T) {
	c := newFakeCluster("h1", "h2", "h3")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	msg, err := Restart(context.Background(), c, c, newFakeClock(), 0, c.hosts["h1"])
	if err != nil {
		t.Fatal(err)
	}
	wantTrace(t, c, "plan 1", "fence v on h1", "power-on v on h2", "record v on h2")
	if msg != "HA restarted 1 VM(s) of h1 (127.42.0.1)" {
		t.Fatalf("closing line %q", msg)
	}
	if len(c.events) != 1 || !strings.HasPrefix(c.events[0], "warning: HA restarted vm v on h2") {
		t.Fatalf("events %q", c.events)
	}
}

// A VM whose copy cannot be fenced is never started elsewhere: it stays
// recorded on the down host, one event says why, and each retry tries the
// fence again until the host is back.
func TestRestartWithoutFenceStartsNothing(t *testing.T) {
	c := newFakeCluster("h1", "h2")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	c.fence = func(string) error { return errors.New("power-off: host unreachable") }
	clock := newFakeClock()
	type res struct {
		msg string
		err error
	}
	done := make(chan res, 1)
	go func() {
		msg, err := Restart(context.Background(), c, c, clock, time.Second, c.hosts["h1"])
		done <- res{msg, err}
	}()
	clock.waitTimer(t)
	clock.fire() // still down: a second round
	clock.waitTimer(t)
	c.setHost("h1", false, true)
	clock.fire()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantTrace(t, c, "plan 1", "fence v on h1 failed", "plan 2", "fence v on h1 failed")
	if c.vms["v"].HostUuid != "h1" || c.vms["v"].PowerState != acliv1.PowerState_kOn {
		t.Fatalf("unfenced vm recorded %v on %q", c.vms["v"].PowerState, c.vms["v"].HostUuid)
	}
	if len(c.events) != 1 || !strings.Contains(c.events[0], "HA does not restart vm v yet: its copy on h1 (127.42.0.1) is not fenced (power-off: host unreachable)") {
		t.Fatalf("events %q", c.events)
	}
	if !strings.Contains(r.msg, "1 VM(s) not fenced stay on h1 (127.42.0.1), which is back") {
		t.Fatalf("closing line %q", r.msg)
	}
}

// A target cordoned after the plan is replaced before the VM starts; a
// target that goes down while the VM starts there refuses the commit: the
// new copy is stopped and the VM planned again.
func TestRestartTargetRecheckedAtCommit(t *testing.T) {
	c := newFakeCluster("h1", "h2", "h3", "h4")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	c.onPlan = func(round int) {
		if round == 1 {
			c.setHost("h2", false, false) // cordoned after planning
		}
	}
	c.onOn = func(h string) {
		if h == "h3" {
			c.setHost("h3", true, true) // down while v starts there
		}
	}
	msg, err := Restart(context.Background(), c, c, newFakeClock(), 0, c.hosts["h1"])
	if err != nil {
		t.Fatal(err)
	}
	wantTrace(t, c, "plan 1", "fence v on h1", "power-on v on h3", "record v on h3 refused", "power-off v on h3",
		"plan 2", "fence v on h1", "power-on v on h4", "record v on h4")
	if msg != "HA restarted 1 VM(s) of h1 (127.42.0.1)" {
		t.Fatalf("closing line %q", msg)
	}
}

// The down host returns while its restart is planned: the VM's copy there
// is powered off (the fence) before it starts elsewhere, so it never runs
// twice, and it is recorded where it runs.
func TestRestartHostReturnsDuringPlanning(t *testing.T) {
	c := newFakeCluster("h1", "h2")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	c.onPlan = func(int) { c.setHost("h1", false, true) }
	if _, err := Restart(context.Background(), c, c, newFakeClock(), 0, c.hosts["h1"]); err != nil {
		t.Fatal(err)
	}
	wantTrace(t, c, "plan 1", "fence v on h1", "power-on v on h2", "record v on h2")
	if c.vms["v"].HostUuid != "h2" {
		t.Fatalf("v recorded on %q", c.vms["v"].HostUuid)
	}
}

// Refused at every commit: planned again a bounded number of times, then
// recorded off (it is fenced, so it runs nowhere).
func TestRestartRefusedEverywhereEndsOff(t *testing.T) {
	c := newFakeCluster("h1", "h2")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	c.onOn = func(h string) { c.setHost(h, false, false) }
	c.prePlan = func() { c.setHost("h2", false, true) }
	msg, err := Restart(context.Background(), c, c, newFakeClock(), 0, c.hosts["h1"])
	if err != nil {
		t.Fatal(err)
	}
	if c.plans != maxRefusedRounds+1 || c.vms["v"].PowerState != acliv1.PowerState_kOff || c.vms["v"].HostUuid != "" {
		t.Fatalf("%d plans, v %v on %q\n%s", c.plans, c.vms["v"].PowerState, c.vms["v"].HostUuid, c.trace())
	}
	if !strings.Contains(msg, "1 stay off: vm v was not restarted on h2") {
		t.Fatalf("closing line %q", msg)
	}
}

// controllerUnderTest runs a Controller over three hosts whose restarts
// go to c.
func controllerUnderTest(t *testing.T, c *fakeCluster) (*Controller, *fakeClock, *[]string, func()) {
	clock := newFakeClock()
	var mu sync.Mutex
	var downs []string
	ctl := &Controller{Clock: clock, Timeout: 4 * time.Second, Beats: &Beats{}}
	for _, h := range []string{"h1", "h2", "h3"} {
		ctl.Beats.Track(h, false, clock.Now())
	}
	ctl.MarkDown = func(id string, _ time.Duration, _ time.Time) {
		mu.Lock()
		downs = append(downs, id)
		mu.Unlock()
		c.setHost(id, true, true)
		ctl.Beats.Track(id, true, clock.Now())
		ctl.HostDown(c.hosts[id])
	}
	ctl.Suspect = func(silent, live int) {
		c.mu.Lock()
		c.events = append(c.events, fmt.Sprintf("suspect %d of %d", silent, live))
		c.mu.Unlock()
	}
	var wg sync.WaitGroup
	ctl.Launch = func(h *acliv1.Host, run func(context.Context, Cluster, Report) (string, error)) error {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := run(context.Background(), c, c)
			c.Message(100, "task: %s %v", msg, err)
		}()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	clock.advance(0) // Run has started
	stop := func() {
		cancel()
		<-done
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	return ctl, clock, &downs, stop
}

// beatAll refreshes the heartbeats of the given hosts at the clock's time.
func beatAll(ctl *Controller, clock *fakeClock, hosts ...string) {
	for _, h := range hosts {
		ctl.Beats.Receive(h, clock.Now(), clock.Now())
	}
}

func TestControllerOneSilentHostFailsOver(t *testing.T) {
	c := newFakeCluster("h1", "h2", "h3")
	c.addVM("v", "h3", 0)
	ctl, clock, downs, stop := controllerUnderTest(t, c)
	for range 8 {
		beatAll(ctl, clock, "h1", "h2")
		clock.advance(time.Second)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.vmHost("v") == "h3" || ctl.Running("h3") {
		if time.Now().After(deadline) {
			t.Fatalf("v not restarted:\n%s", c.trace())
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if len(*downs) != 1 || (*downs)[0] != "h3" {
		t.Fatalf("marked down %v", *downs)
	}
	wantTrace(t, c, "plan 1", "fence v on h3", "power-on v on h1", "record v on h1")
}

func TestControllerMassSilenceFailsNothingOver(t *testing.T) {
	c := newFakeCluster("h1", "h2", "h3")
	c.addVM("v", "h3", 0)
	ctl, clock, downs, stop := controllerUnderTest(t, c)
	for range 12 {
		beatAll(ctl, clock, "h1") // h2 and h3 silent together
		clock.advance(time.Second)
	}
	stop()
	if len(*downs) != 0 || c.trace() != "" {
		t.Fatalf("marked down %v; actions:\n%s", *downs, c.trace())
	}
	if len(c.events) != 1 || c.events[0] != "suspect 2 of 3" {
		t.Fatalf("events %q", c.events)
	}
}

// A host whose restart runs is not restarted twice.
func TestControllerOneRestartPerHost(t *testing.T) {
	c := newFakeCluster("h1", "h2")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	c.fence = func(string) error { return errors.New("unreachable") }
	clock := newFakeClock()
	launched := 0
	ctl := &Controller{Clock: clock, Timeout: time.Second, Beats: &Beats{}}
	release := make(chan struct{})
	var wg sync.WaitGroup
	ctl.Launch = func(h *acliv1.Host, run func(context.Context, Cluster, Report) (string, error)) error {
		launched++
		wg.Add(1)
		go func() { defer wg.Done(); <-release; run(context.Background(), c, c) }()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	ctl.HostDown(c.hosts["h1"])
	for !ctl.Running("h1") {
		time.Sleep(time.Millisecond)
	}
	ctl.HostDown(c.hosts["h1"])
	ctl.HostDown(c.hosts["h1"])
	c.setHost("h1", false, true)
	close(release)
	clock.waitTimer(t)
	clock.fire()
	wg.Wait()
	cancel()
	<-done
	if launched != 1 || ctl.Running("h1") {
		t.Fatalf("launched %d restarts, running %v", launched, ctl.Running("h1"))
	}
}

// Once Run runs, a down host's restart is launched before HostDown returns:
// the caller (a fault RPC, the monitor) never leaves the host's VMs recorded
// there, running nowhere, with no task restarting them.
func TestControllerHostDownLaunchesAtOnce(t *testing.T) {
	c := newFakeCluster("h1", "h2")
	c.addVM("v", "h1", 0)
	c.setHost("h1", true, true)
	ctl := &Controller{Clock: newFakeClock(), Timeout: time.Second, Beats: &Beats{}}
	var launched atomic.Int32
	ctl.Launch = func(*acliv1.Host, func(context.Context, Cluster, Report) (string, error)) error {
		launched.Add(1)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for {
		ctl.mu.Lock()
		started := ctl.started
		ctl.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctl.HostDown(c.hosts["h1"])
	if n := launched.Load(); n != 1 {
		t.Fatalf("HostDown returned with %d restart(s) launched, want 1", n)
	}
}

// A host's commit back up (or its join) is tracked before the Seen that
// follows the commit: the monitor must not find the host silent by its last
// beat from before the outage (or by none) in between, and mark it down again.
func TestTrackedUpIsNotSilent(t *testing.T) {
	const timeout = 2 * time.Second
	t0 := time.Unix(1000, 0)
	b := &Beats{}
	b.Track("h1", false, t0)
	b.Seen("h1", t0)
	b.Track("h1", true, t0.Add(timeout)) // marked down
	back := t0.Add(time.Minute)
	b.Track("h1", false, back)
	b.Track("new", false, back) // a host joining
	late, _, _ := hostsync.Decide(b.List(), back.Add(time.Millisecond), timeout)
	if len(late) != 0 {
		t.Fatalf("hosts tracked up at %v found silent just after: %v", back, late)
	}
	// Tracked up again while up: its beats alone say when it was heard from.
	b.Track("h1", false, back.Add(time.Hour))
	if late, _, _ := hostsync.Decide(b.List(), back.Add(timeout+time.Second), timeout); len(late) != 2 {
		t.Fatalf("silent for longer than the timeout: late %v, want both hosts", late)
	}
}
