package fanout

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// printer keeps hosts' blocks apart: the host whose turn it is (head)
// streams its stdout live; later hosts buffer until every earlier host is
// done. A block is banner, stdout, then stderr and any error.
type printer struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	style  Style
	labels []string
	stream bool
	hosts  []hostBuf
	head   int
}

type hostBuf struct {
	stdout, stderr bytes.Buffer
	flushed        int // bytes of stdout already written to out
	done           bool
	errMsg         string
}

func newPrinter(out, errOut io.Writer, style Style, labels []string, stream bool) *printer {
	p := &printer{out: out, errOut: errOut, style: style, labels: labels,
		stream: stream, hosts: make([]hostBuf, len(labels))}
	if stream && len(labels) > 0 {
		fmt.Fprintln(out, style.Banner(labels[0]))
	}
	return p
}

func (p *printer) lock()   { p.mu.Lock() }
func (p *printer) unlock() { p.mu.Unlock() }

type hostWriter struct {
	p     *printer
	i     int
	isErr bool
}

func (w hostWriter) Write(b []byte) (int, error) {
	p := w.p
	p.lock()
	defer p.unlock()
	h := &p.hosts[w.i]
	if w.isErr {
		h.stderr.Write(b)
		return len(b), nil
	}
	h.stdout.Write(b)
	if p.stream && w.i == p.head {
		p.flushStdout(h)
	}
	return len(b), nil
}

func (p *printer) writers(i int) (io.Writer, io.Writer) {
	return hostWriter{p, i, false}, hostWriter{p, i, true}
}

func (p *printer) captured(i int) (string, string) {
	p.lock()
	defer p.unlock()
	return p.hosts[i].stdout.String(), p.hosts[i].stderr.String()
}

func (p *printer) flushStdout(h *hostBuf) {
	if h.flushed < h.stdout.Len() {
		p.out.Write(h.stdout.Bytes()[h.flushed:])
		h.flushed = h.stdout.Len()
	}
}

// done records that host i finished and writes every block now complete.
func (p *printer) done(i int, hr HostResult) {
	p.lock()
	defer p.unlock()
	h := &p.hosts[i]
	h.done = true
	if hr.Status != StatusOK && hr.Status != StatusFailed && hr.Error != "" {
		h.errMsg = hr.Error
	}
	if !p.stream {
		return
	}
	for p.head < len(p.hosts) && p.hosts[p.head].done {
		cur := &p.hosts[p.head]
		p.flushStdout(cur)
		p.errOut.Write(cur.stderr.Bytes())
		if cur.errMsg != "" {
			fmt.Fprintf(p.errOut, "%s: %s\n", p.labels[p.head], cur.errMsg)
		}
		p.head++
		if p.head < len(p.hosts) {
			fmt.Fprintln(p.out, p.style.Banner(p.labels[p.head]))
			p.flushStdout(&p.hosts[p.head])
		}
	}
}

// WriteGathered prints hosts with identical stdout, stderr and error once,
// under a banner listing them (folded into ranges), in order of each
// group's first host.
func (r *Result) WriteGathered(out, errOut io.Writer) {
	type group struct {
		labels []string
		h      *HostResult
	}
	var groups []*group
	byKey := map[string]*group{}
	for i := range r.Hosts {
		h := &r.Hosts[i]
		errMsg := ""
		if h.Status != StatusOK && h.Status != StatusFailed {
			errMsg = h.Error
		}
		key := strconv.Quote(h.Stdout) + strconv.Quote(h.Stderr) + strconv.Quote(errMsg)
		g, ok := byKey[key]
		if !ok {
			g = &group{h: h}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.labels = append(g.labels, h.label)
	}
	for _, g := range groups {
		label := FoldHosts(g.labels)
		if len(g.labels) > 1 {
			label += fmt.Sprintf(" (%d)", len(g.labels))
		}
		fmt.Fprintln(out, r.style.Banner(label))
		io.WriteString(out, g.h.Stdout)
		io.WriteString(errOut, g.h.Stderr)
		if g.h.Status != StatusOK && g.h.Status != StatusFailed && g.h.Error != "" {
			fmt.Fprintf(errOut, "%s\n", g.h.Error)
		}
	}
}

var trailingNumber = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(.*?)(\d+)$`) })

// FoldHosts writes a host list compactly in the target syntax, e.g.
// "10.0.0.[1-3,7],node[01-02]"; it keeps first-seen order of prefixes.
func FoldHosts(hosts []string) string {
	type run struct {
		prefix string
		width  int
		nums   []int
		text   []string
	}
	var order []*run
	byKey := map[string]*run{}
	for _, h := range hosts {
		m := trailingNumber().FindStringSubmatch(h)
		if m == nil || strings.ContainsAny(m[1], "[]") {
			order = append(order, &run{prefix: h})
			continue
		}
		width := 0
		if len(m[2]) > 1 && m[2][0] == '0' {
			width = len(m[2])
		}
		n, err := strconv.Atoi(m[2])
		if err != nil {
			order = append(order, &run{prefix: h})
			continue
		}
		key := m[1] + "\x00" + strconv.Itoa(width)
		r, ok := byKey[key]
		if !ok {
			r = &run{prefix: m[1], width: width}
			byKey[key] = r
			order = append(order, r)
		}
		r.nums = append(r.nums, n)
		r.text = append(r.text, m[2])
	}
	parts := make([]string, 0, len(order))
	for _, r := range order {
		switch len(r.nums) {
		case 0:
			parts = append(parts, r.prefix)
		case 1:
			parts = append(parts, r.prefix+r.text[0])
		default:
			parts = append(parts, r.prefix+"["+foldNumbers(r.nums, r.width)+"]")
		}
	}
	return strings.Join(parts, ",")
}

// foldNumbers renders consecutive runs as a-b, keeping the given order.
func foldNumbers(nums []int, width int) string {
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprintf("%0*d", width, nums[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%0*d-%0*d", width, nums[i], width, nums[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
