package datapath

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Target ports of a CVM: 3261 for the hosts' redirected sessions, 3205 for
// sessions through the data services IP.
const (
	PortLocal    = 3261
	PortExternal = 3205
	PortDSIP     = 3260
)

// Vendor and product a vDisk's LUN reports, as on AHV.
const (
	vendorID  = "NUTANIX"
	productID = "VDISK"
)

// Disk is one vDisk a CVM exports: target IQN, LUN 1, backed by a file in
// the shared container. ID becomes the LUN's SCSI id and serial, the same
// on every CVM, so an initiator sees one disk whichever CVM serves it.
type Disk struct {
	IQN  string
	Path string
	ID   string
}

// Available says why the CVM target service cannot run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("the CVM target service needs root (a mount namespace per tgtd)")
	}
	for _, b := range []string{"tgtd", "tgtadm", "unshare"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not installed (apt-get install tgt util-linux)", b)
		}
	}
	return nil
}

// CVM is the storage service of one controller VM: a tgtd in its own mount
// namespace (a private /run), listening on the CVM's address, driven through
// tgtadm. clusterd starts it, and stops it by PID.
type CVM struct {
	Name string
	IP   string
	Dir  string // holds the namespace's /run and tgtd's log
	// OnExit, when set, is called each time tgtd exits, killed or not (the
	// owner's own view of a crashed CVM), before Stop returns; it must not
	// call the CVM's methods.
	OnExit func()

	// pid is tgtd's, read without mu: the plane checks it while routing a
	// login, and Stop holds mu while the exit is reported to the plane.
	pid atomic.Int64
	// port is tgtd's control port, unique per CVM (a recorded one once
	// adopted).
	port atomic.Int32

	mu      sync.Mutex
	proc    *os.Process // tgtd, started here or adopted
	done    chan struct{}
	tids    map[string]int // target IQN -> tid
	nextTID int
}

var controlPorts struct {
	sync.Mutex
	next int
}

// NewCVM describes the storage service of a CVM at ip; Start runs it.
func NewCVM(name, ip, dir string) *CVM {
	controlPorts.Lock()
	controlPorts.next++
	p := 100 + controlPorts.next
	controlPorts.Unlock()
	c := &CVM{Name: name, IP: ip, Dir: dir}
	c.port.Store(int32(p))
	return c
}

// Start runs tgtd and waits until it answers tgtadm. Exports are lost
// with the process: a restarted CVM is given its disks again with Export.
func (c *CVM) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.Alive() {
		// It died on its own (a crash, a kill by PID): wait for its reaping.
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("cvm %s: tgtd %d not reaped yet: %w", c.Name, c.proc.Pid, ctx.Err())
		}
	}
	if c.proc != nil {
		select {
		case <-c.done:
			c.proc = nil
		default:
			return fmt.Errorf("cvm %s: already running (pid %d)", c.Name, c.proc.Pid)
		}
	}
	run := filepath.Join(c.Dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	os.Remove(c.socket())
	os.Remove(c.socket() + ".lock")
	logf, err := os.OpenFile(filepath.Join(c.Dir, "tgtd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	portals := fmt.Sprintf("portal=%s:%d,portal=%s:%d", c.IP, PortLocal, c.IP, PortExternal)
	// unshare execs the shell, which execs tgtd: the PID is tgtd's.
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /run && exec tgtd -f -C "$1" --iscsi "$2"`, run, c.portString(), portals)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cvm %s: start tgtd: %w", c.Name, err)
	}
	done := make(chan struct{})
	onExit := c.OnExit
	go func() {
		cmd.Wait()
		c.pid.CompareAndSwap(int64(cmd.Process.Pid), 0)
		// Reported before Stop returns, so its caller sees the CVM down.
		if onExit != nil {
			onExit()
		}
		close(done)
	}()
	c.proc, c.done, c.tids, c.nextTID = cmd.Process, done, map[string]int{}, 0
	c.pid.Store(int64(cmd.Process.Pid))
	for {
		if _, err := c.adm(ctx, "--op", "show", "--mode", "sys"); err == nil {
			return nil
		}
		select {
		case <-done:
			c.proc = nil
			return fmt.Errorf("cvm %s: tgtd exited at start: %s", c.Name, tail(filepath.Join(c.Dir, "tgtd.log")))
		case <-ctx.Done():
			c.killLocked(syscall.SIGKILL)
			return fmt.Errorf("cvm %s: tgtd not ready: %w", c.Name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Adopt takes over a tgtd a previous run of the owner left serving (its
// PID and control port as recorded): the process must still be tgtd and
// answer on its control socket. Its targets are read back from it. Its
// exit is seen by polling, as it is not this process's child.
func (c *CVM) Adopt(ctx context.Context, pid, port int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return fmt.Errorf("cvm %s: already running (pid %d)", c.Name, c.proc.Pid)
	}
	c.pid.Store(int64(pid))
	fail := func(err error) error {
		c.pid.Store(0)
		return fmt.Errorf("cvm %s: adopt tgtd %d: %w", c.Name, pid, err)
	}
	if !c.Alive() {
		return fail(errors.New("not a running tgtd"))
	}
	c.port.Store(int32(port))
	out, err := c.adm(ctx, "--op", "show", "--mode", "target")
	if err != nil {
		return fail(err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return fail(err)
	}
	c.tids, c.nextTID = map[string]int{}, 0
	for _, t := range parseTargets(out) {
		c.tids[t.name] = t.tid
		c.nextTID = max(c.nextTID, t.tid)
	}
	done := make(chan struct{})
	onExit := c.OnExit
	go func() {
		for c.Alive() {
			time.Sleep(100 * time.Millisecond)
		}
		c.pid.CompareAndSwap(int64(pid), 0)
		if onExit != nil {
			onExit()
		}
		close(done)
	}()
	c.proc, c.done = proc, done
	return nil
}

// Port is tgtd's control port (its socket's name in the CVM's /run).
func (c *CVM) Port() int { return int(c.port.Load()) }

func (c *CVM) portString() string { return strconv.Itoa(c.Port()) }

// PID is tgtd's process id, 0 when it is not running.
func (c *CVM) PID() int { return int(c.pid.Load()) }

// Running reports whether tgtd is alive (a stopped, hung one counts; a
// dead one not yet reaped does not).
func (c *CVM) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return c.Alive()
	}
}

// Alive reports whether tgtd still lives, from the kernel's process table
// rather than from its reaping: a crashed tgtd is a zombie (or gone) at
// once, however late its parent gets to wait for it. A hung (stopped)
// tgtd counts as alive.
func (c *CVM) Alive() bool {
	pid := c.pid.Load()
	if pid == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/stat")
	if err != nil {
		return false
	}
	comm, state, ok := strings.Cut(string(b), ") ")
	return ok && strings.HasSuffix(comm, "(tgtd") && !strings.HasPrefix(state, "Z") && !strings.HasPrefix(state, "X")
}

// Stop ends tgtd with SIGKILL (it ignores SIGTERM) and waits for it: its
// sessions break at once, as when a CVM crashes.
func (c *CVM) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killLocked(syscall.SIGKILL)
}

func (c *CVM) killLocked(sig syscall.Signal) error {
	if c.proc == nil {
		return nil
	}
	c.proc.Signal(syscall.SIGCONT) // a hung (stopped) tgtd must die too
	err := c.proc.Signal(sig)
	<-c.done
	c.proc = nil
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Hang stops (SIGSTOP) or resumes (SIGCONT) tgtd: a hung CVM keeps its TCP
// connections and listen backlog but answers nothing.
func (c *CVM) Hang(hung bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return fmt.Errorf("cvm %s: not running", c.Name)
	}
	if hung {
		return c.proc.Signal(syscall.SIGSTOP)
	}
	return c.proc.Signal(syscall.SIGCONT)
}

// Export serves d as LUN 1 of target d.IQN; exporting it again is a no-op.
func (c *CVM) Export(ctx context.Context, d Disk) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.tids[d.IQN]; ok {
		return nil
	}
	tid := c.nextTID + 1
	id := strings.ReplaceAll(d.ID, "-", "")
	steps := [][]string{
		{"--op", "new", "--mode", "target", "--tid", strconv.Itoa(tid), "-T", d.IQN},
		{"--op", "new", "--mode", "logicalunit", "--tid", strconv.Itoa(tid), "--lun", "1", "-b", d.Path},
		{"--op", "update", "--mode", "logicalunit", "--tid", strconv.Itoa(tid), "--lun", "1", "--params",
			"vendor_id=" + vendorID + ",product_id=" + productID + ",scsi_id=" + id + ",scsi_sn=" + id},
		{"--op", "bind", "--mode", "target", "--tid", strconv.Itoa(tid), "-I", "ALL"},
	}
	for _, s := range steps {
		if _, err := c.adm(ctx, s...); err != nil {
			c.adm(ctx, "--op", "delete", "--force", "--mode", "target", "--tid", strconv.Itoa(tid))
			return fmt.Errorf("cvm %s: export %s: %w", c.Name, d.IQN, err)
		}
	}
	c.nextTID, c.tids[d.IQN] = tid, tid
	return nil
}

// Unexport ends the target of iqn and its sessions.
func (c *CVM) Unexport(ctx context.Context, iqn string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tid, ok := c.tids[iqn]
	if !ok {
		return nil
	}
	if _, err := c.adm(ctx, "--op", "delete", "--force", "--mode", "target", "--tid", strconv.Itoa(tid)); err != nil {
		return fmt.Errorf("cvm %s: unexport %s: %w", c.Name, iqn, err)
	}
	delete(c.tids, iqn)
	return nil
}

// Allow limits the initiators target iqn accepts to names; no names
// accepts any initiator. Connections of initiators left out are ended.
func (c *CVM) Allow(ctx context.Context, iqn string, names []string) error {
	c.mu.Lock()
	tid, ok := c.tids[iqn]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("cvm %s: %s not exported", c.Name, iqn)
	}
	out, err := c.adm(ctx, "--op", "show", "--mode", "target")
	if err != nil {
		return err
	}
	cur, all := targetACL(out, tid)
	t := strconv.Itoa(tid)
	// tgtd admits an initiator that matches any rule: the address rule
	// ALL goes while a name list is in force.
	if len(names) == 0 && !all {
		if _, err := c.adm(ctx, "--op", "bind", "--mode", "target", "--tid", t, "-I", "ALL"); err != nil {
			return err
		}
	}
	for _, n := range names {
		if !slices.Contains(cur, n) {
			if _, err := c.adm(ctx, "--op", "bind", "--mode", "target", "--tid", t, "--initiator-name", n); err != nil {
				return err
			}
		}
	}
	if len(names) > 0 && all {
		if _, err := c.adm(ctx, "--op", "unbind", "--mode", "target", "--tid", t, "-I", "ALL"); err != nil {
			return err
		}
	}
	for _, n := range cur {
		if !slices.Contains(names, n) {
			if _, err := c.adm(ctx, "--op", "unbind", "--mode", "target", "--tid", t, "--initiator-name", n); err != nil {
				return err
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	_, err = c.Drop(ctx, func(s Session) bool { return s.Target == iqn && !slices.Contains(names, s.Initiator) })
	return err
}

// Session is one connection a CVM serves.
type Session struct {
	Target    string
	Initiator string
	Addr      string // initiator's IP
	TID       int
	SID, CID  int
}

// Sessions lists the connections tgtd serves, target by target.
func (c *CVM) Sessions(ctx context.Context) ([]Session, error) {
	c.mu.Lock()
	tids := make(map[int]string, len(c.tids))
	for iqn, tid := range c.tids {
		tids[tid] = iqn
	}
	c.mu.Unlock()
	var out []Session
	for tid, iqn := range tids {
		txt, err := c.adm(ctx, "--op", "show", "--mode", "conn", "--tid", strconv.Itoa(tid))
		if err != nil {
			return nil, err
		}
		for _, s := range parseConns(txt) {
			s.Target, s.TID = iqn, tid
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return cmpSession(a, b) })
	return out, nil
}

func cmpSession(a, b Session) int {
	if c := strings.Compare(a.Target, b.Target); c != 0 {
		return c
	}
	return a.SID - b.SID
}

// Drop ends the connections for which match is true (the initiator
// reconnects through its redirector) and says how many it ended.
func (c *CVM) Drop(ctx context.Context, match func(Session) bool) (int, error) {
	ss, err := c.Sessions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range ss {
		if !match(s) {
			continue
		}
		if _, err := c.adm(ctx, "--op", "delete", "--mode", "conn", "--tid", strconv.Itoa(s.TID),
			"--sid", strconv.Itoa(s.SID), "--cid", strconv.Itoa(s.CID)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// parseConns reads tgtadm's connection listing:
//
//	Session: 1
//	    Connection: 0
//	        Initiator: iqn...
//	        IP Address: 127.0.0.1
func parseConns(txt string) []Session {
	var out []Session
	var cur *Session
	sid := 0
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ": ")
		if !ok {
			continue
		}
		switch k {
		case "Session":
			sid, _ = strconv.Atoi(v)
		case "Connection":
			cid, _ := strconv.Atoi(v)
			out = append(out, Session{SID: sid, CID: cid})
			cur = &out[len(out)-1]
		case "Initiator":
			if cur != nil {
				cur.Initiator = v
			}
		case "IP Address":
			if cur != nil {
				cur.Addr = v
			}
		}
	}
	return out
}

// parseNexus reads the connections out of tgtadm's target listing:
//
//	Target 1: iqn...
//	    I_T nexus information:
//	        I_T nexus: 2
//	            Initiator: iqn... alias: none
//	            Connection: 0
//	                IP Address: 127.0.0.1
func parseNexus(txt string) []Session {
	var out []Session
	target, tid, initiator, sid := "", 0, "", 0
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Target "); ok {
			n, name, _ := strings.Cut(rest, ": ")
			tid, _ = strconv.Atoi(n)
			target, initiator = name, ""
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		switch k {
		case "I_T nexus":
			sid, _ = strconv.Atoi(v)
			initiator = ""
		case "Initiator":
			initiator, _, _ = strings.Cut(v, " alias:")
		case "Connection":
			cid, _ := strconv.Atoi(v)
			if initiator != "" {
				out = append(out, Session{Target: target, Initiator: initiator, TID: tid, SID: sid, CID: cid})
			}
		case "IP Address":
			if len(out) > 0 && out[len(out)-1].Addr == "" {
				out[len(out)-1].Addr = v
			}
		}
	}
	return out
}

type targetID struct {
	tid  int
	name string
}

// parseTargets reads the targets out of tgtadm's target listing.
func parseTargets(txt string) []targetID {
	var out []targetID
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Target "); ok {
			n, name, _ := strings.Cut(rest, ": ")
			if tid, err := strconv.Atoi(n); err == nil {
				out = append(out, targetID{tid, name})
			}
		}
	}
	return out
}

// targetACL reads the ACL of target tid from tgtadm's target listing: the
// initiator names, and whether the address rule ALL is there.
func targetACL(txt string, tid int) (names []string, all bool) {
	in, acl := false, false
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Target ") {
			n, _, _ := strings.Cut(strings.TrimPrefix(line, "Target "), ":")
			in, acl = n == strconv.Itoa(tid), false
			continue
		}
		if !in {
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case strings.HasSuffix(t, "information:"):
			acl = t == "ACL information:" || t == "Initiator-name ACL information:"
		case acl && t == "ALL":
			all = true
		case acl && strings.Contains(t, ":"):
			names = append(names, t)
		}
	}
	return names, all
}

func (c *CVM) socket() string {
	return filepath.Join(c.Dir, "run", "tgtd", "socket."+c.portString())
}

// adm runs tgtadm against this CVM's tgtd.
func (c *CVM) adm(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tgtadm", append([]string{"-C", c.portString(), "--lld", "iscsi"}, args...)...)
	cmd.Env = append(os.Environ(), "TGT_IPC_SOCKET="+filepath.Join(c.Dir, "run", "tgtd", "socket"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tgtadm %s: %v: %s", strings.Join(args[:4], " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return strings.TrimSpace(string(b))
}
