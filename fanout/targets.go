package fanout

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
)

// maxRangeTargets bounds one expanded spec so that a typo such as
// node[1-1000000] fails fast instead of eating memory.
const maxRangeTargets = 65536

// Target is one machine to run the command on.
type Target struct {
	// Host is a name or an IP address, without brackets.
	Host string
	// Port is the SSH port; 0 means "from ~/.ssh/config, --port or 22".
	Port int
	// HostKeys are extra trusted host keys for this target in
	// authorized_keys form (e.g. the keys clusterd publishes per host).
	HostKeys []string
	// PinFile, when set, is a known_hosts file that a HostKeys key is
	// recorded in on first use; once recorded it is checked before
	// HostKeys, so a key published later that differs is refused.
	PinFile string
}

// String returns host or host:port (bracketed for IPv6).
func (t Target) String() string {
	if t.Port == 0 {
		return t.Host
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// ParseTargets expands a comma-separated target list such as
// "10.0.0.[1-4],node[01-16]:2222,db1". Commas inside brackets belong to
// the range ("10.0.0.[1-3,7]"); a bracketed IPv6 literal ("[::1]:22") is
// kept as an address.
func ParseTargets(spec string) ([]Target, error) {
	var out []Target
	for _, item := range splitTop(spec) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ts, err := parseItem(item)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
		if len(out) > maxRangeTargets {
			return nil, fmt.Errorf("target list %q expands to more than %d hosts", spec, maxRangeTargets)
		}
	}
	return out, nil
}

// ReadTargets reads a hosts file: one host or host:port per line (ranges
// allowed), blank lines and # comments ignored.
func ReadTargets(r io.Reader, name string) ([]Target, error) {
	var out []Target
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		ts, err := ParseTargets(strings.Join(strings.Fields(line), ","))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, ts...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// ReadTargetsFile is ReadTargets on a named file.
func ReadTargetsFile(file string) ([]Target, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("hosts file: %w", err)
	}
	defer f.Close()
	return ReadTargets(f, file)
}

// Exclude drops the targets matched by any pattern in spec. Patterns use the
// target syntax (ranges included) and may also be shell globs ("10.0.0.*").
// A pattern without a port matches the host on any port.
func Exclude(targets []Target, spec string) ([]Target, error) {
	if strings.TrimSpace(spec) == "" {
		return targets, nil
	}
	var pats []Target
	for _, item := range splitTop(spec) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.ContainsAny(item, "*?") {
			h, p, err := splitHostPort(item)
			if err != nil {
				return nil, err
			}
			if _, err := path.Match(h, ""); err != nil {
				return nil, fmt.Errorf("bad exclude pattern %q: %v", item, err)
			}
			pats = append(pats, Target{Host: h, Port: p})
			continue
		}
		ts, err := parseItem(item)
		if err != nil {
			return nil, err
		}
		pats = append(pats, ts...)
	}
	out := targets[:0:0]
	for _, t := range targets {
		drop := false
		for _, p := range pats {
			if ok, _ := path.Match(p.Host, t.Host); ok && (p.Port == 0 || p.Port == t.Port) {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, t)
		}
	}
	return out, nil
}

// Dedup keeps the first occurrence of each host:port.
func Dedup(targets []Target) []Target {
	seen := make(map[string]bool, len(targets))
	out := targets[:0:0]
	for _, t := range targets {
		k := t.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, t)
	}
	return out
}

// splitTop splits on commas that are not inside brackets.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func parseItem(item string) ([]Target, error) {
	host, port, err := splitHostPort(item)
	if err != nil {
		return nil, err
	}
	hosts, err := expand(host)
	if err != nil {
		return nil, err
	}
	out := make([]Target, len(hosts))
	for i, h := range hosts {
		out[i] = Target{Host: h, Port: port}
	}
	return out, nil
}

// splitHostPort separates an optional :port. "[v6]:port" and "[v6]" are
// IPv6 literals; a bare address with several colons is IPv6 without port.
func splitHostPort(item string) (string, int, error) {
	if strings.HasPrefix(item, "[") && strings.Contains(item[:strings.IndexByte(item+"]", ']')], ":") {
		end := strings.IndexByte(item, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("bad target %q: missing ']' (IPv6 is written [::1]:22)", item)
		}
		host, rest := item[1:end], item[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", 0, fmt.Errorf("bad target %q: want [ipv6]:port, e.g. [::1]:22", item)
		}
		p, err := parsePort(rest[1:], item)
		return host, p, err
	}
	// Only a colon outside brackets can start a port.
	colon, depth := -1, 0
	for i := 0; i < len(item); i++ {
		switch item[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				if colon >= 0 {
					return item, 0, nil // bare IPv6
				}
				colon = i
			}
		}
	}
	if colon < 0 {
		return item, 0, nil
	}
	p, err := parsePort(item[colon+1:], item)
	return item[:colon], p, err
}

func parsePort(s, item string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port in target %q: want 1-65535, e.g. 10.0.0.1:22", item)
	}
	return p, nil
}

// expand turns "node[01-03]-[a,b]" style patterns into host names.
func expand(host string) ([]string, error) {
	open := strings.IndexByte(host, '[')
	if open < 0 {
		if strings.ContainsRune(host, ']') {
			return nil, fmt.Errorf("bad host %q: ']' without '[' (ranges look like node[01-16])", host)
		}
		if host == "" {
			return nil, fmt.Errorf("empty host name in target list")
		}
		return []string{host}, nil
	}
	end := strings.IndexByte(host[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("bad host range %q: missing ']' (ranges look like node[01-16])", host)
	}
	end += open
	prefix, body, rest := host[:open], host[open+1:end], host[end+1:]
	values, err := expandRange(body, host)
	if err != nil {
		return nil, err
	}
	tails, err := expand("x" + rest) // "x" keeps an empty suffix valid
	if err != nil {
		return nil, err
	}
	if len(values)*len(tails) > maxRangeTargets {
		return nil, fmt.Errorf("host range %q expands to more than %d hosts", host, maxRangeTargets)
	}
	out := make([]string, 0, len(values)*len(tails))
	for _, v := range values {
		for _, t := range tails {
			out = append(out, prefix+v+t[1:])
		}
	}
	return out, nil
}

// expandRange expands "1-3,7,09-11" (also "1..3"); a leading zero on the
// start fixes the width, as in pdsh and clush.
func expandRange(body, host string) ([]string, error) {
	bad := func() error {
		return fmt.Errorf("bad host range %q: want [start-end] or [a,b,c-d], e.g. node[01-16] or 10.0.0.[1-64]", host)
	}
	if body == "" {
		return nil, bad()
	}
	var out []string
	for _, part := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			lo, hi, isRange = strings.Cut(part, "..")
		}
		if !isRange {
			if _, err := strconv.ParseUint(part, 10, 32); err != nil {
				return nil, bad()
			}
			out = append(out, part)
			continue
		}
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b, err2 := strconv.ParseUint(hi, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, bad()
		}
		if a > b {
			return nil, fmt.Errorf("bad host range %q: %d is after %d (write [%d-%d])", host, a, b, b, a)
		}
		if b-a >= maxRangeTargets {
			return nil, fmt.Errorf("host range %q expands to more than %d hosts", host, maxRangeTargets)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for v := a; v <= b; v++ {
			out = append(out, fmt.Sprintf("%0*d", width, v))
		}
	}
	return out, nil
}

// LocalLast moves the targets that are this machine to the end, keeping
// the order otherwise (allssh runs on the local CVM last, so a command
// that disturbs it cannot cut the fan-out short). isLocal nil means
// IsLocalAddress.
func LocalLast(targets []Target, isLocal func(host string) bool) []Target {
	if isLocal == nil {
		isLocal = IsLocalAddress
	}
	out := make([]Target, 0, len(targets))
	var local []Target
	for _, t := range targets {
		if isLocal(t.Host) {
			local = append(local, t)
		} else {
			out = append(out, t)
		}
	}
	return append(out, local...)
}

// IsLocalAddress reports whether host is an IP address assigned to one of
// this machine's interfaces (an exact match: 127.0.0.1/8 on lo makes
// 127.0.0.1 local, not every 127.x address).
func IsLocalAddress(host string) bool {
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
