package rulestest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// The rules the Checker enforces (DESIGN.md, "Rules the manager enforces
// at commit").
const (
	// RuleOneHost: a running VM is recorded on exactly one existing host.
	RuleOneHost = "one-host"
	// RuleNoOvercommit: a host's running VMs fit in its memory.
	RuleNoOvercommit = "no-overcommit"
	// RulePlacement: no VM is placed (powered on, migrated, restarted) on
	// a host that is down, unschedulable or in maintenance.
	RulePlacement = "placement"
	// RuleRFBudget: at most RF-1 hosts out at once; an operator never takes
	// a host out while another is already out, whatever took it out.
	RuleRFBudget = "rf-budget"
	// RuleConflict: two tasks never change one VM at the same time.
	RuleConflict = "conflict"
	// RuleTaskPersisted: every accepted mutation's task is found again,
	// also after manager restarts.
	RuleTaskPersisted = "task-persisted"
	// RuleTasksEnd: every task ends, also those a restart interrupted.
	RuleTasksEnd = "tasks-end"
	// RuleIntent: an operator's maintenance (host or CVM) and cordon
	// survive failures and restarts; only the operator ends them.
	RuleIntent = "intent"
	// RuleDeadHost: a host that has failed is recorded down (never in
	// maintenance or in service) until it recovers, and a healthy one is
	// not recorded down.
	RuleDeadHost = "dead-host"
	// RuleEvents: event sequence numbers only grow, across restarts too.
	RuleEvents = "events"
	// RuleCapacity: no storage container holds more than its size, by its
	// own count nor by the vDisks the VMs are recorded with.
	RuleCapacity = "container-capacity"
)

// Rules lists every rule, in report order.
var Rules = []string{RuleOneHost, RuleNoOvercommit, RulePlacement, RuleRFBudget, RuleConflict,
	RuleTaskPersisted, RuleTasksEnd, RuleIntent, RuleDeadHost, RuleEvents, RuleCapacity}

// DeadHostGrace is how long after a host fails the manager may still
// record it up (the heartbeat timeout plus slack for a loaded machine).
var DeadHostGrace = 6 * time.Second

// RecoverGrace is how long a healthy host may stay recorded down (after
// its recovery or a manager restart): generous, as a loaded test machine
// delays heartbeats; it catches a host that never comes back.
var RecoverGrace = 15 * time.Second

type tri int8

const (
	unset tri = iota
	yes
	unknown // an operation's outcome was lost (e.g. to a restart)
)

// intent is what the operator asked of a host, as the checker knows it.
type intent struct {
	maint, cvmMaint, cordon tri
	inFlight                int // host operations not yet ended
	begun                   int // host operations begun
}

// Checker checks the rules on consistent reads of the manager, taken after
// every batch of events, and on the task history. The soak tells it what
// the operator asked (HostOp), which faults it injected (Fault) and which
// tasks the manager accepted (Accepted). It is safe for concurrent use.
type Checker struct {
	mu       sync.Mutex
	rf       int
	prev     *snapshot
	intents  map[string]*intent   // host name ->
	failedAt map[string]time.Time // host name -> when the sim failed it
	// healthyAt: when the checker last knew every host healthy in the
	// sim (its start, a restart), or a host recovered (name ->).
	healthyAt time.Time
	upAt      map[string]time.Time
	// epoch counts the operator's and the fault injector's actions on a
	// host (name ->); a check comparing two reads of a host holds only if
	// nobody acted on it in between, so a quick cordon/uncordon between two
	// reads is never taken for the manager's doing.
	epoch      map[string]int
	accepted   map[string]acliv1.TaskOperation
	lastSeq    uint64
	gen        int // restarts seen; a read begun before one is dropped
	snapshots  int
	violations map[string]int
	examples   map[string][]string
	incidents  map[string]bool
}

// NewChecker returns a checker for a cluster of the given redundancy factor.
func NewChecker(rf int) *Checker {
	return &Checker{rf: rf, intents: map[string]*intent{}, failedAt: map[string]time.Time{}, upAt: map[string]time.Time{}, healthyAt: time.Now(), epoch: map[string]int{},
		accepted: map[string]acliv1.TaskOperation{}, violations: map[string]int{}, examples: map[string][]string{}, incidents: map[string]bool{}}
}

// violate records a violation of rule; key names the incident, so that a
// state seen broken on many reads counts once ("" counts every time).
func (c *Checker) violate(rule, key, format string, args ...any) {
	if key != "" {
		if c.incidents[rule+"\x00"+key] {
			return
		}
		c.incidents[rule+"\x00"+key] = true
	}
	c.violations[rule]++
	if len(c.examples[rule]) < 5 {
		c.examples[rule] = append(c.examples[rule], fmt.Sprintf(format, args...))
	}
}

// Violations returns the count per rule and up to five examples of each.
func (c *Checker) Violations() (map[string]int, map[string][]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ex := map[string][]string{}
	for k, v := range c.examples {
		ex[k] = slices.Clone(v)
	}
	return maps.Clone(c.violations), ex
}

func (c *Checker) intent(host string) *intent {
	in := c.intents[host]
	if in == nil {
		in = &intent{}
		c.intents[host] = in
	}
	return in
}

// Host operations the checker tracks the intent of.
const (
	OpEnterMaintenance    = "enter-maintenance"
	OpExitMaintenance     = "exit-maintenance"
	OpEnterCvmMaintenance = "enter-cvm-maintenance"
	OpExitCvmMaintenance  = "exit-cvm-maintenance"
	OpCordon              = "cordon"
	OpUncordon            = "uncordon"
)

// HostOp records that the operator starts op on host; call the returned
// function with the outcome: succeeded, refused (nothing changed) or
// neither (unknown). While it runs the host's intent is not checked.
func (c *Checker) HostOp(host, op string) (end func(succeeded, refused bool)) {
	c.mu.Lock()
	in := c.intent(host)
	in.inFlight++
	in.begun++
	mine := in.begun
	c.epoch[host]++
	// Ending an intent takes effect when asked: the manager may act on it
	// at once.
	switch op {
	case OpExitMaintenance:
		in.maint, in.cordon = unset, unset
	case OpExitCvmMaintenance:
		in.cvmMaint = unset
	case OpUncordon:
		in.cordon = unset
	}
	c.mu.Unlock()
	return func(succeeded, refused bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		in.inFlight--
		c.epoch[host]++
		// Another operation on the host overlapped this one: which
		// committed last is unknown.
		overlapped := in.inFlight > 0 || in.begun != mine
		set := func(f *tri) {
			switch {
			case succeeded && !overlapped:
				*f = yes
			case succeeded:
				*f = unknown
			case !refused && *f != yes:
				*f = unknown
			}
		}
		switch op {
		case OpEnterMaintenance:
			set(&in.maint)
		case OpEnterCvmMaintenance:
			set(&in.cvmMaint)
		case OpCordon:
			set(&in.cordon)
		}
	}
}

// Fault records a sim fault injected on a host (failed) or its recovery.
func (c *Checker) Fault(host string, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch[host]++
	if failed {
		c.failedAt[host] = time.Now()
		delete(c.upAt, host)
	} else {
		delete(c.failedAt, host)
		c.upAt[host] = time.Now()
	}
}

// Accepted records a task the manager returned for a mutation.
func (c *Checker) Accepted(t *acliv1.Task) {
	if t == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accepted[t.Uuid] = t.Operation
}

// Restarted tells the checker a manager restarted: state seen before is no
// base for comparisons. Faults outlive it (the new manager's sim starts its
// hosts and CVMs as recorded, so a failed one stays failed until
// recovered); a host healthy before has RecoverGrace from now to be
// recorded so.
func (c *Checker) Restarted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prev = nil
	c.gen++
	clear(c.upAt)
	c.healthyAt = time.Now()
}

// Event checks one event of the stream.
func (c *Checker) Event(e *acliv1.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Seq <= c.lastSeq {
		// Counted once per step back, not for every event after it.
		c.violate(RuleEvents, "", "event %d (%s: %s) after event %d: sequence numbers reused", e.Seq, e.Type, e.Message, c.lastSeq)
	}
	c.lastSeq = e.Seq
}

// LastSeq is the newest event sequence number seen, to resume a watch.
func (c *Checker) LastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// Snapshots is how many consistent reads were checked.
func (c *Checker) Snapshots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshots
}

// Hosts returns the names of the hosts of the last read that the operator
// holds out (node or CVM maintenance) and of those in service.
func (c *Checker) Hosts() (held, inService []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prev == nil {
		return nil, nil
	}
	for _, h := range c.prev.hosts {
		switch {
		case h.heldOut():
			held = append(held, h.name)
		case !h.out() && !h.closed():
			inService = append(inService, h.name)
		}
	}
	sort.Strings(held)
	sort.Strings(inService)
	return held, inService
}

// HostStates describes the hosts of the last read on one line.
func (c *Checker) HostStates() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prev == nil {
		return "(no read yet)"
	}
	var out []string
	for _, h := range c.prev.hosts {
		st := strings.TrimPrefix(h.state.String(), "k")
		if !h.schedulable {
			st += ",unschedulable"
		}
		out = append(out, fmt.Sprintf("%s=%s/%s", h.name, st, strings.TrimPrefix(h.cvm.String(), "kCvm")))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// hostView is what a check needs of a host.
type hostView struct {
	name        string
	state       acliv1.NodeState
	cvm         acliv1.CvmState
	schedulable bool
	memory      int64
	memoryUsed  int64
}

func (h hostView) closed() bool {
	return h.state != acliv1.NodeState_AcropolisNormal || !h.schedulable
}

// heldOut: the operator took it out (node or CVM maintenance).
func (h hostView) heldOut() bool {
	return h.state == acliv1.NodeState_EnteringMaintenanceMode || h.state == acliv1.NodeState_EnteredMaintenanceMode ||
		h.cvm == acliv1.CvmState_kCvmMaintenance
}

func (h hostView) out() bool {
	return h.heldOut() || h.state == acliv1.NodeState_kNodeDown || h.cvm == acliv1.CvmState_kCvmDown
}

type vmView struct {
	name, host string // host UUID
	on         bool
	memory     int64
	disks      map[string]int64 // container -> bytes of the VM's own vDisks
}

// containerView is a storage container as the manager counts it.
type containerView struct {
	capacity, used int64
}

type snapshot struct {
	began time.Time           // when the read began
	seen  time.Time           // when the first host list came back: the hosts were so by then
	at    time.Time           // when it ended
	epoch map[string]int      // Checker.epoch when the read began
	quiet map[string]bool     // host names nobody acted on during the read
	hosts map[string]hostView // by UUID; only hosts that read the same before and after the VMs
	vms   map[string]vmView   // by UUID
	known map[string]bool     // every host UUID
	// containers by name (nil when the manager keeps no storage)
	containers map[string]containerView
}

func hostViews(r *acliv1.ListHostsResponse) map[string]hostView {
	out := map[string]hostView{}
	for _, h := range r.Hosts {
		out[h.Uuid] = hostView{name: h.Name, state: h.NodeState, cvm: h.CvmState, schedulable: h.Schedulable,
			memory: h.MemoryBytes, memoryUsed: h.MemoryUsedBytes}
	}
	return out
}

// read takes a consistent read: hosts, VMs, hosts again; a host that
// changed in between is left out of the checks of this read.
func read(ctx context.Context, cl Clients) (*snapshot, error) {
	began := time.Now()
	h1, err := cl.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil, err
	}
	seen := time.Now()
	vr, err := cl.Vm.ListVms(ctx, &acliv1.ListVmsRequest{})
	if err != nil {
		return nil, err
	}
	h2, err := cl.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil, err
	}
	s := &snapshot{began: began, seen: seen, at: time.Now(), hosts: map[string]hostView{}, vms: map[string]vmView{}, known: map[string]bool{}}
	before := hostViews(h1)
	for id, h := range hostViews(h2) {
		s.known[id] = true
		if b, ok := before[id]; ok && b.state == h.state && b.cvm == h.cvm && b.schedulable == h.schedulable {
			s.hosts[id] = h
		}
	}
	for _, v := range vr.Vms {
		s.vms[v.Uuid] = vmView{name: v.Name, host: v.HostUuid, on: v.PowerState == acliv1.PowerState_kOn, memory: v.MemoryBytes, disks: vmDisks(v)}
	}
	if cl.Container != nil {
		cr, err := cl.Container.ListContainers(ctx, &acliv1.ListContainersRequest{})
		if err != nil {
			return nil, err
		}
		s.containers = map[string]containerView{}
		for _, c := range cr.Containers {
			s.containers[c.Name] = containerView{capacity: c.CapacityBytes, used: c.UsedBytes}
		}
	}
	return s, nil
}

// vmDisks is the space a VM's own vDisks take per container: CD-ROMs
// without a medium and volume group disks take none of it.
func vmDisks(v *acliv1.Vm) map[string]int64 {
	var out map[string]int64
	for _, d := range v.Disks {
		if d.VolumeGroupUuid != "" || (d.Cdrom && d.SizeBytes == 0) {
			continue
		}
		if out == nil {
			out = map[string]int64{}
		}
		out[cmp.Or(d.Container, "default-container")] += d.SizeBytes
	}
	return out
}

// Observe takes a consistent read and checks the state rules on it.
func (c *Checker) Observe(ctx context.Context, cl Clients) error {
	c.mu.Lock()
	gen := c.gen
	epoch := maps.Clone(c.epoch)
	busy := map[string]bool{}
	for h, in := range c.intents {
		busy[h] = in.inFlight > 0
	}
	c.mu.Unlock()
	s, err := read(ctx, cl)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if gen != c.gen {
		c.mu.Unlock()
		return nil
	}
	s.epoch, s.quiet = epoch, map[string]bool{}
	for _, h := range s.hosts {
		in := c.intents[h.name]
		s.quiet[h.name] = !busy[h.name] && (in == nil || in.inFlight == 0) && epoch[h.name] == c.epoch[h.name]
	}
	c.snapshots++
	cands := c.checkState(s, c.prev)
	c.prev = s
	c.mu.Unlock()
	for _, p := range cands {
		c.checkPlacement(ctx, cl, p)
	}
	return nil
}

// still reports whether nobody acted on a host from the read prev began
// until now.
func (c *Checker) still(prev, s *snapshot, host string) bool {
	return prev != nil && prev.quiet[host] && s.quiet[host] && prev.epoch[host] == c.epoch[host]
}

func (c *Checker) checkState(s, prev *snapshot) (cands []placement) {
	used := map[string]int64{}
	for id, v := range s.vms {
		if !v.on {
			continue
		}
		if v.host == "" || !s.known[v.host] {
			c.violate(RuleOneHost, v.name, "vm %s is on but recorded on no known host (%q)", v.name, v.host)
			continue
		}
		used[v.host] += v.memory
		h, ok := s.hosts[v.host]
		if !ok || !c.still(prev, s, h.name) {
			continue
		}
		ph, ok := prev.hosts[v.host]
		if !ok {
			continue
		}
		if was, seen := prev.vms[id]; seen && was.on && was.host == v.host {
			// Still there: a host that completed its maintenance runs no VM.
			if ph.state == acliv1.NodeState_EnteredMaintenanceMode && h.state == acliv1.NodeState_EnteredMaintenanceMode {
				c.violate(RulePlacement, v.name+" "+h.name, "vm %s runs on %s, which entered maintenance", v.name, h.name)
			}
			continue
		}
		// A placement since the last read, onto a host closed then and now.
		if ph.closed() && h.closed() {
			cands = append(cands, placement{vmID: id, vm: v.name, host: h, prev: ph, since: prev.seen, until: s.began})
		}
	}
	for id, h := range s.hosts {
		if used[id] > h.memory || h.memoryUsed > h.memory {
			c.violate(RuleNoOvercommit, fmt.Sprint(h.name, used[id], h.memoryUsed), "host %s: running VMs take %d MiB (reported %d MiB) of %d MiB",
				h.name, used[id]>>20, h.memoryUsed>>20, h.memory>>20)
		}
	}
	c.checkCapacity(s)
	// RF budget: operator-held hosts never exceed RF-1, and none was taken
	// out while another host was already out.
	var held []string
	for _, h := range s.hosts {
		if h.heldOut() {
			held = append(held, h.name)
		}
	}
	sort.Strings(held)
	if len(held) > c.rf-1 {
		c.violate(RuleRFBudget, strings.Join(held, ","), "%d hosts in maintenance on RF%d: %s", len(held), c.rf, strings.Join(held, ", "))
	}
	if prev != nil {
		for id, h := range s.hosts {
			ph, ok := prev.hosts[id]
			if !ok || ph.heldOut() || !h.heldOut() {
				continue
			}
			for oid, o := range s.hosts {
				if po, ok := prev.hosts[oid]; ok && oid != id && po.out() && o.out() && c.still(prev, s, o.name) {
					c.violate(RuleRFBudget, "", "host %s taken out (%s, CVM %s) on RF%d while %s was out (%s, CVM %s)",
						h.name, h.state, h.cvm, c.rf, o.name, o.state, o.cvm)
				}
			}
		}
	}
	// Intent and dead hosts.
	for _, h := range s.hosts {
		if in := c.intents[h.name]; in != nil && s.quiet[h.name] {
			if in.maint == yes && h.state == acliv1.NodeState_AcropolisNormal {
				c.violate(RuleIntent, h.name+" maint", "host %s is in service (schedulable=%v) though the operator put it in maintenance", h.name, h.schedulable)
			}
			if in.cvmMaint == yes && h.cvm == acliv1.CvmState_kCvmUp {
				c.violate(RuleIntent, h.name+" cvm", "CVM of %s is up though the operator put it in maintenance", h.name)
			}
			if in.cordon == yes && h.state == acliv1.NodeState_AcropolisNormal && h.schedulable {
				c.violate(RuleIntent, h.name+" cordon", "host %s is schedulable though the operator cordoned it", h.name)
			}
		}
		up, ok := c.upAt[h.name]
		if _, failed := c.failedAt[h.name]; !failed && h.state == acliv1.NodeState_kNodeDown {
			if !ok {
				up = c.healthyAt
			}
			if s.began.Sub(up) > RecoverGrace {
				c.violate(RuleDeadHost, h.name+" up "+up.String(), "host %s healthy for %v but recorded down", h.name, s.began.Sub(up).Round(time.Millisecond))
			}
		}
		if at, ok := c.failedAt[h.name]; ok && s.at.Sub(at) > DeadHostGrace && h.state != acliv1.NodeState_kNodeDown {
			c.violate(RuleDeadHost, h.name, "host %s failed %v ago but is recorded %s", h.name, s.at.Sub(at).Round(time.Millisecond), h.state)
		}
	}
	return cands
}

// checkCapacity holds each container to its size: what it counts, and
// what the VMs' vDisks alone take (images, snapshots and volume groups
// take more), so a miscount cannot hide an over-commit.
func (c *Checker) checkCapacity(s *snapshot) {
	vdisks := map[string]int64{}
	for _, v := range s.vms {
		for name, n := range v.disks {
			vdisks[name] += n
		}
	}
	for name, ct := range s.containers {
		if ct.used > ct.capacity || vdisks[name] > ct.capacity {
			c.violate(RuleCapacity, fmt.Sprint(name, ct.used, vdisks[name]), "container %s holds %d GiB (VMs' vDisks %d GiB) of %d GiB",
				name, ct.used>>30, vdisks[name]>>30, ct.capacity>>30)
		}
	}
}

// placement is a VM found running on a host that was closed on the read
// before and still is.
type placement struct {
	vmID, vm     string
	host, prev   hostView
	since, until time.Time // the host was closed by since; until: when the later read began
}

// placing are the operations that put a VM on a host. A reboot or reset
// keeps the VM where it runs, so it never explains how it got there.
var placing = map[acliv1.TaskOperation]bool{
	acliv1.TaskOperation_kVmPowerOn: true, acliv1.TaskOperation_kVmMigrate: true, acliv1.TaskOperation_kHaFailover: true,
	acliv1.TaskOperation_kHostEnterMaintenanceMode: true, acliv1.TaskOperation_kHostExitMaintenanceMode: true,
}

// checkPlacement looks up the task that placed the VM. A task asked for
// before the host was seen cordoned may finish there (a cordon stops what
// has not started, as kubectl cordon does); anything else landing on a
// closed host breaks the rule: maintenance counts in-flight work, and no
// task may start toward a closed host.
func (c *Checker) checkPlacement(ctx context.Context, cl Clients, p placement) {
	cordonOnly := p.host.state == acliv1.NodeState_AcropolisNormal && p.prev.state == acliv1.NodeState_AcropolisNormal
	var by *acliv1.Task
	if r, err := cl.Task.ListTasks(ctx, &acliv1.ListTasksRequest{Entity: p.vmID, IncludeCompleted: true, Limit: 20}); err == nil {
		for _, t := range r.Tasks {
			if placing[t.Operation] && t.StartTime != nil && t.StartTime.AsTime().Before(p.until) {
				by = t
				break
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Asked for before the cordon was seen: its placement may predate it.
	asked := by.GetCreateTime()
	if asked == nil {
		asked = by.GetStartTime()
	}
	// A live migration that switched over just before its target failed
	// is recorded where the VM runs (moving it back fails, the host is
	// down): no decision placed it there, and the dead-host rule follows it.
	failedUnder := p.host.state == acliv1.NodeState_kNodeDown && by.GetOperation() == acliv1.TaskOperation_kVmMigrate
	if by == nil || (cordonOnly || failedUnder) && asked.AsTime().Before(p.since) {
		return // no task to judge by (e.g. a restart's recovery), a cordon's leeway, or a failure under a switch-over
	}
	c.violate(RulePlacement, p.vm+" "+p.host.name+" "+p.since.String(), "vm %s placed on %s (%s, schedulable=%v) by %s %s asked for %v after the host was seen closed",
		p.vm, p.host.name, p.host.state, p.host.schedulable, by.Operation, by.Uuid, asked.AsTime().Sub(p.since).Round(time.Millisecond))
}

// vmOps are the operations that change one VM.
var vmOps = map[acliv1.TaskOperation]bool{
	acliv1.TaskOperation_kVmUpdate: true, acliv1.TaskOperation_kVmDelete: true, acliv1.TaskOperation_kVmPowerOn: true,
	acliv1.TaskOperation_kVmPowerOff: true, acliv1.TaskOperation_kVmShutdown: true, acliv1.TaskOperation_kVmReboot: true,
	acliv1.TaskOperation_kVmReset: true, acliv1.TaskOperation_kVmDiskCreate: true, acliv1.TaskOperation_kVmDiskDelete: true,
	acliv1.TaskOperation_kVmNicCreate: true, acliv1.TaskOperation_kVmNicDelete: true, acliv1.TaskOperation_kVmMigrate: true,
	acliv1.TaskOperation_kVmSetAffinity: true,
}

// Final checks the task rules once the load has stopped: it waits up to
// settle for every task to end, then requires that every accepted task is
// found and ended, and that no two tasks changed one VM at once.
func (c *Checker) Final(ctx context.Context, cl Clients, settle time.Duration) error {
	end := time.Now().Add(settle)
	var running []*acliv1.Task
	for {
		r, err := cl.Task.ListTasks(ctx, &acliv1.ListTasksRequest{Limit: 1000})
		if err != nil {
			if time.Now().After(end) {
				return err
			}
		} else if running = r.Tasks; len(running) == 0 || time.Now().After(end) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	all, err := cl.Task.ListTasks(ctx, &acliv1.ListTasksRequest{IncludeCompleted: true, Limit: 1 << 20})
	if err != nil {
		return err
	}
	c.mu.Lock()
	accepted := maps.Clone(c.accepted)
	c.mu.Unlock()
	var missing []string
	for id, op := range accepted {
		t, err := cl.Task.GetTask(ctx, &acliv1.GetTaskRequest{Uuid: id})
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s %s: %v", op, id, err))
			continue
		}
		if !Finished(t.Status) && !slices.ContainsFunc(running, func(r *acliv1.Task) bool { return r.Uuid == id }) {
			running = append(running, t)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sort.Strings(missing)
	for _, m := range missing {
		c.violate(RuleTaskPersisted, "", "accepted task not found: %s", m)
	}
	for _, t := range running {
		c.violate(RuleTasksEnd, "", "task %s %s still %s %v after the load stopped (%s)", t.Operation, t.Uuid, t.Status, settle, t.ProgressMessage)
	}
	c.checkConflicts(all.Tasks)
	return nil
}

func (c *Checker) checkConflicts(tasks []*acliv1.Task) {
	byVm := map[string][]*acliv1.Task{}
	for _, t := range tasks {
		if !vmOps[t.Operation] || t.StartTime == nil || t.CompleteTime == nil {
			continue
		}
		for _, e := range t.Entities {
			if e.Kind == acliv1.EntityKind_kVm {
				byVm[e.Uuid] = append(byVm[e.Uuid], t)
			}
		}
	}
	for _, ts := range byVm {
		sort.Slice(ts, func(i, j int) bool { return ts[i].StartTime.AsTime().Before(ts[j].StartTime.AsTime()) })
		for i := 1; i < len(ts); i++ {
			for j := 0; j < i; j++ {
				a, b := ts[j], ts[i]
				if b.StartTime.AsTime().Before(a.CompleteTime.AsTime()) {
					c.violate(RuleConflict, "", "%s %s and %s %s ran at once on vm %s", a.Operation, a.Uuid, b.Operation, b.Uuid, vmName(b))
				}
			}
		}
	}
}

func vmName(t *acliv1.Task) string {
	for _, e := range t.Entities {
		if e.Kind == acliv1.EntityKind_kVm {
			return e.Name
		}
	}
	return ""
}
