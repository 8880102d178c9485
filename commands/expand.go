package commands

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/acli-dev/acli/client"
	"github.com/google/uuid"
)

// Target is one entity a command acts on: ID is what goes to the server
// (the UUID when a pattern matched it, else what the user typed), Name is
// what the user reads.
type Target struct {
	Name string
	ID   string
}

// maxRange caps what one range may generate, so a typo cannot ask for
// a billion VMs.
const maxRange = 10000

var rangeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\[(\d+)\.\.(\d+)\]`) })

// hasPattern reports whether s uses glob or range syntax.
func hasPattern(s string) bool { return strings.ContainsAny(s, "*?[") }

// ExpandRange generates the names of the first range in s, recursively for
// further ranges: web[01..03] → web01 web02 web03. Padding follows the
// lower bound's width when it has a leading zero.
func ExpandRange(s string) ([]string, error) {
	loc := rangeRE().FindStringSubmatchIndex(s)
	if loc == nil {
		return []string{s}, nil
	}
	loS, hiS := s[loc[2]:loc[3]], s[loc[4]:loc[5]]
	lo, err1 := strconv.Atoi(loS)
	hi, err2 := strconv.Atoi(hiS)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("range %q: bounds are too large", s[loc[0]:loc[1]])
	}
	if lo > hi {
		return nil, fmt.Errorf("range %q: %d is greater than %d (write [%s..%s])", s[loc[0]:loc[1]], lo, hi, hiS, loS)
	}
	if hi-lo+1 > maxRange {
		return nil, fmt.Errorf("range %q makes %d names; at most %d at once", s[loc[0]:loc[1]], hi-lo+1, maxRange)
	}
	width := 0
	if len(loS) > 1 && loS[0] == '0' || len(hiS) > 1 && hiS[0] == '0' {
		width = len(loS)
	}
	prefix, rest := s[:loc[0]], s[loc[1]:]
	tails, err := ExpandRange(rest)
	if err != nil {
		return nil, err
	}
	if (hi-lo+1)*len(tails) > maxRange {
		return nil, fmt.Errorf("%q makes more than %d names", s, maxRange)
	}
	out := make([]string, 0, (hi-lo+1)*len(tails))
	for n := lo; n <= hi; n++ {
		num := strconv.Itoa(n)
		if len(num) < width {
			num = strings.Repeat("0", width-len(num)) + num
		}
		for _, t := range tails {
			out = append(out, prefix+num+t)
		}
	}
	return out, nil
}

// globRE compiles a glob (* ? [abc] [!abc]) to an anchored regexp.
func globRE(g string) (*regexp.Regexp, error) {
	var sb strings.Builder
	sb.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			sb.WriteString(".*")
		case '?':
			sb.WriteString(".")
		case '[':
			j := strings.IndexByte(g[i+1:], ']')
			if j < 0 {
				return nil, fmt.Errorf("pattern %q: unclosed [", g)
			}
			class := g[i+1 : i+1+j]
			if class == "" || class == "!" {
				return nil, fmt.Errorf("pattern %q: empty []", g)
			}
			if class[0] == '!' {
				class = "^" + class[1:]
			}
			sb.WriteString("[" + strings.NewReplacer(`\`, `\\`, `[`, `\[`).Replace(class) + "]")
			i += j + 1
		default:
			sb.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	sb.WriteString("$")
	re, err := regexp.Compile(sb.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", g, err)
	}
	return re, nil
}

// Expand resolves positional words to targets. Plain names pass through
// untouched (the server resolves names, UUIDs and IPs); ranges and globs
// are matched against the live entities from list, which is only called
// when a pattern needs it. Every pattern must match something.
func Expand(words []string, kind Kind, list func() ([]Entity, error)) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	add := func(t Target) {
		if !seen[t.ID] {
			seen[t.ID] = true
			out = append(out, t)
		}
	}
	var live []Entity
	loaded := false
	load := func() error {
		if loaded {
			return nil
		}
		var err error
		live, err = list()
		loaded = err == nil
		return err
	}
	for _, w := range words {
		if name, id, ok := nameUUID(w); ok {
			// acli's name:uuid picks one of several same-named entities.
			if err := load(); err != nil {
				return nil, err
			}
			t, err := resolveNameUUID(w, name, id, kind, live)
			if err != nil {
				return nil, err
			}
			add(t)
			continue
		}
		if !hasPattern(w) {
			add(Target{Name: w, ID: w})
			continue
		}
		names, err := ExpandRange(w)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		if err := load(); err != nil {
			return nil, err
		}
		for _, n := range names {
			matched := false
			if !hasPattern(n) {
				for _, e := range live {
					if e.Name == n || e.UUID == n || slices.Contains(e.Aliases, n) {
						add(Target{Name: e.Name, ID: e.UUID})
						matched = true
					}
				}
				if !matched {
					return nil, client.Errorf(client.ExitNotFound, "%s %q (from %s) does not exist", kindSingular(kind), n, w)
				}
				continue
			}
			re, err := globRE(n)
			if err != nil {
				return nil, usageErrorf("%v", err)
			}
			for _, e := range live {
				if re.MatchString(e.Name) || re.MatchString(e.UUID) || anyMatch(re, e.Aliases) {
					add(Target{Name: e.Name, ID: e.UUID})
					matched = true
				}
			}
			if !matched {
				return nil, client.Errorf(client.ExitNotFound, "no %s matches %q", kindSingular(kind), n)
			}
		}
	}
	return out, nil
}

// Generate resolves words for commands that create entities: ranges make
// names; globs are refused because there is nothing to match yet.
func Generate(words []string) ([]Target, error) {
	var out []Target
	for _, w := range words {
		if strings.ContainsAny(w, "*?") {
			return nil, usageErrorf("%q: globs match existing names; to create several, use a range like web[01..20]", w)
		}
		names, err := ExpandRange(w)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		for _, n := range names {
			if strings.ContainsAny(n, "[]") {
				return nil, usageErrorf("%q: a range is written name[01..20]", w)
			}
			out = append(out, Target{Name: n, ID: n})
		}
		if len(out) > maxRange {
			return nil, usageErrorf("at most %d names at once", maxRange)
		}
	}
	return out, nil
}

func kindSingular(k Kind) string {
	if s := LookupKind(k); s != nil {
		return s.Singular
	}
	return string(k)
}

func anyMatch(re *regexp.Regexp, s []string) bool {
	for _, x := range s {
		if x != "" && re.MatchString(x) {
			return true
		}
	}
	return false
}

// NameFilter selects the rows of a listing (vm.list 'web*'): a row is kept
// when its name, UUID or an alias matches one pattern. No patterns keep
// every row.
type NameFilter []*regexp.Regexp

// NewNameFilter compiles words: globs, ranges, plain names and UUIDs.
func NewNameFilter(words []string) (NameFilter, error) {
	var f NameFilter
	for _, w := range words {
		names, err := ExpandRange(w)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		for _, n := range names {
			re, err := globRE(n)
			if err != nil {
				return nil, usageErrorf("%v", err)
			}
			f = append(f, re)
		}
	}
	return f, nil
}

// Match reports whether the filter keeps the entity.
func (f NameFilter) Match(e Entity) bool {
	if len(f) == 0 {
		return true
	}
	for _, re := range f {
		if re.MatchString(e.Name) || re.MatchString(e.UUID) || anyMatch(re, e.Aliases) {
			return true
		}
	}
	return false
}

// named is a listed entity that has a name and a UUID.
type named interface {
	GetName() string
	GetUuid() string
}

// filterRows keeps the rows the command's Filter positional selects (a
// host also by its hypervisor IP).
func filterRows[T named](r *Req, rows []T) []T {
	if len(r.filter) == 0 {
		return rows
	}
	out := rows[:0:0]
	for _, row := range rows {
		e := Entity{Name: row.GetName(), UUID: row.GetUuid()}
		if h, ok := any(row).(interface{ GetHypervisorIp() string }); ok {
			e.Aliases = []string{h.GetHypervisorIp()}
		}
		if r.filter.Match(e) {
			out = append(out, row)
		}
	}
	return out
}

// nameUUID splits acli's name:uuid reference (vm.off dpu-vm-1:<uuid>).
func nameUUID(w string) (name, id string, ok bool) {
	i := strings.LastIndexByte(w, ':')
	if i <= 0 || hasPattern(w) {
		return "", "", false
	}
	if _, err := uuid.Parse(w[i+1:]); err != nil || len(w)-i-1 != 36 {
		return "", "", false
	}
	return w[:i], strings.ToLower(w[i+1:]), true
}

// resolveNameUUID finds the entity a name:uuid reference names: the UUID's,
// when its name agrees (else an entity named w itself, colon and all).
func resolveNameUUID(w, name, id string, kind Kind, live []Entity) (Target, error) {
	var byID *Entity
	for i, e := range live {
		if e.Name == w {
			return Target{Name: e.Name, ID: e.UUID}, nil
		}
		if strings.EqualFold(e.UUID, id) {
			byID = &live[i]
		}
	}
	switch {
	case byID == nil:
		return Target{}, client.Errorf(client.ExitNotFound, "%s %q not found (no %s has UUID %s)", kindSingular(kind), w, kindSingular(kind), id)
	case byID.Name != name && !slices.Contains(byID.Aliases, name):
		return Target{}, client.Errorf(client.ExitNotFound, "%s %q not found: UUID %s is %s %q", kindSingular(kind), w, id, kindSingular(kind), byID.Name)
	}
	return Target{Name: byID.Name, ID: byID.UUID}, nil
}
