// Package iscsi plans which controller VM (CVM) serves each iSCSI session of
// the volume groups: initial assignment spread across CVMs, failover off a
// CVM that goes down, failback to the preferred CVM when it returns, and the
// invariant that every attached (initiator, vDisk) pair has exactly one
// session on an up CVM, or is reported down when no CVM is up.
//
// Like the scheduler it is pure: the manager passes the CVMs, attachments and
// current sessions, applies the returned moves and emits one event per move.
// CVMs are named by IP throughout, as operators see them.
package iscsi

import (
	"cmp"
	"container/heap"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Target ports.
const (
	// PortExternal is the data services portal external initiators log in to.
	PortExternal = 3205
	// PortLocal is the host-local redirector path VMs use.
	PortLocal = 3261
)

// CVMState is the state of a controller VM; only CVMUp serves sessions.
type CVMState int

const (
	CVMUp CVMState = iota
	CVMDown
	CVMMaintenance
)

func (s CVMState) String() string {
	switch s {
	case CVMUp:
		return "kCvmUp"
	case CVMDown:
		return "kCvmDown"
	case CVMMaintenance:
		return "kCvmMaintenance"
	}
	return "unknown CVM state"
}

// CVM is one controller VM, an iSCSI target.
type CVM struct {
	IP       string
	HostUUID string
	State    CVMState
}

// Key names one (initiator, vDisk) pair: the unit a session serves.
type Key struct {
	Initiator string
	VG        string // volume group UUID
	Disk      int    // vDisk index in the VG
}

// String renders "<iqn>/<disk>", as move events name a session.
func (k Key) String() string { return k.Initiator + "/" + strconv.Itoa(k.Disk) }

func (k Key) compare(o Key) int {
	if c := strings.Compare(k.VG, o.VG); c != 0 {
		return c
	}
	if c := strings.Compare(k.Initiator, o.Initiator); c != 0 {
		return c
	}
	return cmp.Compare(k.Disk, o.Disk)
}

// Attachment is one vDisk of a VG attached to an initiator.
type Attachment struct {
	Key
	// VMHost is the host UUID of the VM the VG is attached to; empty for an
	// external initiator (or a VM that is off).
	VMHost string
	// LoadBalance is the VG's load_balance_vm_attachments: spread VM
	// sessions across CVMs instead of preferring the VM's local CVM.
	LoadBalance bool
}

// Session is the CVM serving one attachment.
type Session struct {
	Key
	CVM string // IP of the serving CVM
	// Preferred is where the session returns on failback: the VM's local
	// CVM, or the CVM first chosen when spreading.
	Preferred string
}

// Move is one session changing CVM.
type Move struct {
	Key      Key
	From, To string
}

// String renders the event text, e.g. "session iqn.../0 moved 127.20.0.31 -> 127.20.0.32".
func (m Move) String() string {
	return fmt.Sprintf("session %s moved %s -> %s", m.Key, m.From, m.To)
}

// Plan is what to do after a CVM changes state.
type Plan struct {
	Moves []Move
	// Down lists sessions left without a CVM because none is up.
	Down []Key
}

// cluster indexes the CVMs and their session counts.
type cluster struct {
	cvms   []CVM
	byIP   map[string]int
	byHost map[string]int
	addr   []netip.Addr
	load   []int
	up     int
}

func newCluster(cvms []CVM, sessions []Session) (*cluster, error) {
	c := &cluster{cvms: cvms, byIP: make(map[string]int, len(cvms)), byHost: make(map[string]int, len(cvms)),
		addr: make([]netip.Addr, len(cvms)), load: make([]int, len(cvms))}
	for i, v := range cvms {
		if _, dup := c.byIP[v.IP]; dup || v.IP == "" {
			return nil, fmt.Errorf("CVM IP %q is empty or appears twice", v.IP)
		}
		c.byIP[v.IP] = i
		if v.HostUUID != "" {
			c.byHost[v.HostUUID] = i
		}
		c.addr[i], _ = netip.ParseAddr(v.IP)
		if v.State == CVMUp {
			c.up++
		}
	}
	for _, s := range sessions {
		if i, ok := c.byIP[s.CVM]; ok {
			c.load[i]++
		}
	}
	return c, nil
}

func (c *cluster) isUp(ip string) bool {
	i, ok := c.byIP[ip]
	return ok && c.cvms[i].State == CVMUp
}

// lessIP orders CVMs by address, for ties.
func (c *cluster) lessIP(a, b int) bool {
	if x, y := c.addr[a], c.addr[b]; x.IsValid() && y.IsValid() {
		return x.Less(y)
	}
	return c.cvms[a].IP < c.cvms[b].IP
}

// Assign creates a session for every attachment that has none. External
// initiators, and VMs of VGs with LoadBalance, are spread: each disk goes to
// the up CVM with the fewest sessions of the same initiator and VG, then the
// fewest sessions overall, then the lowest IP, so a 3-disk VG on three CVMs
// gets one session per CVM. Other VM attachments go to the CVM on the VM's
// host, which stays their preferred CVM even while it is down and they are
// served elsewhere. It fails, assigning nothing, when no CVM is up.
func Assign(cvms []CVM, sessions []Session, atts []Attachment) ([]Session, error) {
	c, err := newCluster(cvms, sessions)
	if err != nil {
		return nil, err
	}
	have := make(map[Key]bool, len(sessions))
	for _, s := range sessions {
		have[s.Key] = true
	}
	todo := make([]Attachment, 0, len(atts))
	for _, a := range atts {
		if !have[a.Key] {
			have[a.Key] = true // one session even if listed twice
			todo = append(todo, a)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	if c.up == 0 {
		return nil, fmt.Errorf("no CVM is up to serve %s", todo[0].Key)
	}
	slices.SortFunc(todo, func(a, b Attachment) int { return a.compare(b.Key) })
	// Sessions per CVM of each (initiator, VG), existing ones included.
	type group struct{ initiator, vg string }
	per := map[group][]int{}
	count := func(g group) []int {
		if per[g] == nil {
			per[g] = make([]int, len(cvms))
		}
		return per[g]
	}
	for _, s := range sessions {
		if i, ok := c.byIP[s.CVM]; ok {
			count(group{s.Initiator, s.VG})[i]++
		}
	}
	out := make([]Session, 0, len(todo))
	for _, a := range todo {
		g := count(group{a.Initiator, a.VG})
		local, hasLocal := c.byHost[a.VMHost]
		chosen := -1
		if a.VMHost != "" && !a.LoadBalance && hasLocal && c.cvms[local].State == CVMUp {
			chosen = local
		} else {
			for i := range cvms {
				if cvms[i].State != CVMUp {
					continue
				}
				if chosen < 0 || g[i] < g[chosen] ||
					g[i] == g[chosen] && (c.load[i] < c.load[chosen] || c.load[i] == c.load[chosen] && c.lessIP(i, chosen)) {
					chosen = i
				}
			}
		}
		pref := chosen
		if a.VMHost != "" && !a.LoadBalance && hasLocal {
			pref = local
		}
		g[chosen]++
		c.load[chosen]++
		out = append(out, Session{Key: a.Key, CVM: cvms[chosen].IP, Preferred: cvms[pref].IP})
	}
	return out, nil
}

// Failover moves every session whose CVM is not up to an up CVM, each to the
// least-loaded one at that moment (ties: lowest IP), in key order. When no
// CVM is up, those sessions are listed in Down instead.
func Failover(cvms []CVM, sessions []Session) (*Plan, error) {
	return Reconcile(cvms, sessions, false)
}

// Failback moves every session whose preferred CVM is up but which is served
// elsewhere back to its preferred CVM. Whether that happens at once or after
// a delay is the caller's decision.
func Failback(cvms []CVM, sessions []Session) (*Plan, error) {
	c, err := newCluster(cvms, sessions)
	if err != nil {
		return nil, err
	}
	return &Plan{Moves: c.failback(sessions, nil)}, nil
}

// Reconcile is Failover, preceded by Failback when failback is set; a session
// moves at most once.
func Reconcile(cvms []CVM, sessions []Session, failback bool) (*Plan, error) {
	c, err := newCluster(cvms, sessions)
	if err != nil {
		return nil, err
	}
	plan := &Plan{}
	moved := map[Key]bool{}
	if failback {
		plan.Moves = c.failback(sessions, moved)
	}
	var stranded []Session
	for _, s := range sessions {
		if !moved[s.Key] && !c.isUp(s.CVM) {
			stranded = append(stranded, s)
		}
	}
	slices.SortFunc(stranded, func(a, b Session) int { return a.compare(b.Key) })
	if c.up == 0 {
		for _, s := range stranded {
			plan.Down = append(plan.Down, s.Key)
		}
		return plan, nil
	}
	h := &cvmHeap{c: c}
	for i, v := range cvms {
		if v.State == CVMUp {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	for _, s := range stranded {
		to := h.idx[0]
		if i, ok := c.byIP[s.CVM]; ok {
			c.load[i]--
		}
		c.load[to]++
		heap.Fix(h, 0)
		plan.Moves = append(plan.Moves, Move{Key: s.Key, From: s.CVM, To: cvms[to].IP})
	}
	return plan, nil
}

func (c *cluster) failback(sessions []Session, moved map[Key]bool) []Move {
	var moves []Move
	for _, s := range sessions {
		if s.Preferred == "" || s.Preferred == s.CVM || !c.isUp(s.Preferred) {
			continue
		}
		moves = append(moves, Move{Key: s.Key, From: s.CVM, To: s.Preferred})
		if i, ok := c.byIP[s.CVM]; ok {
			c.load[i]--
		}
		c.load[c.byIP[s.Preferred]]++
		if moved != nil {
			moved[s.Key] = true
		}
	}
	slices.SortFunc(moves, func(a, b Move) int { return a.Key.compare(b.Key) })
	return moves
}

// cvmHeap orders up CVMs by load, then IP.
type cvmHeap struct {
	c   *cluster
	idx []int
}

func (h *cvmHeap) Len() int { return len(h.idx) }
func (h *cvmHeap) Less(i, j int) bool {
	a, b := h.idx[i], h.idx[j]
	if la, lb := h.c.load[a], h.c.load[b]; la != lb {
		return la < lb
	}
	return h.c.lessIP(a, b)
}
func (h *cvmHeap) Swap(i, j int) { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *cvmHeap) Push(x any)    { h.idx = append(h.idx, x.(int)) }
func (h *cvmHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// Apply returns sessions with the moves carried out.
func Apply(sessions []Session, moves []Move) []Session {
	to := make(map[Key]string, len(moves))
	for _, m := range moves {
		to[m.Key] = m.To
	}
	out := slices.Clone(sessions)
	for i := range out {
		if ip, ok := to[out[i].Key]; ok {
			out[i].CVM = ip
		}
	}
	return out
}

// InvariantError lists every way the sessions break the invariant.
type InvariantError struct{ Problems []string }

func (e *InvariantError) Error() string {
	return "iSCSI session invariant broken: " + strings.Join(e.Problems, "; ")
}

// Check verifies the invariant: every attachment has exactly one session,
// on an up CVM unless no CVM is up at all (then it is down, and reported so),
// and no session exists without an attachment. It returns nil or an
// *InvariantError listing every problem.
func Check(cvms []CVM, atts []Attachment, sessions []Session) error {
	c, err := newCluster(cvms, sessions)
	if err != nil {
		return err
	}
	n := make(map[Key]int, len(sessions))
	var problems []string
	for _, s := range sessions {
		n[s.Key]++
		if _, known := c.byIP[s.CVM]; !known {
			problems = append(problems, fmt.Sprintf("session %s is on unknown CVM %q", s.Key, s.CVM))
		} else if c.up > 0 && !c.isUp(s.CVM) {
			problems = append(problems, fmt.Sprintf("session %s is on CVM %s, which is %s, while other CVMs are up",
				s.Key, s.CVM, c.cvms[c.byIP[s.CVM]].State))
		}
	}
	attached := make(map[Key]bool, len(atts))
	for _, a := range atts {
		attached[a.Key] = true
	}
	for _, a := range atts {
		switch n[a.Key] {
		case 1:
		case 0:
			problems = append(problems, fmt.Sprintf("attachment %s of vg %s has no session", a.Key, a.VG))
		default:
			problems = append(problems, fmt.Sprintf("attachment %s of vg %s has %d sessions", a.Key, a.VG, n[a.Key]))
		}
		n[a.Key] = 1 // report each duplicate once
	}
	for _, s := range sessions {
		if !attached[s.Key] {
			problems = append(problems, fmt.Sprintf("session %s of vg %s has no attachment", s.Key, s.VG))
		}
	}
	if len(problems) > 0 {
		return &InvariantError{Problems: problems}
	}
	return nil
}

// Down reports whether no CVM is up, so every session is down.
func Down(cvms []CVM) bool {
	for _, c := range cvms {
		if c.State == CVMUp {
			return false
		}
	}
	return true
}

// Load counts the sessions each CVM serves, by IP.
func Load(sessions []Session) map[string]int {
	m := map[string]int{}
	for _, s := range sessions {
		m[s.CVM]++
	}
	return m
}
