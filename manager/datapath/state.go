package datapath

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The CVM targets belong to the hosts, not to clusterd: a plane closed
// with KeepTargets (clusterd stopping) leaves them serving, and the next
// plane on the same Dir adopts them by the PIDs recorded here, so guests
// do not stall while clusterd restarts. The fences are recorded too: the
// targets keep enforcing them, and the next plane must be able to lift them.

const recordFile = "targets.json"

// record is what a plane keeps in Dir about its running targets.
type record struct {
	CVMs   []cvmRecord `json:"cvms"`
	Fenced []fenceRec  `json:"fenced,omitempty"`
	// Disks are the exports, for a target restarted after its adoption.
	Disks []Disk `json:"disks,omitempty"`
}

type cvmRecord struct {
	Host string `json:"host"`
	IP   string `json:"ip"`
	PID  int    `json:"pid"`
	Port int    `json:"port"` // tgtd's control port
}

type fenceRec struct {
	Target    string `json:"target"`
	Initiator string `json:"initiator"`
}

func readRecord(dir string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	return r, nil
}

// save records the running targets and the fences (atomically: a crash
// mid-write leaves the previous record).
func (p *Plane) save() {
	p.mu.Lock()
	var r record
	for _, h := range p.hosts {
		if pid := h.cvm.PID(); pid > 0 && !h.gone {
			r.CVMs = append(r.CVMs, cvmRecord{Host: h.Name, IP: h.CVMIP, PID: pid, Port: h.cvm.Port()})
		}
	}
	for k := range p.fenced {
		r.Fenced = append(r.Fenced, fenceRec{Target: k.target, Initiator: k.initiator})
	}
	r.Disks = slices.Clone(p.disks)
	p.mu.Unlock()
	slices.SortFunc(r.Fenced, func(a, b fenceRec) int {
		return strings.Compare(a.Target+" "+a.Initiator, b.Target+" "+b.Initiator)
	})
	b, _ := json.MarshalIndent(r, "", "  ")
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	if err := os.MkdirAll(p.cfg.Dir, 0o755); err == nil {
		tmp := filepath.Join(p.cfg.Dir, recordFile+".tmp")
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, filepath.Join(p.cfg.Dir, recordFile))
		}
		if err != nil {
			p.log.Warn("datapath: recording the targets", "err", err)
		}
	}
}

// StopRecorded stops, by PID, the CVM targets a plane on dir left running
// (acli-lab's teardown after clusterd), waits for them to exit, and
// returns their PIDs. A PID that is no longer tgtd's is left alone.
func StopRecorded(dir string) ([]int, error) {
	r, err := readRecord(dir)
	if err != nil {
		return nil, err
	}
	var pids []int
	var errs []error
	for _, c := range r.CVMs {
		cvm := &CVM{Name: c.Host + "-cvm"}
		cvm.pid.Store(int64(c.PID))
		if !cvm.Alive() {
			continue
		}
		syscall.Kill(c.PID, syscall.SIGCONT)
		if err := syscall.Kill(c.PID, syscall.SIGKILL); err != nil {
			errs = append(errs, fmt.Errorf("tgtd %d of %s: %w", c.PID, c.Host, err))
			continue
		}
		pids = append(pids, c.PID)
		// Gone (or a zombie) before it counts as stopped.
		for deadline := time.Now().Add(5 * time.Second); cvm.Alive(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("tgtd %d of %s: still running 5 s after SIGKILL", c.PID, c.Host))
				break
			}
		}
	}
	if err := os.Remove(filepath.Join(dir, recordFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return pids, errors.Join(errs...)
}
