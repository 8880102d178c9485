package render

import (
	"fmt"
	"io"
	"strings"
	"sync"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// OpName is the acli spelling of a task operation: kVmCreate → VmCreate.
func OpName(op acliv1.TaskOperation) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return strings.TrimPrefix(op.String(), "k")
}

// opNames are the operations acli has always printed under another name.
var opNames = map[acliv1.TaskOperation]string{
	acliv1.TaskOperation_kHostEnterMaintenanceMode: "EnterMaintenanceMode",
	acliv1.TaskOperation_kHostExitMaintenanceMode:  "ExitMaintenanceMode",
	acliv1.TaskOperation_kVmDiskCreate:             "DiskCreate",
}

// Progress shows tasks as they advance: "<Op>: pending", progress, then
// "<Op>: complete" or the error. On a terminal the progress line is redrawn
// in place; in a pipe every change worth reading is its own line.
type Progress struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex
	last    map[string]string // task UUID → last line printed
	pending bool              // a redrawable line is on screen
}

// NewProgress writes to w; tty selects in-place updates.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, last: map[string]string{}}
}

// Update shows the task's current state under label (e.g. "VmCreate" or
// "VmPowerOn web01"). Final states print their closing line.
func (p *Progress) Update(label string, t *acliv1.Task) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var line string
	final := false
	switch t.GetStatus() {
	case acliv1.TaskStatus_kSucceeded:
		line, final = label+": complete", true
	case acliv1.TaskStatus_kFailed, acliv1.TaskStatus_kAborted:
		verb := "failed"
		if t.GetStatus() == acliv1.TaskStatus_kAborted {
			verb = "aborted"
		}
		msg := t.GetError()
		if msg == "" {
			msg = verb
		}
		line, final = label+": "+verb+": "+msg, true
	case acliv1.TaskStatus_kRunning:
		if p.tty {
			line = fmt.Sprintf("%s: %s %3d%%", label, bar(t.GetPercent()), t.GetPercent())
		} else {
			line = fmt.Sprintf("%s: %d%%", label, t.GetPercent())
		}
		if m := t.GetProgressMessage(); m != "" {
			line += " " + m
		}
	default:
		line = label + ": pending"
	}
	uuid := t.GetUuid()
	if p.last[uuid] == line {
		return
	}
	_, seen := p.last[uuid]
	p.last[uuid] = line
	if !p.tty {
		// In a pipe acli prints "<label>: pending" and the end, nothing
		// between: scripts grep the closing line.
		if !seen {
			fmt.Fprintln(p.w, label+": pending")
		}
		if final {
			fmt.Fprintln(p.w, line)
		}
		return
	}
	if final {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", line)
		p.pending = false
		return
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	p.pending = true
}

// Begin prints "<label>: pending" in a pipe the first time a task is seen,
// so the lines a command notes about it come after (as acli prints them).
func (p *Progress) Begin(label string, t *acliv1.Task) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		return
	}
	if _, seen := p.last[t.GetUuid()]; seen {
		return
	}
	p.last[t.GetUuid()] = label + ": pending"
	fmt.Fprintln(p.w, label+": pending")
}

// Note prints a line that stays (a chosen target, a task's result) above
// the in-place progress line on a terminal, or as its own line in a pipe.
func (p *Progress) Note(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.pending {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", line)
		p.pending = false
		return
	}
	fmt.Fprintln(p.w, line)
}

// Close ends an unfinished in-place line (e.g. after a timeout).
func (p *Progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending {
		fmt.Fprintln(p.w)
		p.pending = false
	}
}

func bar(pct int32) string {
	const width = 20
	pct = max(0, min(pct, 100))
	n := int(pct) * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
