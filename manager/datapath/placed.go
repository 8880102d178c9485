package datapath

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/acli-dev/acli/manager/iscsi"
)

// Placed is where the cluster's model puts an external initiator's session
// of a target (a volume group's vDisk) through the data services IP.
type Placed struct {
	Initiator, Target string
	CVMIP             string
}

// Place makes the data services IP follow the model: a login of a placed
// (initiator, target) goes to its CVM while that CVM is up (else to the
// plane's own choice), and a session found on another CVM is ended, no
// sooner than ReconnectGap after its login, so that it logs in again where
// the model says.
func (p *Plane) Place(placed []Placed) {
	m := make(map[liveKey]string, len(placed))
	for _, pl := range placed {
		m[liveKey{pl.Initiator, pl.Target}] = pl.CVMIP
	}
	p.mu.Lock()
	p.placed = m
	p.mu.Unlock()
}

// placedLocked is the model's CVM for a login through the data services
// IP when it has one and that CVM is up.
func (p *Plane) placedLocked(l Login) (string, bool) {
	ip, ok := p.placed[liveKey{l.Initiator, l.Target}]
	if !ok {
		return "", false
	}
	_, h := p.byCVMLocked(ip)
	return ip, h != nil && h.up
}

// followPlacedLocked routes a login through the data services IP to the
// model's CVM, recording the session there.
func (p *Plane) followPlacedLocked(key iscsi.Key, ip string) {
	i := slices.IndexFunc(p.sessions, func(s iscsi.Session) bool { return s.Key == key })
	if i < 0 {
		p.sessions = append(p.sessions, iscsi.Session{Key: key, CVM: ip, Preferred: ip})
		return
	}
	p.sessions[i].CVM, p.sessions[i].Preferred = ip, ip
}

// endMisplaced ends the sessions through the data services IP that a CVM
// serves while the model places them on another, up one.
func (p *Plane) endMisplaced() {
	type drop struct {
		h                 *hostPath
		initiator, target string
	}
	var drops []drop
	p.mu.Lock()
	now := time.Now()
	for k, ip := range p.placed {
		_, want := p.byCVMLocked(ip)
		if want == nil || !want.up {
			continue
		}
		recent := false
		for key, m := range p.meta {
			if key.VG == "dsip" && m.initiator == k.initiator && m.target == k.target && now.Sub(m.when) < p.cfg.ReconnectGap {
				recent = true
			}
		}
		if recent {
			continue
		}
		for _, h := range p.hosts {
			if _, ok := h.live[k]; ok && h != want && h.up && !h.gone {
				drops = append(drops, drop{h, k.initiator, k.target})
			}
		}
	}
	p.mu.Unlock()
	for _, d := range drops {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := d.h.cvm.Drop(ctx, func(s Session) bool { return s.Target == d.target && s.Initiator == d.initiator })
		cancel()
		p.log.Info("datapath: session ended to follow the model", "initiator", d.initiator, "target", d.target, "cvm", d.h.CVMIP, "ended", n, "err", err)
	}
}

// Served is a session a CVM really serves.
type Served struct {
	Host, CVMIP string // the serving CVM's host and address
	Session
}

// Served lists the sessions the CVMs served at their last check, by
// target, initiator and CVM.
func (p *Plane) Served() []Served {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Served
	for _, h := range p.hosts {
		if h.gone || !h.up {
			continue
		}
		for _, s := range h.live {
			out = append(out, Served{Host: h.Name, CVMIP: h.CVMIP, Session: s})
		}
	}
	slices.SortFunc(out, func(a, b Served) int {
		return strings.Compare(a.Target+" "+a.Initiator+" "+a.CVMIP, b.Target+" "+b.Initiator+" "+b.CVMIP)
	})
	return out
}
