package maintenance_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
)

var errTargetGone = errors.New("target host h2 stopped taking VMs")

// fakeCluster is a manager with hosts h1..h3 and VMs, whose moves and
// power actions do what the test says; it checks the locks and
// reservations the steps take and give back.
type fakeCluster struct {
	mu        sync.Mutex
	hosts     map[string]*acliv1.Host
	vms       map[string]*acliv1.Vm
	revs      map[string]int64
	locked    map[string]bool
	held      map[string]bool // VMs with a target reservation
	migrateTo map[string][]error
	shutdown  map[string]error
	log       []string
	events    []string
}

func newFakeCluster(vms ...*acliv1.Vm) *fakeCluster {
	c := &fakeCluster{hosts: map[string]*acliv1.Host{}, vms: map[string]*acliv1.Vm{}, revs: map[string]int64{},
		locked: map[string]bool{}, held: map[string]bool{}, migrateTo: map[string][]error{}, shutdown: map[string]error{}}
	for _, n := range []string{"h1", "h2", "h3"} {
		c.hosts["uuid-"+n] = &acliv1.Host{Uuid: "uuid-" + n, Name: n, HypervisorIp: "127.42.0." + n[1:]}
	}
	for _, v := range vms {
		c.vms[v.Uuid], c.revs[v.Uuid] = v, 1
		c.held[v.Uuid] = !v.AgentVm || v.HostUuid == "" // the plan reserves moves and power-ons
		if !c.held[v.Uuid] {
			delete(c.held, v.Uuid)
		}
	}
	return c
}

func fakeVM(name, host string, mut ...func(*acliv1.Vm)) *acliv1.Vm {
	v := &acliv1.Vm{Uuid: name, Name: name, MemoryBytes: 1 << 30}
	if host != "" {
		v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOn, "uuid-"+host, host
	}
	for _, f := range mut {
		f(v)
	}
	return v
}

func (c *fakeCluster) Lock(_ context.Context, id string) (*acliv1.Vm, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locked[id] {
		return nil, 0, fmt.Errorf("vm %s locked twice", id)
	}
	v := c.vms[id]
	if v == nil {
		return nil, 0, nil
	}
	c.locked[id] = true
	return v, c.revs[id], nil
}

func (c *fakeCluster) Unlock(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.locked[id] {
		c.log = append(c.log, "unlock of an unlocked vm "+id)
	}
	delete(c.locked, id)
}

func (c *fakeCluster) LetGo(id string) { c.mu.Lock(); delete(c.held, id); c.mu.Unlock() }

func (c *fakeCluster) Host(id string) *acliv1.Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[id]
}
func (c *fakeCluster) Vm(id string) *acliv1.Vm { c.mu.Lock(); defer c.mu.Unlock(); return c.vms[id] }

func (c *fakeCluster) Migrate(_ context.Context, vm *acliv1.Vm, rev int64, src, dst *acliv1.Host, cold bool, edit func(*acliv1.Vm), _ func() int32) (fmt.Stringer, error) {
	c.mu.Lock()
	q := c.migrateTo[vm.Uuid]
	var err error
	if len(q) > 0 {
		err, c.migrateTo[vm.Uuid] = q[0], q[1:]
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	next := proto.Clone(vm).(*acliv1.Vm)
	next.HostUuid, next.HostName = dst.Uuid, dst.Name
	edit(next)
	if err := c.Record(context.Background(), next, rev, true); err != nil {
		return nil, err
	}
	how := "live"
	if cold {
		how = "offline"
	}
	return stringer(how), nil
}

type stringer string

func (s stringer) String() string { return string(s) }

func (c *fakeCluster) TargetGone(err error) bool { return errors.Is(err, errTargetGone) }

func (c *fakeCluster) Shutdown(_ context.Context, _ *acliv1.Host, vm *acliv1.Vm) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shutdown[vm.Uuid]
}

func (c *fakeCluster) PowerOn(context.Context, *acliv1.Host, *acliv1.Vm) error { return nil }

func (c *fakeCluster) Record(_ context.Context, next *acliv1.Vm, rev int64, release bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.locked[next.Uuid] {
		return fmt.Errorf("vm %s recorded without its lock", next.Uuid)
	}
	if c.revs[next.Uuid] != rev {
		return fmt.Errorf("vm %s: revision %d, want %d", next.Uuid, rev, c.revs[next.Uuid])
	}
	c.vms[next.Uuid] = next
	c.revs[next.Uuid]++
	if release {
		delete(c.held, next.Uuid)
	}
	return nil
}

func (c *fakeCluster) Progress(_ int32, format string, args ...any) {}

func (c *fakeCluster) Message(_ int32, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, fmt.Sprintf(format, args...))
}

func (c *fakeCluster) Event(vm *acliv1.Vm, h *acliv1.Host, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, fmt.Sprintf(format, args...))
}

// plan plans the VMs still on h1: agent VMs shut down, the others to h2.
func (c *fakeCluster) plan() *scheduler.Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &scheduler.Plan{}
	var ids []string
	for id, v := range c.vms {
		if v.HostUuid == "uuid-h1" && v.PowerState == acliv1.PowerState_kOn {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := scheduler.Step{VM: scheduler.VMRef{UUID: id, Name: id}, Action: scheduler.ActionMigrate, Target: scheduler.HostRef{UUID: "uuid-h2", Name: "h2"}}
		if c.vms[id].AgentVm {
			s = scheduler.Step{VM: s.VM, Action: scheduler.ActionShutdown, Reason: "agent VM"}
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

func (c *fakeCluster) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.locked {
		t.Errorf("vm %s is still locked", id)
	}
	for id := range c.held {
		t.Errorf("vm %s still holds its reservation", id)
	}
	for _, l := range c.log {
		if strings.Contains(l, "unlock of an unlocked") {
			t.Error(l)
		}
	}
}

func agent(v *acliv1.Vm) { v.AgentVm = true }

// An evacuation with migrate and shutdown steps: VMs move and remember
// where they came from, the agent VM is shut down last and recorded off,
// a VM that left meanwhile is skipped, a target that went away is planned
// again, and a failed move is kept with its reason. Every lock and
// reservation is given back.
func TestEvacuateSteps(t *testing.T) {
	c := newFakeCluster(fakeVM("a", "h1"), fakeVM("b", "h1"), fakeVM("gone", "h1"), fakeVM("retry", "h1"),
		fakeVM("bad", "h1"), fakeVM("agent", "h1", agent))
	c.migrateTo["retry"] = []error{errTargetGone}
	c.migrateTo["bad"] = []error{errors.New("qemu said no")}
	plan := c.plan()
	// "gone" moved by hand after the plan was made.
	c.vms["gone"] = fakeVM("gone", "h3")
	d := &maintenance.Drain{Limit: 2, Replan: func(ctx context.Context, keep func(*scheduler.Plan) bool) (*scheduler.Plan, error) {
		p := c.plan()
		if !keep(p) {
			return nil, nil
		}
		c.mu.Lock()
		for _, s := range p.Steps {
			if s.Action == scheduler.ActionMigrate {
				c.held[s.VM.UUID] = true
			}
		}
		c.mu.Unlock()
		return p, nil
	}}
	maintenance.Evacuate(d, c, c.hosts["uuid-h1"], acliv1.MaintenanceMode_kMaintenanceLive)
	if err := d.Run(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "retry"} {
		if v := c.vms[id]; v.HostUuid != "uuid-h2" || v.OriginalHostUuid != "uuid-h1" {
			t.Errorf("vm %s on %s from %q, want on h2 from h1", id, v.HostName, v.OriginalHostUuid)
		}
	}
	if v := c.vms["gone"]; v.HostUuid != "uuid-h3" || v.OriginalHostUuid != "" {
		t.Errorf("a VM that had left was moved: %+v", v)
	}
	if v := c.vms["bad"]; v.HostUuid != "uuid-h1" || !strings.Contains(d.Failure("bad"), "vm bad: migration to h2 (127.42.0.2) failed: qemu said no") {
		t.Errorf("failed VM on %s, failure %q", v.HostName, d.Failure("bad"))
	}
	// The drain is blocked by "bad": the agent VM is not shut down for nothing.
	if v := c.vms["agent"]; v.PowerState != acliv1.PowerState_kOn {
		t.Errorf("agent VM shut down although the drain is blocked: %s", v.PowerState)
	}
	if migrated, shutdown := d.Moved(); migrated != 3 || shutdown != 0 {
		t.Errorf("moved %d, shut down %d", migrated, shutdown)
	}
	if !slices.Contains(c.log, "vm retry not moved yet: "+errTargetGone.Error()) {
		t.Errorf("log %q", c.log)
	}
	c.check(t)

	// Once nothing blocks, the agent VM is shut down, recorded off with
	// the host it returns to.
	c2 := newFakeCluster(fakeVM("a", "h1"), fakeVM("agent", "h1", agent))
	d2 := &maintenance.Drain{Limit: 1, Replan: func(ctx context.Context, keep func(*scheduler.Plan) bool) (*scheduler.Plan, error) {
		p := c2.plan()
		if !keep(p) {
			return nil, nil
		}
		return p, nil
	}}
	maintenance.Evacuate(d2, c2, c2.hosts["uuid-h1"], acliv1.MaintenanceMode_kMaintenanceCold)
	if err := d2.Run(context.Background(), c2.plan()); err != nil {
		t.Fatal(err)
	}
	if v := c2.vms["agent"]; v.PowerState != acliv1.PowerState_kOff || v.HostUuid != "" || v.OriginalHostUuid != "uuid-h1" {
		t.Errorf("agent VM after the drain: %+v", v)
	}
	if !slices.Contains(c2.log, "vm a migrated to h2 (127.42.0.2) (offline)") {
		t.Errorf("a cold move reads %q", c2.log)
	}
	if len(c2.events) != 1 || c2.events[0] != "vm agent shut down for the maintenance of h1 (127.42.0.1) (agent VM)" {
		t.Errorf("events %q", c2.events)
	}
	c2.check(t)
}

// The return: a shut-down VM powers on on the host, a migrated one comes
// back live, and a VM that cannot return forgets the host; VMs no longer
// naming the host are left alone.
func TestBringSteps(t *testing.T) {
	from := func(v *acliv1.Vm) { v.OriginalHostUuid = "uuid-h1" }
	c := newFakeCluster(fakeVM("off", "", from), fakeVM("moved", "h2", from), fakeVM("stuck", "h3", from),
		fakeVM("other", "h2"), fakeVM("agent", "", from, agent))
	delete(c.held, "stuck") // nothing is reserved for a VM that stays
	step := func(id string, a scheduler.Action) scheduler.Step {
		return scheduler.Step{VM: scheduler.VMRef{UUID: id, Name: id}, Action: a, Target: scheduler.HostRef{UUID: "uuid-h1", Name: "h1"}, Reason: "vm " + id + " cannot return"}
	}
	plan := &scheduler.Plan{Steps: []scheduler.Step{
		step("off", scheduler.ActionRestart), step("moved", scheduler.ActionMigrate), step("stuck", scheduler.ActionNone),
		step("other", scheduler.ActionMigrate), step("agent", scheduler.ActionRestart),
	}}
	r := &maintenance.Return{Limit: 2}
	maintenance.Bring(r, c, c.hosts["uuid-h1"])
	if err := r.Run(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"off", "moved", "agent"} {
		if v := c.vms[id]; v.HostUuid != "uuid-h1" || v.PowerState != acliv1.PowerState_kOn || v.OriginalHostUuid != "" {
			t.Errorf("vm %s: %+v, want on h1 with no origin", id, v)
		}
	}
	if v := c.vms["stuck"]; v.HostUuid != "uuid-h3" || v.OriginalHostUuid != "" {
		t.Errorf("vm stuck: %+v, want on h3 with no origin", v)
	}
	if v := c.vms["other"]; v.HostUuid != "uuid-h2" {
		t.Errorf("a VM not from h1 was moved: %+v", v)
	}
	back, on, failures := r.Tally()
	if back != 1 || on != 2 || len(failures) != 0 {
		t.Errorf("tally %d back, %d on, failures %q", back, on, failures)
	}
	if !slices.Contains(c.log, "vm stuck cannot return; it stays where it is") {
		t.Errorf("log %q", c.log)
	}
	c.check(t)
}
