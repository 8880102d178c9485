// Package commands is the acli command registry, the acli grammar parser and
// dispatch. The registry is the single declaration of every command: the
// parser, the cobra tree, the interactive shell, both completions, help and
// the generated reference all read it.
//
// # Adding a command
//
// Add one *Command to its namespace's list (vm.go for vm.*, and so on) and
// write its run function:
//
//	{
//		Name:    "vm.migrate",
//		Summary: "Live-migrate VMs to a host or to the scheduler's choice",
//		Args:    []Arg{{Name: "vm", Kind: KindVM, Many: true}},
//		Keys: []Key{
//			{Name: "host", Type: TypeRef, Ref: KindHost, Help: "target host"},
//			{Name: "live", Type: TypeBool, Default: "true", Help: "live migration"},
//		},
//		Output: OutputTask,
//		Run:    runVMMigrate,
//	}
//
//	func runVMMigrate(ctx context.Context, r *Req) error {
//		return r.EachTask(ctx, r.Names(0), func(ctx context.Context, c *client.Client, vm string) (*acliv1.Task, error) {
//			return c.Vm.MigrateVm(ctx, &acliv1.MigrateVmRequest{Vm: vm, Host: r.String("host")})
//		})
//	}
//
// Task commands get the wait=true|false key automatically; Destructive
// commands ask for confirmation. A new namespace is one more file with a
// func returning its commands and one line in namespaces() below; a new kind
// of entity (for globs and completion) is one entry in kinds.go.
package commands

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// KeyType is the type of a key=value argument.
type KeyType int

// Key types.
const (
	TypeString KeyType = iota
	TypeInt
	TypeBool
	TypeSize // bytes, with K/M/G/T binary suffixes
	TypeEnum
	TypeList // comma-separated strings (of Ref entities when Ref is set)
	TypeRef  // one entity by name or UUID
)

func (t KeyType) String() string {
	switch t {
	case TypeInt:
		return "int"
	case TypeBool:
		return "bool"
	case TypeSize:
		return "size"
	case TypeEnum:
		return "enum"
	case TypeList:
		return "list"
	case TypeRef:
		return "entity"
	}
	return "string"
}

// Output is the shape a command prints.
type Output int

// Output shapes.
const (
	OutputTable Output = iota // rows with headers (*.list)
	OutputBlock               // indented key/value block (*.get)
	OutputTask                // waits for tasks and shows progress (mutations)
	OutputText                // free text
)

// Arg is a positional argument.
type Arg struct {
	Name string
	Kind Kind
	// Many accepts several entities: comma lists, several words, globs and
	// ranges (expanded against live names).
	Many bool
	// Generate makes ranges produce new names (vm.create web[01..20]) instead
	// of matching existing ones; globs are refused.
	Generate bool
	// Filter makes the words select rows of a listing by name, UUID or
	// alias (globs, ranges, comma lists); nothing is looked up, and a word
	// that matches no row is not an error (NameFilter).
	Filter   bool
	Optional bool
	Help     string
}

// EnumValue is one accepted value of an enum key: the acli spelling (kTrunked)
// and friendly words (trunked) that mean the same.
type EnumValue struct {
	Name    string
	Aliases []string
	Value   int32
}

// Key is a key=value argument.
type Key struct {
	Name     string
	Type     KeyType
	Required bool
	Default  string // shown in help; applied when the key is absent
	Help     string
	Enum     []EnumValue // TypeEnum
	Ref      Kind        // entity kind for TypeRef/TypeList (also the completion source)
	Min, Max int64       // inclusive bounds for TypeInt/TypeSize when Max > Min
	Example  string      // a sample value for help
}

// Command is one acli command.
type Command struct {
	Name        string // "vm.create"
	Summary     string
	Description string
	Args        []Arg
	Keys        []Key
	// Destructive is the verb of the confirmation question ("Delete" asks
	// "Delete 2 VMs? (yes/no)"); empty for commands that need none.
	Destructive string
	Output      Output
	Examples    []string
	// Validate, when set, checks combinations of keys at parse time, so bad
	// lines fail before anything is listed, confirmed or sent.
	Validate func(inv *Invocation) error
	// Watch: the command honours --watch (watchList).
	Watch bool
	Run   RunFunc
}

// Namespace returns "vm" for "vm.create".
func (c *Command) Namespace() string { ns, _, _ := strings.Cut(c.Name, "."); return ns }

// Action returns "create" for "vm.create".
func (c *Command) Action() string { _, a, _ := strings.Cut(c.Name, "."); return a }

// Key returns the named key spec.
func (c *Command) Key(name string) (*Key, bool) {
	for i := range c.Keys {
		if c.Keys[i].Name == name {
			return &c.Keys[i], true
		}
	}
	return nil, false
}

// Namespace groups commands: vm, host, net...
type Namespace struct {
	Name     string
	Summary  string
	Commands func() []*Command
	// Driver, when set, is the only clusterd driver that serves the
	// namespace; the shell's completer hides it from other clusters.
	Driver string
}

// Registry holds every namespace and command, sorted by name. A
// namespace's declarations are built when first needed: a one-shot command
// builds its own namespace only.
type Registry struct {
	Namespaces []*Namespace

	mu       sync.Mutex
	loaded   map[string]bool // namespaces whose commands are in
	commands []*Command
	byName   map[string]*Command
}

// namespaces is the list of every namespace; add a line for a new one.
func namespaces() []*Namespace {
	return []*Namespace{
		{Name: "ads", Summary: "ADS, the dynamic scheduler: on or off cluster-wide", Commands: adsCommands},
		{Name: "audit", Summary: "The audit log: every mutation and every denied call (admin)", Commands: auditCommands},
		{Name: "cluster", Summary: "Cluster-wide configuration", Commands: clusterCommands},
		{Name: "container", Summary: "Storage containers: capacity and use", Commands: containerCommands},
		{Name: "cvm", Summary: "Controller VMs (storage maintenance)", Commands: cvmCommands},
		{Name: "event", Summary: "Cluster events, listed or watched live", Commands: eventCommands},
		{Name: "ha", Summary: "HA: failover of failed hosts' VMs and the memory reserved for it", Commands: haCommands},
		{Name: "host", Summary: "Hypervisor hosts", Commands: hostCommands},
		{Name: "image", Summary: "Disk and ISO images that vDisks are cloned from", Commands: imageCommands},
		{Name: "net", Summary: "VM networks", Commands: netCommands},
		{Name: "snapshot", Summary: "VM snapshots: settings and crash-consistent copies of the vDisks", Commands: snapshotCommands},
		{Name: "sim", Summary: "Fault injection (only when clusterd runs the sim driver)", Commands: simCommands, Driver: "sim"},
		{Name: "token", Summary: "Bearer tokens: issue, list, revoke (admin); who am I", Commands: tokenCommands},
		{Name: "task", Summary: "Tasks (every mutation runs as one)", Commands: taskCommands},
		{Name: "vg", Summary: "Volume groups: vDisks over iSCSI, their attachments and sessions", Commands: vgCommands},
		{Name: "vm", Summary: "Virtual machines, their disks, NICs and power", Commands: vmCommands},
		{Name: "vm_group", Summary: "VM groups and their anti-affinity rules", Commands: vmGroupCommands},
	}
}

var (
	defaultOnce sync.Once
	defaultReg  *Registry
)

// Default returns the registry of every acli command, built on first use.
func Default() *Registry {
	defaultOnce.Do(func() {
		defaultReg = newRegistry(namespaces())
	})
	return defaultReg
}

// waitKey is added to every task command.
var waitKey = Key{Name: "wait", Type: TypeBool, Default: "true", Help: "wait for the task to finish (false: print the task UUID and return)"}

// NewRegistry builds and checks a registry from namespaces.
func NewRegistry(nss ...*Namespace) (*Registry, error) {
	r := newRegistry(nss)
	for _, ns := range r.Namespaces {
		if err := r.load(ns); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// newRegistry holds the namespaces; their commands are built by load.
func newRegistry(nss []*Namespace) *Registry {
	r := &Registry{Namespaces: append([]*Namespace(nil), nss...), loaded: map[string]bool{}, byName: map[string]*Command{}}
	sort.Slice(r.Namespaces, func(i, j int) bool { return r.Namespaces[i].Name < r.Namespaces[j].Name })
	return r
}

// load builds and checks one namespace's commands, once.
func (r *Registry) load(ns *Namespace) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded[ns.Name] {
		return nil
	}
	for _, c := range ns.Commands() {
		if c.Namespace() != ns.Name || c.Action() == "" {
			return fmt.Errorf("command %q is not in namespace %q", c.Name, ns.Name)
		}
		if _, dup := r.byName[c.Name]; dup {
			return fmt.Errorf("command %q declared twice", c.Name)
		}
		if c.Run == nil {
			return fmt.Errorf("command %q has no run function", c.Name)
		}
		if c.Output == OutputTask {
			if _, ok := c.Key("wait"); !ok {
				c.Keys = append(c.Keys, waitKey)
			}
		}
		seen := map[string]bool{}
		for _, k := range c.Keys {
			if seen[k.Name] {
				return fmt.Errorf("command %q declares key %q twice", c.Name, k.Name)
			}
			seen[k.Name] = true
			if k.Type == TypeEnum && len(k.Enum) == 0 {
				return fmt.Errorf("command %q: enum key %q has no values", c.Name, k.Name)
			}
		}
		for i, a := range c.Args {
			if a.Many && i != len(c.Args)-1 {
				return fmt.Errorf("command %q: only the last positional may take many values", c.Name)
			}
		}
		r.byName[c.Name] = c
		r.commands = append(r.commands, c)
	}
	r.loaded[ns.Name] = true
	sort.Slice(r.commands, func(i, j int) bool { return r.commands[i].Name < r.commands[j].Name })
	return nil
}

// mustLoad loads a namespace of the default registry, whose declarations
// the tests check (NewRegistry): an error here is a programming error.
func (r *Registry) mustLoad(ns *Namespace) {
	if err := r.load(ns); err != nil {
		panic(err)
	}
}

// Commands returns every command sorted by name.
func (r *Registry) Commands() []*Command {
	for _, ns := range r.Namespaces {
		r.mustLoad(ns)
	}
	return r.commands
}

// Lookup finds a command by its full name.
func (r *Registry) Lookup(name string) (*Command, bool) {
	nsName, _, _ := strings.Cut(name, ".")
	ns, ok := r.Namespace(nsName)
	if !ok {
		return nil, false
	}
	r.mustLoad(ns)
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.byName[name]
	return c, ok
}

// Namespace finds a namespace by name.
func (r *Registry) Namespace(name string) (*Namespace, bool) {
	for _, ns := range r.Namespaces {
		if ns.Name == name {
			return ns, true
		}
	}
	return nil, false
}

// InNamespace returns the commands of one namespace, sorted.
func (r *Registry) InNamespace(ns string) []*Command {
	var out []*Command
	for _, c := range r.Commands() {
		if c.Namespace() == ns {
			out = append(out, c)
		}
	}
	return out
}

// Find resolves a command name, or explains with a usage error what is
// wrong and what the nearest valid spelling is.
func (r *Registry) Find(name string) (*Command, error) {
	if c, ok := r.Lookup(name); ok {
		return c, nil
	}
	ns, action, hasDot := strings.Cut(name, ".")
	if _, ok := r.Namespace(ns); !ok || !hasDot {
		var names []string
		for _, n := range r.Namespaces {
			names = append(names, n.Name)
		}
		if !hasDot {
			// "vm" alone, or a mistyped full name without the dot.
			if _, ok := r.Namespace(name); ok {
				return nil, usageErrorf("%q is a namespace; name an action, e.g. %s (see: acli help %s)", name, r.InNamespace(name)[0].Name, name)
			}
			all := names
			for _, c := range r.Commands() {
				all = append(all, c.Name)
			}
			return nil, usageErrorf("unknown command %q%s", name, suggest(name, all))
		}
		return nil, usageErrorf("unknown namespace %q%s", ns, suggest(ns, names))
	}
	var actions []string
	for _, c := range r.InNamespace(ns) {
		actions = append(actions, c.Name)
	}
	hint := suggest(name, actions)
	if hint == "" {
		hint = fmt.Sprintf(" (see: acli help %s)", ns)
	}
	return nil, usageErrorf("unknown action %q in namespace %s%s", action, ns, hint)
}

// suggest returns `; did you mean "x"?` for the nearest candidates by edit
// distance, or a list of valid spellings when nothing is near.
func suggest(word string, candidates []string) string {
	best := nearest(word, candidates)
	if len(best) > 0 {
		return fmt.Sprintf("; did you mean %s?", quoteJoin(best))
	}
	if len(candidates) > 0 && len(candidates) <= 12 {
		return fmt.Sprintf(" (valid: %s)", strings.Join(candidates, ", "))
	}
	return ""
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// nearest returns the candidates at the smallest edit distance from word, if
// that distance is small relative to the word; prefixes count as near.
func nearest(word string, candidates []string) []string {
	lw := strings.ToLower(word)
	bestD := -1
	var best []string
	for _, c := range candidates {
		d := editDistance(lw, strings.ToLower(c))
		if strings.HasPrefix(strings.ToLower(c), lw) && lw != "" {
			d = min(d, 1)
		}
		if bestD < 0 || d < bestD {
			bestD, best = d, []string{c}
		} else if d == bestD {
			best = append(best, c)
		}
	}
	limit := max(2, len(word)/3)
	if bestD < 0 || bestD > limit || len(best) > 3 {
		return nil
	}
	return slices.Clip(best)
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and adjacent transpositions each cost one, so
// "vm.lsit" is one edit from "vm.list".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	pp := make([]int, len(rb)+1) // row i-2
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(rb)]
}
