package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acli-dev/acli/manager/iscsi"
)

// HostConfig places one host's data path: its redirector's address and
// its CVM's (127.0.0.1 and the CVM's IP on a real host; one loopback
// alias each in tests).
type HostConfig struct {
	Name         string
	RedirectorIP string
	CVMIP        string
}

// Config describes a cluster's data path.
type Config struct {
	Dir   string // one subdirectory per CVM
	Hosts []HostConfig
	// DataServicesIP, when set, gets a redirector on port 3260 spreading
	// sessions over the CVMs' port 3205.
	DataServicesIP string
	// RedirectorPort is the hosts' redirector port (default 3261).
	RedirectorPort int
	// ReconnectGap is how long after a session's last login it may be
	// ended for failback (default 3 s: libiscsi refuses closer reconnects).
	ReconnectGap time.Duration
	// HealthInterval is how often each CVM's tgtd is asked, over its
	// control socket, whether it answers (default 500 ms); two misses in a
	// row mark a hung CVM down.
	HealthInterval time.Duration
	// EndedAfter is how long a routed session may go without a connection
	// on any CVM, after its last login or move, before the plane forgets it
	// (default 30 s, libiscsi's longest reconnect back-off): an ended
	// session must not weigh on where new ones go.
	EndedAfter time.Duration
	// RestartAfter, when positive, restarts a CVM target that exited (as a
	// host restarts a crashed CVM) after this long; 0 leaves it down.
	RestartAfter time.Duration
	// KeepTargets makes Close leave the CVM targets serving (clusterd
	// stopping: they belong to the hosts); a plane started later on the
	// same Dir adopts them.
	KeepTargets bool
	Log         *slog.Logger
}

// Plane is a cluster's data path: the CVM targets, the hosts' redirectors
// and the data services IP. Its routing follows its own view of CVM
// health: a CVM is down when its tgtd exits, stops answering its control
// socket, or the owner says so (MarkCVM), never from a TCP probe, which a
// hung target still completes.
type Plane struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	hosts []*hostPath
	disks []Disk
	// sessions are the routed logins as manager/iscsi plans them.
	sessions  []iscsi.Session
	meta      map[iscsi.Key]*sessionMeta
	targetIdx map[string]int
	fenced    map[fenceKey]bool
	dsip      *Redirector
	closed    bool
	timers    map[*time.Timer]struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	changes   []func(host string, up bool)
	// placed is the model's CVM for sessions through the data services IP.
	placed map[liveKey]string
	// adopt is the targets a previous plane on Dir left running, by host.
	adopt  map[string]cvmRecord
	saveMu sync.Mutex
}

type hostPath struct {
	HostConfig
	cvm    *CVM
	redir  *Redirector
	up     bool // the plane's view
	forced bool // marked down by the owner
	gone   bool // removed from the data path
	hung   bool // marked down by the control-socket check
	misses int
	// live is what the CVM served at its last listing, taken at liveAt.
	live   map[liveKey]Session
	liveAt time.Time
}

type liveKey struct{ initiator, target string }

// sessionMeta is what a routed session's last login said, and when the
// plane last moved it.
type sessionMeta struct {
	initiator, target string
	when, moved       time.Time
}

type fenceKey struct{ target, initiator string }

// Start brings up every CVM target, exports disks on each, and opens the
// redirectors. On error everything started is stopped again.
func Start(ctx context.Context, cfg Config, disks []Disk) (*Plane, error) {
	if cfg.RedirectorPort == 0 {
		cfg.RedirectorPort = PortLocal
	}
	if cfg.ReconnectGap == 0 {
		cfg.ReconnectGap = 3 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 500 * time.Millisecond
	}
	if cfg.EndedAfter <= 0 {
		cfg.EndedAfter = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Plane{cfg: cfg, log: cfg.Log, disks: slices.Clone(disks), meta: map[iscsi.Key]*sessionMeta{},
		targetIdx: map[string]int{}, fenced: map[fenceKey]bool{}, timers: map[*time.Timer]struct{}{}, stop: make(chan struct{}),
		adopt: map[string]cvmRecord{}}
	rec, err := readRecord(cfg.Dir)
	if err != nil {
		cfg.Log.Warn("datapath: no targets to adopt", "err", err)
	}
	for _, c := range rec.CVMs {
		p.adopt[c.Host] = c
	}
	for _, f := range rec.Fenced {
		p.fenced[fenceKey{f.Target, f.Initiator}] = true
	}
	for _, d := range rec.Disks {
		if !slices.ContainsFunc(p.disks, func(x Disk) bool { return x.IQN == d.IQN }) {
			p.disks = append(p.disks, d)
		}
	}
	for _, h := range cfg.Hosts {
		if err := p.AddHost(ctx, h); err != nil {
			p.Close()
			return nil, err
		}
	}
	if cfg.DataServicesIP != "" {
		r, err := Listen(net.JoinHostPort(cfg.DataServicesIP, strconv.Itoa(PortDSIP)), func(l Login) (string, error) { return p.route(-1, l) }, p.log)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.dsip = r
	}
	p.wg.Add(1)
	go p.watch()
	return p, nil
}

// AddHost starts a host's CVM target (exporting every vDisk) and its
// redirector.
func (p *Plane) AddHost(ctx context.Context, hc HostConfig) error {
	if hc.Name == "" || net.ParseIP(hc.RedirectorIP) == nil || net.ParseIP(hc.CVMIP) == nil {
		return fmt.Errorf("data path host %q: needs a name, a redirector IP and a CVM IP (got %q, %q)", hc.Name, hc.RedirectorIP, hc.CVMIP)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("the data path is closed")
	}
	if i, _ := p.lookupLocked(hc.Name); i >= 0 {
		p.mu.Unlock()
		return fmt.Errorf("host %s already has a data path", hc.Name)
	}
	i := len(p.hosts)
	hp := &hostPath{HostConfig: hc, cvm: NewCVM(hc.Name+"-cvm", hc.CVMIP, filepath.Join(p.cfg.Dir, hc.Name+"-cvm"))}
	hp.cvm.OnExit = func() { p.cvmExited(i) }
	p.hosts = append(p.hosts, hp)
	rec, adopt := p.adopt[hc.Name]
	delete(p.adopt, hc.Name)
	p.mu.Unlock()
	if adopt && rec.IP == hc.CVMIP {
		if err := hp.cvm.Adopt(ctx, rec.PID, rec.Port); err != nil {
			p.log.Warn("datapath: CVM target not adopted, starting a new one", "host", hc.Name, "err", err)
		} else {
			p.log.Info("datapath: CVM target adopted", "host", hc.Name, "cvm", hc.CVMIP, "pid", rec.PID)
		}
	}
	err := p.startCVM(ctx, i)
	if err == nil {
		var r *Redirector
		r, err = Listen(net.JoinHostPort(hc.RedirectorIP, strconv.Itoa(p.cfg.RedirectorPort)), func(l Login) (string, error) { return p.route(i, l) }, p.log)
		p.mu.Lock()
		hp.redir = r
		p.mu.Unlock()
	}
	if err != nil {
		p.removeHost(i)
		return err
	}
	return nil
}

// RemoveHost stops a host's redirector and CVM target.
func (p *Plane) RemoveHost(host string) error {
	p.mu.Lock()
	i, _ := p.lookupLocked(host)
	p.mu.Unlock()
	if i < 0 {
		return nil
	}
	return p.removeHost(i)
}

func (p *Plane) removeHost(i int) error {
	p.mu.Lock()
	h := p.hosts[i]
	h.gone, h.up = true, false
	r := h.redir
	p.mu.Unlock()
	var errs []error
	if r != nil {
		errs = append(errs, r.Close())
	}
	errs = append(errs, h.cvm.Stop())
	p.save()
	return errors.Join(errs...)
}

// Close stops the redirectors and every CVM target, by PID; with
// KeepTargets it leaves the targets serving and records them.
func (p *Plane) Close() error { return p.close(p.cfg.KeepTargets) }

// Detach stops the redirectors and the plane's checks, and leaves the CVM
// targets serving for a later plane on the same Dir to adopt.
func (p *Plane) Detach() error { return p.close(true) }

func (p *Plane) close(keep bool) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	for t := range p.timers {
		t.Stop()
	}
	hosts := slices.Clone(p.hosts)
	p.mu.Unlock()
	p.wg.Wait()
	var errs []error
	if p.dsip != nil {
		errs = append(errs, p.dsip.Close())
	}
	for _, h := range hosts {
		if h.redir != nil {
			errs = append(errs, h.redir.Close())
		}
		if !keep {
			errs = append(errs, h.cvm.Stop())
		}
	}
	p.save()
	return errors.Join(errs...)
}

// OnChange registers f to be told each time a CVM goes down or comes up
// in the plane's view (clusterd turns it into CVM state).
func (p *Plane) OnChange(f func(host string, up bool)) {
	p.mu.Lock()
	p.changes = append(p.changes, f)
	p.mu.Unlock()
}

// CVM is the storage service of the named host's CVM.
func (p *Plane) CVM(host string) *CVM {
	if _, h := p.lookup(host); h != nil {
		return h.cvm
	}
	return nil
}

// Redirector is the address of the named host's redirector.
func (p *Plane) Redirector(host string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, h := p.lookupLocked(host); h != nil && h.redir != nil {
		return h.redir.Addr()
	}
	return ""
}

// DataServices is the address of the data services redirector.
func (p *Plane) DataServices() string {
	if p.dsip == nil {
		return ""
	}
	return p.dsip.Addr()
}

func (p *Plane) lookup(host string) (int, *hostPath) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lookupLocked(host)
}

func (p *Plane) lookupLocked(host string) (int, *hostPath) {
	for i, h := range p.hosts {
		if h.Name == host && !h.gone {
			return i, h
		}
	}
	return -1, nil
}

// list is the hosts still in the data path.
func (p *Plane) list() []*hostPath {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(p.hosts), func(h *hostPath) bool { return h.gone })
}

// Up reports the plane's view of a host's CVM.
func (p *Plane) Up(host string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, h := p.lookupLocked(host)
	return h != nil && h.up
}

// Export serves d on every running CVM, and on CVMs started later.
func (p *Plane) Export(ctx context.Context, d Disk) error {
	p.mu.Lock()
	added := !slices.ContainsFunc(p.disks, func(x Disk) bool { return x.IQN == d.IQN })
	if added {
		p.disks = append(p.disks, d)
	}
	p.mu.Unlock()
	if added {
		p.save()
	}
	for _, h := range p.list() {
		if h.cvm.Running() {
			if err := h.cvm.Export(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartCVM brings a host's stopped CVM back (tgtd, exports, fences) and
// fails back to it the sessions its absence moved.
func (p *Plane) StartCVM(ctx context.Context, host string) error {
	p.mu.Lock()
	i, h := p.lookupLocked(host)
	if h != nil {
		h.forced = false
	}
	p.mu.Unlock()
	if h == nil {
		return fmt.Errorf("no host %s in the data path", host)
	}
	return p.startCVM(ctx, i)
}

// StopCVM kills a host's CVM target (SIGKILL, by PID). The route moves
// first, so the initiators the kill disconnects are sent elsewhere at
// their first reconnect.
func (p *Plane) StopCVM(host string) error {
	i, h := p.lookup(host)
	if h == nil {
		return fmt.Errorf("no host %s in the data path", host)
	}
	p.setUp(i, false)
	return h.cvm.Stop()
}

// MarkCVM sets the owner's view of a host's CVM: down routes its sessions
// elsewhere even while its target runs (CVM maintenance, a fault clusterd
// saw); up lets the plane's own checks decide again.
func (p *Plane) MarkCVM(host string, up bool) {
	p.mu.Lock()
	i, h := p.lookupLocked(host)
	if h != nil {
		h.forced = !up
	}
	p.mu.Unlock()
	if h != nil {
		p.setUp(i, up && h.cvm.Running())
	}
}

func (p *Plane) startCVM(ctx context.Context, i int) error {
	p.mu.Lock()
	h := p.hosts[i]
	disks := slices.Clone(p.disks)
	p.mu.Unlock()
	if !h.cvm.Running() {
		if err := h.cvm.Start(ctx); err != nil {
			return err
		}
	}
	for _, d := range disks {
		if err := h.cvm.Export(ctx, d); err != nil {
			return err
		}
	}
	if err := p.applyFences(ctx, h.cvm, nil); err != nil {
		return err
	}
	p.mu.Lock()
	forced := h.forced
	p.mu.Unlock()
	p.save()
	p.setUp(i, !forced)
	return nil
}

func (p *Plane) cvmExited(i int) {
	p.setUp(i, false)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if !closed { // a closed plane's record is final (another may own the targets now)
		p.save()
	}
	if p.cfg.RestartAfter <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.hosts[i].gone {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(p.cfg.RestartAfter, func() {
		p.mu.Lock()
		delete(p.timers, t)
		h, skip := p.hosts[i], p.closed || p.hosts[i].gone
		p.mu.Unlock()
		if skip || h.cvm.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := p.startCVM(ctx, i)
		p.log.Info("datapath: CVM restarted", "host", h.Name, "cvm", h.CVMIP, "pid", h.cvm.PID(), "err", err)
	})
	p.timers[t] = struct{}{}
}

// setUp records a CVM's health. Going down needs nothing more: the next
// login through any redirector already avoids it. Coming up schedules the
// failback of the sessions that belong to it.
func (p *Plane) setUp(i int, up bool) {
	p.mu.Lock()
	h := p.hosts[i]
	p.mu.Unlock()
	// A check that began before the target died must not mark it up.
	// (Only then: an exit is reported while Stop holds the CVM's lock.)
	running := !up || h.cvm.Running()
	p.mu.Lock()
	if h.gone || !running {
		up = false
	}
	if h.up == up || p.closed {
		p.mu.Unlock()
		return
	}
	notify := p.setUpLocked(h, up)
	p.mu.Unlock()
	notify()
}

// setUpLocked records a change of a CVM's health and moves the sessions
// it concerns; the returned func tells the owner, without the lock.
func (p *Plane) setUpLocked(h *hostPath, up bool) func() {
	h.up, h.misses = up, 0
	if up {
		h.hung = false
	}
	fs := slices.Clone(p.changes)
	if up {
		p.failbackLocked(p.cvmsLocked())
	} else {
		p.failoverLocked(p.cvmsLocked())
	}
	return func() {
		p.log.Info("datapath: CVM state", "host", h.Name, "cvm", h.CVMIP, "up", up)
		for _, f := range fs {
			f(h.Name, up)
		}
	}
}

// route answers a login through redirector via (a host index, or -1 for
// the data services IP). Which CVM serves it is manager/iscsi's decision,
// as for the model's sessions: a VM's disks prefer its host's CVM, an
// external initiator's are spread one per CVM; a session whose CVM is
// down fails over to the least-loaded up one.
func (p *Plane) route(via int, l Login) (string, error) {
	p.mu.Lock()
	notify := p.reapLocked()
	to, err := p.routeLocked(via, l)
	p.mu.Unlock()
	for _, f := range notify {
		f()
	}
	return to, err
}

// reapLocked marks down each CVM the plane holds up whose tgtd has died,
// before a login is routed: a crash is seen at the first reconnect it
// causes, not only once the process is reaped.
func (p *Plane) reapLocked() []func() {
	var notify []func()
	for _, h := range p.hosts {
		if h.up && !h.gone && !h.cvm.Alive() {
			p.log.Info("datapath: CVM target died", "host", h.Name, "cvm", h.CVMIP)
			notify = append(notify, p.setUpLocked(h, false))
		}
	}
	return notify
}

func (p *Plane) routeLocked(via int, l Login) (string, error) {
	if p.fenced[fenceKey{l.Target, l.Initiator}] {
		return "", ErrFenced
	}
	key := p.keyLocked(via, l)
	if ip, ok := p.placedLocked(l); ok && via < 0 {
		p.followPlacedLocked(key, ip)
	}
	cvms := p.cvmsLocked()
	i := slices.IndexFunc(p.sessions, func(s iscsi.Session) bool { return s.Key == key })
	if i < 0 {
		att := iscsi.Attachment{Key: key}
		if via >= 0 {
			att.VMHost = p.hosts[via].Name
		}
		ns, err := iscsi.Assign(cvms, p.sessions, []iscsi.Attachment{att})
		if err != nil || len(ns) != 1 {
			return "", fmt.Errorf("no CVM is up to serve %s", l.Target)
		}
		p.sessions = append(p.sessions, ns[0])
		i = len(p.sessions) - 1
	} else if _, h := p.byCVMLocked(p.sessions[i].CVM); h == nil || !h.up {
		p.failoverLocked(cvms)
	}
	s := p.sessions[i]
	if _, h := p.byCVMLocked(s.CVM); h == nil || !h.up {
		return "", fmt.Errorf("no CVM is up to serve %s", l.Target)
	}
	port := PortLocal
	if via < 0 {
		port = PortExternal
	}
	p.meta[key] = &sessionMeta{initiator: l.Initiator, target: l.Target, when: time.Now()}
	return net.JoinHostPort(s.CVM, strconv.Itoa(port)), nil
}

// keyLocked names a login as manager/iscsi does: the initiator, a group
// (the redirector it came through) and the target's index.
func (p *Plane) keyLocked(via int, l Login) iscsi.Key {
	idx, ok := p.targetIdx[l.Target]
	if !ok {
		idx = len(p.targetIdx)
		p.targetIdx[l.Target] = idx
	}
	group := "dsip"
	if via >= 0 {
		group = "host:" + p.hosts[via].Name
	}
	return iscsi.Key{Initiator: l.Initiator, VG: group, Disk: idx}
}

// cvmsLocked is the CVMs as manager/iscsi sees them, named by IP, their
// host by name.
func (p *Plane) cvmsLocked() []iscsi.CVM {
	var out []iscsi.CVM
	for _, h := range p.hosts {
		if h.gone {
			continue
		}
		st := iscsi.CVMDown
		if h.up {
			st = iscsi.CVMUp
		}
		out = append(out, iscsi.CVM{IP: h.CVMIP, HostUUID: h.Name, State: st})
	}
	return out
}

func (p *Plane) byCVMLocked(ip string) (int, *hostPath) {
	for i, h := range p.hosts {
		if h.CVMIP == ip && !h.gone {
			return i, h
		}
	}
	return -1, nil
}

// failoverLocked moves every session of a down CVM to an up one; their
// initiators find out when they reconnect.
func (p *Plane) failoverLocked(cvms []iscsi.CVM) {
	plan, err := iscsi.Failover(cvms, p.sessions)
	if err != nil {
		p.log.Warn("datapath: failover", "err", err)
		return
	}
	p.sessions = iscsi.Apply(p.sessions, plan.Moves)
	now := time.Now()
	for _, m := range plan.Moves {
		if meta := p.meta[m.Key]; meta != nil {
			meta.moved = now
		}
		p.log.Info("datapath: "+m.String(), "reason", "CVM down")
	}
}

// failbackLocked returns the sessions whose preferred CVM is up again to
// it, and ends each one's connection on its temporary CVM no sooner than
// ReconnectGap after its last login: the initiator logs in again through
// its redirector, which now names the preferred CVM.
func (p *Plane) failbackLocked(cvms []iscsi.CVM) {
	plan, err := iscsi.Failback(cvms, p.sessions)
	if err != nil {
		p.log.Warn("datapath: failback", "err", err)
		return
	}
	p.sessions = iscsi.Apply(p.sessions, plan.Moves)
	for _, m := range plan.Moves {
		meta := p.meta[m.Key]
		_, from := p.byCVMLocked(m.From)
		if meta == nil || from == nil {
			continue
		}
		meta.moved = time.Now()
		m, initiator, target := m, meta.initiator, meta.target
		var t *time.Timer
		t = time.AfterFunc(time.Until(meta.when.Add(p.cfg.ReconnectGap)), func() {
			p.mu.Lock()
			delete(p.timers, t)
			i := slices.IndexFunc(p.sessions, func(s iscsi.Session) bool { return s.Key == m.Key })
			ok := !p.closed && i >= 0 && p.sessions[i].CVM == m.To
			p.mu.Unlock()
			if !ok {
				return
			}
			n, err := from.cvm.Drop(context.Background(), func(s Session) bool {
				return s.Target == target && s.Initiator == initiator
			})
			p.log.Info("datapath: "+m.String(), "reason", "failback", "ended", n, "err", err)
		})
		p.timers[t] = struct{}{}
	}
}

// watch asks every running CVM's tgtd over its control socket whether it
// answers; two misses in a row mark it down (a hung CVM), and an answer
// from a CVM it marked down marks it up again.
func (p *Plane) watch() {
	defer p.wg.Done()
	tick := time.NewTicker(p.cfg.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		notify := p.reapLocked()
		p.mu.Unlock()
		for _, f := range notify {
			f()
		}
		for _, h := range p.list() {
			i, _ := p.lookup(h.Name)
			if i < 0 || !h.cvm.Running() {
				continue
			}
			at := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), max(p.cfg.HealthInterval, time.Second))
			out, err := h.cvm.adm(ctx, "--op", "show", "--mode", "target")
			cancel()
			p.mu.Lock()
			if err != nil {
				h.misses++
			} else {
				h.misses = 0
				h.live, h.liveAt = map[liveKey]Session{}, at
				for _, s := range parseNexus(out) {
					h.live[liveKey{s.Initiator, s.Target}] = s
				}
			}
			down := h.misses >= 2 && h.up
			back := h.misses == 0 && h.hung && !h.forced
			if down {
				h.hung = true
			}
			if back {
				h.hung = false
			}
			p.mu.Unlock()
			switch {
			case down:
				p.setUp(i, false)
			case back:
				p.setUp(i, true)
			}
		}
		p.mu.Lock()
		p.forgetEndedLocked()
		p.mu.Unlock()
		p.endMisplaced()
	}
}

// forgetEndedLocked drops the routed sessions that have ended: no CVM
// served them at a listing taken EndedAfter or more after their last login
// or move, while the CVM they are routed to was up. A session waiting for
// its initiator to reconnect is kept that long, so it keeps its preferred
// CVM for failback.
func (p *Plane) forgetEndedLocked() {
	p.sessions = slices.DeleteFunc(p.sessions, func(s iscsi.Session) bool {
		m := p.meta[s.Key]
		if m == nil {
			return false
		}
		_, h := p.byCVMLocked(s.CVM)
		if h == nil || !h.up || h.liveAt.Before(m.when.Add(p.cfg.EndedAfter)) || h.liveAt.Before(m.moved.Add(p.cfg.EndedAfter)) {
			return false
		}
		for _, o := range p.hosts {
			if _, ok := o.live[liveKey{m.initiator, m.target}]; ok {
				return false
			}
		}
		delete(p.meta, s.Key)
		p.log.Debug("datapath: session ended", "initiator", m.initiator, "target", m.target, "cvm", s.CVM)
		return true
	})
}

// VDiskIQN is the target name of a vDisk on every CVM.
func VDiskIQN(vdiskUUID string) string { return initiatorPrefix + "vdisk-" + vdiskUUID }

// InitiatorName is the iSCSI initiator name of a VM's disks on a host:
// per host, so the storage side can refuse one host's copy of a VM.
func InitiatorName(vmUUID, host string) string {
	return initiatorPrefix + host + ":vm-" + vmUUID
}

const initiatorPrefix = "iqn.2010-06.com.nutanix:"

// nobody is the allow list of a target whose every initiator is fenced
// (an empty list would admit anyone).
const nobody = initiatorPrefix + "fenced"

// Fence refuses host's sessions of VM vmUUID on targets: every CVM admits
// only the VM's initiators on the other hosts, and ends the fenced host's
// connections; its redirector refuses its logins. When Fence returns, the
// old copy's writes no longer reach the vDisks.
func (p *Plane) Fence(ctx context.Context, vmUUID, host string, targets []string) error {
	p.mu.Lock()
	for _, t := range targets {
		p.fenced[fenceKey{t, InitiatorName(vmUUID, host)}] = true
	}
	p.mu.Unlock()
	p.save()
	return p.applyEverywhere(ctx, targets)
}

// Unfence admits host's sessions of VM vmUUID on targets again.
func (p *Plane) Unfence(ctx context.Context, vmUUID, host string, targets []string) error {
	p.mu.Lock()
	var changed []string
	for _, t := range targets {
		if k := (fenceKey{t, InitiatorName(vmUUID, host)}); p.fenced[k] {
			delete(p.fenced, k)
			changed = append(changed, t)
		}
	}
	p.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	p.save()
	return p.applyEverywhere(ctx, changed)
}

func (p *Plane) applyEverywhere(ctx context.Context, targets []string) error {
	var errs []error
	for _, h := range p.list() {
		if h.cvm.Running() {
			errs = append(errs, p.applyFences(ctx, h.cvm, targets))
		}
	}
	return errors.Join(errs...)
}

// applyFences sets the allow list of targets (nil: of every target with a
// fence) on c: empty when no initiator of it is fenced, else the VM's
// initiators on unfenced hosts.
func (p *Plane) applyFences(ctx context.Context, c *CVM, targets []string) error {
	p.mu.Lock()
	allow := map[string][]string{}
	for _, t := range targets {
		allow[t] = nil
	}
	if targets == nil {
		for k := range p.fenced {
			allow[k.target] = nil
		}
	}
	for k := range p.fenced {
		if _, ok := allow[k.target]; !ok {
			continue
		}
		for _, h := range p.hosts {
			name := replaceHost(k.initiator, h.Name)
			if name != "" && !p.fenced[fenceKey{k.target, name}] && !slices.Contains(allow[k.target], name) {
				allow[k.target] = append(allow[k.target], name)
			}
		}
	}
	for k := range p.fenced {
		if names, ok := allow[k.target]; ok && len(names) == 0 {
			allow[k.target] = []string{nobody}
		}
	}
	p.mu.Unlock()
	var errs []error
	for iqn, names := range allow {
		c.mu.Lock()
		_, exported := c.tids[iqn]
		c.mu.Unlock()
		if exported {
			errs = append(errs, c.Allow(ctx, iqn, names))
		}
	}
	return errors.Join(errs...)
}

// replaceHost turns one host's InitiatorName into another's ("" when the
// name is not one of the plane's).
func replaceHost(initiator, host string) string {
	rest, ok := strings.CutPrefix(initiator, initiatorPrefix)
	if !ok {
		return ""
	}
	i := strings.Index(rest, ":vm-")
	if i < 0 {
		return ""
	}
	return initiatorPrefix + host + rest[i:]
}
