package ha

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/scheduler"
)

// Cluster is what one restart needs of the manager. A restart runs as one
// task, and its Cluster holds that task's reservations.
type Cluster interface {
	// Plan plans the restart of the VMs recorded running on the down host
	// (scheduler.PlanHARestart on the cluster as it is now) and reserves
	// memory on each planned target.
	Plan(down string) (*scheduler.HAPlan, error)
	// Claim waits until no other task changes the VM, then takes it for
	// this restart; it returns the VM's record and its revision, nil when
	// the VM is gone.
	Claim(ctx context.Context, vm string) (*acliv1.Vm, int64, error)
	// LetGo ends a claim and the VM's reservation.
	LetGo(vm string)
	// Fence proves the copy of vm on the down host can no longer run or
	// write to its vDisks, or says why it cannot.
	Fence(ctx context.Context, down *acliv1.Host, vm *acliv1.Vm) error
	// Target re-validates a planned target and counts the VM as arriving
	// there until arrived is called; when the target no longer takes VMs,
	// it plans the VM again. It returns nil and why when no host can take
	// it now.
	Target(down *acliv1.Host, vm *acliv1.Vm, planned string) (dst *acliv1.Host, arrived func(), why string)
	// WithDevicesOn returns vm with a free device of each of its
	// passthrough device groups on host bound, or says which group host
	// has none free of.
	WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error)
	PowerOn(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	PowerOff(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error
	// Record commits the VM's new record if it is still at rev. The state's
	// rules check the placement on the state the commit leaves: a target
	// that stopped taking VMs meanwhile refuses it (Refused reports so).
	Record(ctx context.Context, next *acliv1.Vm, rev int64) error
	Refused(err error) bool
	// Down reports whether the host is still recorded down.
	Down(host string) bool
}

// Report is how a restart tells its task and the event log what it does.
type Report interface {
	// Progress sets the task's percent and progress line; Message also
	// keeps the line in the task's messages (a negative percent leaves the
	// percent as it is).
	Progress(percent int32, format string, args ...any)
	Message(percent int32, format string, args ...any)
	// Event publishes an "ha" event about the VM and the hosts.
	Event(severity string, vm *acliv1.Vm, hosts []*acliv1.Host, format string, args ...any)
}

// Restart timing defaults.
const (
	// FenceRetry is the wait before the next fencing round while the host
	// stays down.
	FenceRetry = time.Second
	// maxRefusedRounds bounds the rounds that plan again the VMs whose
	// restart the rules refused at commit.
	maxRefusedRounds = 3
)

// restart is one down host's restart task.
type restart struct {
	c     Cluster
	r     Report
	clock Clock
	retry time.Duration
	down  *acliv1.Host
	label string

	restarted int
	left      []string
	told      map[string]bool // VMs whose missing fence was reported
}

// Restart restarts elsewhere the VMs recorded running on the down host,
// higher HA priority first, each only once its copy there is fenced. A VM
// not fenced stays recorded on the down host (an event says why, once) and
// is tried again every retry while the host stays down. A VM whose commit
// the rules refuse (its target closed while it started) is powered off
// there and planned again. VMs that fit nowhere are recorded off once
// fenced. It returns the task's closing line.
func Restart(ctx context.Context, c Cluster, r Report, clock Clock, retry time.Duration, down *acliv1.Host) (string, error) {
	if clock == nil {
		clock = RealClock{}
	}
	if retry <= 0 {
		retry = FenceRetry
	}
	x := &restart{c: c, r: r, clock: clock, retry: retry, down: down, label: label(down), told: map[string]bool{}}
	refusedRounds := 0
	for round := 0; ; round++ {
		unfenced, refused, err := x.round(ctx, round, refusedRounds >= maxRefusedRounds)
		if err != nil {
			return "", err
		}
		if refused > 0 && refusedRounds < maxRefusedRounds {
			refusedRounds++
			continue // plan the refused VMs again at once
		}
		if unfenced == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-clock.After(retry):
		}
		if !c.Down(down.Uuid) {
			x.left = append(x.left, fmt.Sprintf("%d VM(s) not fenced stay on %s, which is back", unfenced, x.label))
			break
		}
	}
	msg := fmt.Sprintf("HA restarted %d VM(s) of %s", x.restarted, x.label)
	if len(x.left) > 0 {
		msg += fmt.Sprintf("; %d stay off: %s", len(x.left), strings.Join(x.left, "; "))
	}
	return msg, nil
}

// round plans the restart of the VMs still recorded on the down host and
// carries it out. unfenced counts the VMs left there because their copy
// could not be fenced; refused the VMs fenced, started and then refused at
// commit, which the next round plans again.
func (x *restart) round(ctx context.Context, round int, final bool) (unfenced, refused int, err error) {
	plan, err := x.c.Plan(x.down.Uuid)
	if err != nil {
		return 0, 0, err
	}
	total := len(plan.Restarts) + len(plan.NotRestarted)
	if round == 0 {
		x.r.Message(1, "host %s is down: restarting %d of its %d VM(s) elsewhere, by HA priority, each once its copy there is fenced", x.label, len(plan.Restarts), total)
	}
	for i, s := range plan.Restarts {
		if err := ctx.Err(); err != nil {
			return unfenced, refused, err
		}
		pct := int32(1 + 98*i/max(total, 1))
		res, err := x.restartOne(ctx, s, pct, final)
		if err != nil {
			return unfenced, refused, err
		}
		switch res {
		case unfencedVM:
			unfenced++
		case refusedVM:
			refused++
		}
	}
	// The others are recorded off only once fenced: a host that is merely
	// cut off from the manager may still run them.
	for _, s := range plan.NotRestarted {
		vm, rev, err := x.claim(ctx, s.VM.UUID)
		if err != nil {
			return unfenced, refused, err
		}
		if vm == nil {
			continue
		}
		if err := x.c.Fence(ctx, x.down, vm); err != nil {
			x.c.LetGo(vm.Uuid)
			x.notFenced(vm, err)
			unfenced++
			continue
		}
		if err := x.recordOff(ctx, vm, rev); err != nil {
			x.left = append(x.left, err.Error())
		}
		x.c.LetGo(vm.Uuid)
		x.left = append(x.left, s.Reason)
		x.r.Event("error", vm, []*acliv1.Host{x.down}, "HA did not restart vm %s: %s", vm.Name, s.Reason)
		x.r.Message(-1, "not restarted: %s", s.Reason)
	}
	return unfenced, refused, nil
}

type result int

const (
	doneVM result = iota
	unfencedVM
	refusedVM
)

// claim takes a VM still recorded running on the down host (nil if it is
// gone or moved: nothing to do).
func (x *restart) claim(ctx context.Context, id string) (*acliv1.Vm, int64, error) {
	vm, rev, err := x.c.Claim(ctx, id)
	if err != nil || vm == nil {
		if err == nil {
			x.c.LetGo(id)
		}
		return nil, 0, err
	}
	if running := vm.PowerState == acliv1.PowerState_kOn || vm.PowerState == acliv1.PowerState_kPaused; !running || vm.HostUuid != x.down.Uuid {
		x.c.LetGo(id)
		return nil, 0, nil
	}
	return vm, rev, nil
}

// restartOne fences, starts and records one VM; once final, a VM whose
// commit is refused is recorded off instead of planned again.
func (x *restart) restartOne(ctx context.Context, s scheduler.Step, pct int32, final bool) (result, error) {
	vm, rev, err := x.claim(ctx, s.VM.UUID)
	if err != nil || vm == nil {
		return doneVM, err
	}
	defer x.c.LetGo(vm.Uuid)
	// Never two copies: the old one is fenced before the new one starts.
	if err := x.c.Fence(ctx, x.down, vm); err != nil {
		x.notFenced(vm, err)
		return unfencedVM, nil
	}
	// The target must still take VMs when the restart starts; if not, the
	// VM is placed again on the cluster as it is now.
	dst, arrived, why := x.c.Target(x.down, vm, s.Target.UUID)
	if dst == nil {
		if err := x.recordOff(ctx, vm, rev); err != nil {
			why += "; " + err.Error()
		}
		x.left = append(x.left, fmt.Sprintf("vm %s: %s", vm.Name, why))
		x.r.Message(pct, "vm %s was not restarted: %s", vm.Name, why)
		return doneVM, nil
	}
	defer arrived()
	// It takes a free device of each of its passthrough groups on dst (the
	// plan chose dst for them; one taken meanwhile leaves it off).
	bound, err := x.c.WithDevicesOn(vm, dst.Uuid)
	if err != nil {
		if rerr := x.recordOff(ctx, vm, rev); rerr != nil {
			err = fmt.Errorf("%v; %v", err, rerr)
		}
		x.left = append(x.left, fmt.Sprintf("vm %s: %v", vm.Name, err))
		x.r.Message(pct, "vm %s was not restarted: %v", vm.Name, err)
		return doneVM, nil
	}
	x.r.Progress(pct, "restarting vm %s (HA priority %d) on %s", vm.Name, vm.HaPriority, label(dst))
	if err := x.c.PowerOn(ctx, dst, bound); err != nil {
		if ctx.Err() != nil {
			return doneVM, ctx.Err()
		}
		// Fenced and not started: it runs nowhere.
		if rerr := x.recordOff(ctx, vm, rev); rerr != nil {
			err = fmt.Errorf("%v; %v", err, rerr)
		}
		x.left = append(x.left, fmt.Sprintf("vm %s: power-on on %s failed: %v", vm.Name, label(dst), err))
		x.r.Message(pct, "vm %s was not restarted: %v", vm.Name, err)
		return doneVM, nil
	}
	next := proto.Clone(bound).(*acliv1.Vm)
	next.HostUuid, next.HostName = dst.Uuid, dst.Name
	err = x.c.Record(ctx, next, rev)
	if err != nil && x.c.Refused(err) {
		// dst closed while the VM started there: it is stopped again and
		// planned anew; its copy on the down host stays fenced.
		if perr := x.c.PowerOff(context.WithoutCancel(ctx), dst, bound); perr != nil {
			x.left = append(x.left, fmt.Sprintf("vm %s was not restarted on %s: %v; powering it off again failed: %v", vm.Name, label(dst), err, perr))
			return doneVM, nil
		}
		if !final {
			x.r.Message(pct, "vm %s was not restarted on %s: %v; planning it again", vm.Name, label(dst), err)
			return refusedVM, nil
		}
		why := fmt.Sprintf("vm %s was not restarted on %s: %v", vm.Name, label(dst), err)
		if rerr := x.recordOff(ctx, vm, rev); rerr != nil {
			why += "; " + rerr.Error()
		}
		x.left = append(x.left, why)
		x.r.Message(pct, "%s", why)
		return doneVM, nil
	}
	if err != nil {
		x.left = append(x.left, fmt.Sprintf("vm %s restarted on %s but recording it failed: %v", vm.Name, label(dst), err))
		return doneVM, nil
	}
	x.restarted++
	x.r.Event("warning", vm, []*acliv1.Host{x.down, dst}, "HA restarted vm %s on %s after %s went down", vm.Name, label(dst), x.label)
	x.r.Message(pct, "vm %s restarted on %s", vm.Name, label(dst))
	return doneVM, nil
}

// notFenced keeps a VM recorded on the down host and says why, once.
func (x *restart) notFenced(vm *acliv1.Vm, err error) {
	if x.told[vm.Uuid] {
		return
	}
	x.told[vm.Uuid] = true
	x.r.Event("error", vm, []*acliv1.Host{x.down},
		"HA does not restart vm %s yet: its copy on %s is not fenced (%v); it stays recorded there until fenced or the host is back", vm.Name, x.label, err)
	x.r.Message(-1, "vm %s stays recorded on %s: not fenced (%v)", vm.Name, x.label, err)
}

// recordOff records a fenced VM off: it runs nowhere.
func (x *restart) recordOff(ctx context.Context, vm *acliv1.Vm, rev int64) error {
	next := proto.Clone(vm).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = acliv1.PowerState_kOff, "", ""
	if err := x.c.Record(ctx, next, rev); err != nil {
		return fmt.Errorf("vm %s: recording it off failed: %v", vm.Name, err)
	}
	return nil
}

func label(h *acliv1.Host) string { return fmt.Sprintf("%s (%s)", h.Name, h.HypervisorIp) }
