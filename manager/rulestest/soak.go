package rulestest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// SoakConfig shapes a soak. Endpoints and Restart are all it knows of the
// managers, so the same soak runs against one clusterd or several sharing
// a store.
type SoakConfig struct {
	// Endpoints are the managers' gRPC addresses; a client moves to the
	// next one when its manager does not answer.
	Endpoints []string
	// Restart kills a manager without warning and starts it again (or lets
	// another take over); nil: no restarts.
	Restart func(ctx context.Context) error
	// Restarts is how many times Restart is called, spread over Duration.
	Restarts int
	// Clients is the number of concurrent clients (default 24).
	Clients int
	// Duration of the load (default 60 s).
	Duration time.Duration
	// MaxVms bounds the VMs the clients create (default 60).
	MaxVms int
	// FaultEvery is the pause between injected host and CVM faults
	// (default 2 s); 0 keeps the default, negative injects none.
	FaultEvery time.Duration
	// Seed makes the clients' choices repeatable (0: from the clock).
	Seed uint64
	// Logf reports progress (optional).
	Logf func(format string, args ...any)
}

// SoakReport is what a soak did and found.
type SoakReport struct {
	Ops        map[string]int    // by kind and outcome: "vm.on ok", "vm.on refused", "vm.on failed"
	Answers    map[string]string // the first error of each kind and outcome
	Done       int               // operations that ran to an answer
	Faults     int               // host and CVM faults injected
	Restarts   int               // manager restarts done
	Snapshots  int               // consistent reads checked
	Violations map[string]int    // by rule
	Examples   map[string][]string
}

// Summary is the report on one line.
func (r *SoakReport) Summary() string {
	var ok, refused, failed int
	for k, n := range r.Ops {
		switch {
		case strings.HasSuffix(k, " ok"):
			ok += n
		case strings.HasSuffix(k, " refused"):
			refused += n
		default:
			failed += n
		}
	}
	var v []string
	for _, rule := range Rules {
		v = append(v, fmt.Sprintf("%s=%d", rule, r.Violations[rule]))
	}
	return fmt.Sprintf("soak: %d ops (%d ok, %d refused, %d failed), %d faults, %d restarts, %d reads checked; violations: %s",
		r.Done, ok, refused, failed, r.Faults, r.Restarts, r.Snapshots, strings.Join(v, " "))
}

// Soak runs concurrent clients doing random VM, host, maintenance, cordon
// and volume group operations, injects host and CVM faults and manager
// restarts, and checks every rule with a Checker all along and at the end.
// The cluster is expected to be empty of VMs and VGs at the start.
func Soak(ctx context.Context, cfg SoakConfig) (*SoakReport, error) {
	if cfg.Clients == 0 {
		cfg.Clients = 24
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Minute
	}
	if cfg.MaxVms == 0 {
		cfg.MaxVms = 60
	}
	if cfg.FaultEvery == 0 {
		cfg.FaultEvery = 2 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("soak: no endpoints")
	}
	var conns []*grpc.ClientConn
	for _, ep := range cfg.Endpoints {
		conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	s := &soak{cfg: cfg, conns: conns, ops: map[string]int{}, answers: map[string]string{}, vms: map[string]bool{}}
	hs, err := s.client(0).Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		return nil, err
	}
	cl, err := s.client(0).Cluster.GetCluster(ctx, &acliv1.GetClusterRequest{})
	if err != nil {
		return nil, err
	}
	for _, h := range hs.Hosts {
		s.hosts = append(s.hosts, h.Name)
	}
	sort.Strings(s.hosts)
	s.check = NewChecker(int(cl.RedundancyFactor))
	cfg.Logf("soak: %d clients for %v on %d hosts (RF%d), seed %d, %d restarts", cfg.Clients, cfg.Duration, len(s.hosts), cl.RedundancyFactor, cfg.Seed, cfg.Restarts)

	load, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	watch, stopWatch := context.WithCancel(ctx)
	var wg, watchers sync.WaitGroup
	watchers.Go(func() { s.watch(watch) })
	for i := range cfg.Clients {
		wg.Go(func() { s.client(i).loop(load, rand.New(rand.NewPCG(cfg.Seed, uint64(i)))) })
	}
	wg.Go(func() { s.chaos(load, rand.New(rand.NewPCG(cfg.Seed, 1<<32))) })
	wg.Wait()

	// The load has stopped: heal every fault, let tasks end, check the end.
	s.heal(ctx)
	if err := s.check.Final(ctx, s.client(0).Clients, time.Minute); err != nil {
		cfg.Logf("soak: final check: %v", err)
	}
	if err := s.check.Observe(ctx, s.client(0).Clients); err != nil {
		cfg.Logf("soak: last read: %v", err)
	}
	stopWatch()
	watchers.Wait()

	r := &SoakReport{Ops: s.ops, Answers: s.answers, Faults: int(s.faults.Load()), Restarts: int(s.restarts.Load()), Snapshots: s.check.Snapshots()}
	for _, n := range s.ops {
		r.Done += n
	}
	r.Violations, r.Examples = s.check.Violations()
	return r, nil
}

type soak struct {
	cfg      SoakConfig
	conns    []*grpc.ClientConn
	hosts    []string
	check    *Checker
	faults   atomic.Int64
	restarts atomic.Int64
	down     atomic.Bool // a manager restart is under way

	mu      sync.Mutex
	ops     map[string]int
	answers map[string]string // the first error of each kind and outcome
	vms     map[string]bool   // names created and not known deleted
	vgs     []string
	serial  int
}

// soakClient talks to one endpoint at a time, moving on when it fails.
type soakClient struct {
	*soak
	Clients
	id int
	ep int
}

func (s *soak) client(id int) *soakClient {
	c := &soakClient{soak: s, id: id, ep: id % len(s.conns)}
	c.Clients = NewClients(s.conns[c.ep])
	return c
}

// failover moves to the next endpoint after an Unavailable answer.
func (c *soakClient) failover(err error) {
	if status.Code(err) != codes.Unavailable || len(c.conns) == 1 {
		return
	}
	c.ep = (c.ep + 1) % len(c.conns)
	c.Clients = NewClients(c.conns[c.ep])
}

func (s *soak) count(kind string, err error) {
	outcome := "ok"
	switch code := status.Code(err); {
	case err == nil:
	case code == codes.FailedPrecondition || code == codes.Aborted || code == codes.NotFound ||
		code == codes.AlreadyExists || code == codes.ResourceExhausted || code == codes.InvalidArgument:
		outcome = "refused"
	case code == codes.Unavailable || code == codes.Canceled || code == codes.DeadlineExceeded:
		return // the manager was restarting or the load ended: no answer
	default:
		outcome = "failed"
	}
	s.mu.Lock()
	s.ops[kind+" "+outcome]++
	if _, seen := s.answers[kind+" "+outcome]; !seen && err != nil {
		s.answers[kind+" "+outcome] = err.Error()
	}
	s.mu.Unlock()
}

// taskErr is the error of a finished task, with the gRPC code its
// error_code carries (a refused task is FailedPrecondition or Aborted).
type taskErr struct{ t *acliv1.Task }

func (e taskErr) Error() string {
	return fmt.Sprintf("%s %s: %s", e.t.Operation, e.t.Status, e.t.Error)
}
func (e taskErr) GRPCStatus() *status.Status {
	code := codes.Code(e.t.ErrorCode)
	if code == codes.OK {
		code = codes.Unknown
	}
	return status.New(code, e.Error())
}

// do runs one mutation: records its task, waits for it unless the client
// chose not to, and counts the outcome.
func (c *soakClient) do(ctx context.Context, kind string, wait bool, call func(context.Context) (*acliv1.Task, error)) (*acliv1.Task, error) {
	t, err := call(ctx)
	if err == nil {
		c.check.Accepted(t)
		if wait {
			var done *acliv1.Task
			opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			done, err = c.Wait(opCtx, t)
			cancel()
			if err == nil && done.Status != acliv1.TaskStatus_kSucceeded {
				err = taskErr{done}
			}
			t = done
		}
	}
	c.failover(err)
	c.count(kind, err)
	return t, err
}

func (s *soak) pickVm(r *rand.Rand) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.vms) == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(s.vms))
	return names[r.IntN(len(names))]
}

func (s *soak) pickHost(r *rand.Rand) string { return s.hosts[r.IntN(len(s.hosts))] }

// pickFrom picks one of hosts most of the time (an operator mostly acts on
// a host that needs it), any host otherwise.
func (s *soak) pickFrom(r *rand.Rand, hosts []string) string {
	if len(hosts) == 0 || r.IntN(4) == 0 {
		return s.pickHost(r)
	}
	return hosts[r.IntN(len(hosts))]
}

func (c *soakClient) loop(ctx context.Context, r *rand.Rand) {
	for ctx.Err() == nil {
		if c.down.Load() {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.step(ctx, r)
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
	}
}

// step does one random operation, weighted toward VM work.
func (c *soakClient) step(ctx context.Context, r *rand.Rand) {
	wait := r.IntN(4) != 0
	vm := c.pickVm(r)
	n := r.IntN(100)
	switch {
	case n < 12 || vm == "":
		c.mu.Lock()
		full := len(c.vms) >= c.cfg.MaxVms
		c.serial++
		name := fmt.Sprintf("s%02d-%d", c.id, c.serial)
		c.mu.Unlock()
		if full {
			return
		}
		mem := int64(4+4*r.IntN(8)) << 30
		if _, err := c.do(ctx, "vm.create", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.CreateVm(ctx, &acliv1.CreateVmRequest{Name: name, MemoryBytes: mem, NumVcpus: int32(1 + r.IntN(4))})
		}); err == nil {
			c.mu.Lock()
			c.vms[name] = true
			c.mu.Unlock()
		}
	case n < 34:
		host := ""
		if r.IntN(3) == 0 {
			host = c.pickHost(r)
		}
		c.do(ctx, "vm.on", wait, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: vm, Transition: acliv1.PowerTransition_kPowerOn, Host: host})
		})
	case n < 46:
		tr := acliv1.PowerTransition_kPowerOff
		if r.IntN(3) == 0 {
			tr = acliv1.PowerTransition_kReboot
		}
		c.do(ctx, "vm.off", wait, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: vm, Transition: tr})
		})
	case n < 62:
		host := ""
		if r.IntN(2) == 0 {
			host = c.pickHost(r)
		}
		c.do(ctx, "vm.migrate", wait, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.MigrateVm(ctx, &acliv1.MigrateVmRequest{Vm: vm, Host: host})
		})
	case n < 67:
		if _, err := c.do(ctx, "vm.delete", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.DeleteVm(ctx, &acliv1.DeleteVmRequest{Vm: vm})
		}); err == nil || status.Code(err) == codes.NotFound {
			c.mu.Lock()
			delete(c.vms, vm)
			c.mu.Unlock()
		}
	case n < 75:
		_, inService := c.check.Hosts()
		host := c.pickFrom(r, inService)
		action := acliv1.NonMigratableVmAction_kBlock
		if r.IntN(2) == 0 {
			action = acliv1.NonMigratableVmAction_kAcpiShutdown
		}
		c.hostOp(ctx, "host.enter_maintenance_mode", host, OpEnterMaintenance, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Host.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{Host: host, NonMigratableVmAction: action})
		})
	case n < 79:
		held, _ := c.check.Hosts()
		host := c.pickFrom(r, held)
		c.hostOp(ctx, "host.exit_maintenance_mode", host, OpExitMaintenance, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Host.ExitMaintenanceMode(ctx, &acliv1.ExitMaintenanceModeRequest{Host: host})
		})
	case n < 82:
		held, inService := c.check.Hosts()
		host := c.pickFrom(r, inService)
		op, kind := OpEnterCvmMaintenance, "host.enter_cvm_maintenance"
		call := c.Host.EnterCvmMaintenanceMode
		if r.IntN(3) != 0 { // exits more often, so node maintenance gets its turn
			host = c.pickFrom(r, held)
			op, kind, call = OpExitCvmMaintenance, "host.exit_cvm_maintenance", c.Host.ExitCvmMaintenanceMode
		}
		c.hostOp(ctx, kind, host, op, func(ctx context.Context) (*acliv1.Task, error) {
			return call(ctx, &acliv1.CvmMaintenanceRequest{Host: host})
		})
	case n < 84:
		host := c.pickHost(r)
		sched := r.IntN(2) == 0
		op, kind := OpCordon, "host.cordon"
		if sched {
			op, kind = OpUncordon, "host.uncordon"
		}
		reason := "soak"
		if sched {
			reason = "" // a reason goes only with a cordon
		}
		c.hostOp(ctx, kind, host, op, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Host.UpdateHost(ctx, &acliv1.UpdateHostRequest{Host: host, Schedulable: &sched, Reason: reason})
		})
	case n < 91:
		c.storageStep(ctx, r, vm)
	default:
		c.vgStep(ctx, r, vm)
	}
}

// storageStep adds and removes vDisks of terabytes and snapshots that copy
// them, so the container fills up and commits race for its last bytes.
func (c *soakClient) storageStep(ctx context.Context, r *rand.Rand, vm string) {
	switch n := r.IntN(20); {
	case n < 8:
		size := int64(1+r.IntN(4)) << 40
		c.do(ctx, "vm.disk_create", r.IntN(4) != 0, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.CreateDisk(ctx, &acliv1.CreateDiskRequest{Vm: vm, SizeBytes: size})
		})
	case n < 13:
		c.do(ctx, "vm.disk_delete", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vm.DeleteDisk(ctx, &acliv1.DeleteDiskRequest{Vm: vm, Index: int32(r.IntN(3))})
		})
	case n < 16:
		c.mu.Lock()
		c.serial++
		name := fmt.Sprintf("p%02d-%d", c.id, c.serial)
		c.mu.Unlock()
		c.do(ctx, "vm.snapshot_create", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Snapshot.CreateSnapshots(ctx, &acliv1.CreateSnapshotsRequest{Vm: vm, Names: []string{name}})
		})
	default:
		list, err := c.Snapshot.ListSnapshots(ctx, &acliv1.ListSnapshotsRequest{})
		if err != nil || len(list.Snapshots) == 0 {
			return
		}
		snap := list.Snapshots[r.IntN(len(list.Snapshots))]
		if disks := snap.GetVm().GetDisks(); n < 18 && len(disks) > 0 {
			// A copy of a snapshot's vDisk reads the snapshot while
			// deletes of it race.
			d := disks[r.IntN(len(disks))].Uuid
			c.do(ctx, "vm.disk_create clone", true, func(ctx context.Context) (*acliv1.Task, error) {
				return c.Vm.CreateDisk(ctx, &acliv1.CreateDiskRequest{Vm: vm, CloneFromVmdisk: d})
			})
			return
		}
		c.do(ctx, "snapshot.delete", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Snapshot.DeleteSnapshot(ctx, &acliv1.DeleteSnapshotRequest{Snapshot: snap.Uuid})
		})
	}
}

// hostOp runs a host operation, always waiting, and tells the checker.
func (c *soakClient) hostOp(ctx context.Context, kind, host, op string, call func(context.Context) (*acliv1.Task, error)) {
	end := c.check.HostOp(host, op)
	_, err := c.do(ctx, kind, true, call)
	code := status.Code(err)
	refused := code == codes.FailedPrecondition || code == codes.Aborted || code == codes.NotFound || code == codes.InvalidArgument
	if _, ok := err.(taskErr); ok {
		refused = false // a task that ran may have changed something
	}
	end(err == nil, refused)
}

func (c *soakClient) vgStep(ctx context.Context, r *rand.Rand, vm string) {
	c.mu.Lock()
	var vg string
	if len(c.vgs) > 0 {
		vg = c.vgs[r.IntN(len(c.vgs))]
	}
	c.mu.Unlock()
	switch n := r.IntN(10); {
	case vg == "" || n < 2:
		c.mu.Lock()
		c.serial++
		name := fmt.Sprintf("g%02d-%d", c.id, c.serial)
		full := len(c.vgs) >= 8
		c.mu.Unlock()
		if full {
			return
		}
		if _, err := c.do(ctx, "vg.create", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vg.CreateVolumeGroup(ctx, &acliv1.CreateVolumeGroupRequest{Name: name})
		}); err == nil {
			c.do(ctx, "vg.disk_create", true, func(ctx context.Context) (*acliv1.Task, error) {
				return c.Vg.CreateVgDisk(ctx, &acliv1.CreateVgDiskRequest{VolumeGroup: name, SizeBytes: 10 << 30})
			})
			c.mu.Lock()
			c.vgs = append(c.vgs, name)
			c.mu.Unlock()
		}
	case n < 6:
		c.do(ctx, "vg.attach_to_vm", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vg.AttachToVm(ctx, &acliv1.AttachToVmRequest{VolumeGroup: vg, Vm: vm})
		})
	default:
		c.do(ctx, "vg.detach_from_vm", true, func(ctx context.Context) (*acliv1.Task, error) {
			return c.Vg.DetachFromVm(ctx, &acliv1.AttachToVmRequest{VolumeGroup: vg, Vm: vm})
		})
	}
}

// chaos injects host and CVM faults (one host at a time, recovered after a
// while) and the manager restarts, evenly spread over the load.
func (s *soak) chaos(ctx context.Context, r *rand.Rand) {
	c := s.client(0)
	start := time.Now()
	var failed, kind string // the host currently failed and how
	nextRestart := func() time.Time {
		return start.Add(s.cfg.Duration * time.Duration(s.restarts.Load()+1) / time.Duration(s.cfg.Restarts+1))
	}
	nextFault := time.Now().Add(s.cfg.FaultEvery / 2)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if s.cfg.Restart != nil && int(s.restarts.Load()) < s.cfg.Restarts && time.Now().After(nextRestart()) {
			s.down.Store(true)
			s.cfg.Logf("soak: restarting a manager (%d of %d) after %v", s.restarts.Load()+1, s.cfg.Restarts, time.Since(start).Round(time.Millisecond))
			err := s.cfg.Restart(ctx)
			s.check.Restarted()
			s.down.Store(false)
			if err != nil {
				s.cfg.Logf("soak: restart: %v", err)
				return
			}
			s.restarts.Add(1)
			// A failed host or CVM stays failed: the new manager's sim
			// starts its hosts as they are recorded. It is recovered as
			// planned.
			continue
		}
		if s.cfg.FaultEvery < 0 || time.Now().Before(nextFault) {
			continue
		}
		nextFault = time.Now().Add(s.cfg.FaultEvery)
		req := func(h string) *acliv1.SimHostRequest { return &acliv1.SimHostRequest{Host: h} }
		if failed != "" {
			var err error
			if kind == "host" {
				_, err = c.Sim.RecoverHost(ctx, req(failed))
			} else if _, err = c.Sim.RecoverCvm(ctx, req(failed)); status.Code(err) == codes.FailedPrecondition {
				// The host went down meanwhile: bring it back first.
				if _, err = c.Sim.RecoverHost(ctx, req(failed)); err == nil {
					_, err = c.Sim.RecoverCvm(ctx, req(failed))
				}
			}
			s.count("sim.recover_"+kind, err)
			if err == nil {
				s.check.Fault(failed, false)
				failed = ""
				// A fault a third of the time leaves room for maintenance.
				nextFault = time.Now().Add(2 * s.cfg.FaultEvery)
			}
			continue
		}
		h := s.pickHost(r)
		var err error
		if r.IntN(2) == 0 {
			kind = "host"
			s.check.Fault(h, true)
			if _, err = c.Sim.FailHost(ctx, req(h)); err != nil {
				s.check.Fault(h, false)
			}
		} else {
			kind = "cvm"
			_, err = c.Sim.FailCvm(ctx, req(h))
		}
		s.count("sim.fail_"+kind, err)
		if err == nil {
			failed = h
			s.faults.Add(1)
		}
	}
}

// heal recovers every host and CVM, so that the final checks see a whole
// cluster.
func (s *soak) heal(ctx context.Context) {
	c := s.client(0)
	for _, h := range s.hosts {
		c.Sim.RecoverHost(ctx, &acliv1.SimHostRequest{Host: h})
		c.Sim.RecoverCvm(ctx, &acliv1.SimHostRequest{Host: h})
		s.check.Fault(h, false)
	}
}

// watch follows the event stream, resuming after the last event seen
// when a manager restarts, and checks a consistent read after every
// batch of events (at most one read per 20 ms).
func (s *soak) watch(ctx context.Context) {
	c, ec := s.client(0), s.client(0)
	events := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for ctx.Err() == nil {
			stream, err := ec.Event.WatchEvents(ctx, &acliv1.WatchEventsRequest{SinceSeq: s.check.LastSeq()})
			for err == nil {
				var e *acliv1.Event
				if e, err = stream.Recv(); err == nil {
					s.check.Event(e)
					select {
					case events <- struct{}{}:
					default:
					}
				}
			}
			ec.failover(err)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	tick := time.NewTicker(250 * time.Millisecond) // a read now and then even when all is quiet
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-tick.C:
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			s.cfg.Logf("soak: hosts %s", s.check.HostStates())
		}
		if !s.down.Load() {
			if err := s.check.Observe(ctx, c.Clients); err != nil {
				c.failover(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
