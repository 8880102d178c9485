package iscsi

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"
)

// TargetDomain is the naming authority of the iSCSI names clusterd makes.
const TargetDomain = "iqn.2010-06.dev.acli"

// VMInitiator is the initiator name of a VM's host-local iSCSI path.
func VMInitiator(vmUUID string) string { return TargetDomain + ":vm-" + vmUUID }

// VMDiskCVM is the CVM serving a VM's own disks: the one on its host when
// up, else the up CVM ranking highest for the VM by rendezvous hashing, so
// that VMs of a failed CVM spread and each keeps its choice while other
// CVMs come and go. path is "local", "redirected" or "down".
func VMDiskCVM(cvms []CVM, hostUUID, vmUUID string) (ip, path string) {
	best, bestScore := -1, uint64(0)
	for i, c := range cvms {
		if c.HostUUID == hostUUID && c.State == CVMUp {
			return c.IP, "local"
		}
		if c.State != CVMUp {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(vmUUID))
		h.Write([]byte{0})
		h.Write([]byte(c.IP))
		if s := h.Sum64(); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return "", "down"
	}
	return cvms[best].IP, "redirected"
}

// PlanSessions is the session policy clusterd applies, on top of Assign,
// Failover and Failback:
//  1. sessions whose attachment is gone end;
//  2. a VM's sessions (without load balancing) prefer the CVM on the VM's
//     current host and move there when it is up (the VM migrated);
//  3. sessions return to their preferred CVM where failbackTo allows;
//  4. while a VM's local CVM is down, its sessions (without load
//     balancing) go where its own disks are redirected (VMDiskCVM), so
//     all of a VM's disks take one path;
//  5. other sessions on CVMs that are not up fail over, least-loaded CVM
//     first;
//  6. new attachments get sessions spread across CVMs (or, when no CVM is
//     up, a down session on their preferred CVM, reported as down).
//
// It returns the sessions after the plan and each session's move (a session
// moves at most once).
func PlanSessions(cvms []CVM, atts []Attachment, cur []Session, failbackTo func(ip string) bool) ([]Session, []Move) {
	if len(cvms) == 0 {
		return nil, nil // nothing can serve; callers refuse attachments first
	}
	att := make(map[Key]Attachment, len(atts))
	for _, a := range atts {
		att[a.Key] = a
	}
	local := make(map[string]string, len(cvms))
	up := make(map[string]bool, len(cvms))
	for _, c := range cvms {
		local[c.HostUUID] = c.IP
		up[c.IP] = c.State == CVMUp
	}
	from := map[Key]string{}
	move := func(s *Session, to string) {
		if _, ok := from[s.Key]; !ok {
			from[s.Key] = s.CVM
		}
		s.CVM = to
	}
	keep := make([]Session, 0, len(cur))
	for _, s := range cur {
		a, ok := att[s.Key]
		if !ok {
			continue
		}
		if _, known := up[s.CVM]; !known {
			s.CVM = "" // its host was removed: treat as down
		}
		if a.VMHost != "" && !a.LoadBalance {
			if ip := local[a.VMHost]; ip != "" && s.Preferred != ip {
				s.Preferred = ip
				if up[ip] && s.CVM != ip {
					move(&s, ip)
				}
			}
		}
		if s.Preferred == "" {
			s.Preferred = s.CVM
		}
		keep = append(keep, s)
	}
	// Unknown CVMs (""), which the planner rejects, are placeholders for
	// down ones here.
	withGone := cvms
	if slices.ContainsFunc(keep, func(s Session) bool { return s.CVM == "" }) {
		withGone = append(slices.Clip(cvms), CVM{IP: "0.0.0.0", State: CVMDown})
		for i := range keep {
			if keep[i].CVM == "" {
				keep[i].CVM = "0.0.0.0"
			}
		}
	}
	if fb, err := Failback(withGone, keep); err == nil {
		var allowed []Move
		for _, mv := range fb.Moves {
			if failbackTo(mv.To) {
				allowed = append(allowed, mv)
			}
		}
		keep = applyMoves(keep, allowed, move)
	}
	// redirect is where a VM's session goes while its local CVM is down.
	redirect := func(s Session) (string, bool) {
		a := att[s.Key]
		id, isVM := strings.CutPrefix(s.Initiator, TargetDomain+":vm-")
		if !isVM || a.VMHost == "" || a.LoadBalance || up[local[a.VMHost]] {
			return "", false
		}
		ip, path := VMDiskCVM(cvms, a.VMHost, id)
		return ip, path == "redirected"
	}
	for i := range keep {
		if ip, ok := redirect(keep[i]); ok && keep[i].CVM != ip {
			move(&keep[i], ip)
		}
	}
	if fo, err := Failover(withGone, keep); err == nil {
		keep = applyMoves(keep, fo.Moves, move)
	}
	if Down(cvms) {
		// Nothing is up: a new session waits, down, on its preferred CVM.
		have := make(map[Key]bool, len(keep))
		for _, s := range keep {
			have[s.Key] = true
		}
		for _, a := range atts {
			if have[a.Key] {
				continue
			}
			have[a.Key] = true
			ip := cvms[0].IP
			if l := local[a.VMHost]; l != "" && a.VMHost != "" {
				ip = l
			}
			keep = append(keep, Session{Key: a.Key, CVM: ip, Preferred: ip})
		}
	} else if added, err := Assign(cvms, keep, atts); err == nil {
		for i := range added {
			if ip, ok := redirect(added[i]); ok {
				added[i].CVM = ip // new, so not a move
			}
		}
		keep = append(keep, added...)
	}
	var moves []Move
	for _, s := range keep {
		if f, ok := from[s.Key]; ok && f != s.CVM {
			moves = append(moves, Move{Key: s.Key, From: f, To: s.CVM})
		}
	}
	slices.SortFunc(moves, func(a, b Move) int {
		return cmp.Or(strings.Compare(a.Key.VG, b.Key.VG), strings.Compare(a.Key.Initiator, b.Key.Initiator), cmp.Compare(a.Key.Disk, b.Key.Disk))
	})
	return keep, moves
}

func applyMoves(ss []Session, moves []Move, move func(*Session, string)) []Session {
	if len(moves) == 0 {
		return ss
	}
	to := make(map[Key]string, len(moves))
	for _, mv := range moves {
		to[mv.Key] = mv.To
	}
	for i := range ss {
		if ip, ok := to[ss[i].Key]; ok {
			move(&ss[i], ip)
		}
	}
	return ss
}
