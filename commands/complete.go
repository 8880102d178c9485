package commands

import (
	"slices"
	"sort"
	"strings"
)

// Suggestion is one completion candidate: Text replaces the partial word
// from the returned offset on.
type Suggestion struct {
	Text        string
	Description string
}

// NameFunc returns the live entities of a kind, or nil when unknown.
type NameFunc func(Kind) []Entity

// maxNameSuggestions bounds entity-name candidates per keystroke.
const maxNameSuggestions = 200

// CompleteLine completes the word being typed on a shell line: words are
// the complete words before it (words[0] the command), partial the word
// under the cursor. Suggestions replace partial[offset:].
func (r *Registry) CompleteLine(words []string, partial string, names NameFunc) ([]Suggestion, int) {
	if len(words) == 0 {
		return r.completeCommand(partial), 0
	}
	c, ok := r.Lookup(words[0])
	if !ok {
		return nil, 0
	}
	return c.Complete(words[1:], partial, names)
}

// completeCommand offers namespaces ("vm.") until a dot is typed, then the
// namespace's commands with their summaries.
func (r *Registry) completeCommand(partial string) []Suggestion {
	var out []Suggestion
	if !strings.Contains(partial, ".") {
		for _, ns := range r.Namespaces {
			if strings.HasPrefix(ns.Name, partial) {
				out = append(out, Suggestion{Text: ns.Name + ".", Description: ns.Summary})
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	for _, c := range r.Commands() {
		if strings.HasPrefix(c.Name, partial) {
			out = append(out, Suggestion{Text: c.Name, Description: c.Summary})
		}
	}
	return out
}

// Complete completes the arguments of c: enum values, booleans and entity
// names after "key=", else the keys not yet given and the positional's
// live entity names.
func (c *Command) Complete(args []string, partial string, names NameFunc) ([]Suggestion, int) {
	used := map[string]bool{}
	npos := 0
	for _, a := range args {
		if k, _, ok := isKeyToken(a); ok {
			used[k] = true
		} else {
			npos++
		}
	}
	if k, v, ok := isKeyToken(partial); ok {
		spec, found := c.Key(k)
		if !found {
			return nil, 0
		}
		off := len(k) + 1
		return spec.completeValue(v, names), off
	}
	var out []Suggestion
	// Entity names for a positional still expected (or a Many one).
	if len(c.Args) > 0 {
		i := min(npos, len(c.Args)-1)
		a := c.Args[i]
		if (npos < len(c.Args) || a.Many) && !a.Generate && names != nil {
			prefix, last := splitLast(partial)
			for _, s := range entitySuggestions(names(a.Kind), last) {
				s.Text = prefix + s.Text
				out = append(out, s)
			}
		}
	}
	if !strings.ContainsAny(partial, ",*?[") {
		for _, k := range c.Keys {
			if used[k.Name] || !strings.HasPrefix(k.Name, partial) {
				continue
			}
			out = append(out, Suggestion{Text: k.Name + "=", Description: k.describe()})
		}
	}
	return out, 0
}

// splitLast splits "a,b,c" into "a,b," and "c" so a comma list completes
// its last element.
func splitLast(s string) (string, string) {
	i := strings.LastIndexByte(s, ',')
	return s[:i+1], s[i+1:]
}

func (k *Key) completeValue(v string, names NameFunc) []Suggestion {
	var out []Suggestion
	switch k.Type {
	case TypeEnum:
		nv := normEnum(v)
		for _, e := range k.Enum {
			match := strings.HasPrefix(e.Name, v) || strings.HasPrefix(normEnum(e.Name), nv)
			for _, a := range e.Aliases {
				match = match || strings.HasPrefix(normEnum(a), nv)
			}
			if match {
				out = append(out, Suggestion{Text: e.Name, Description: strings.Join(e.Aliases, ", ")})
			}
		}
	case TypeBool:
		for _, b := range []string{"true", "false"} {
			if strings.HasPrefix(b, strings.ToLower(v)) {
				out = append(out, Suggestion{Text: b})
			}
		}
	case TypeRef, TypeList:
		if k.Ref == "" || names == nil {
			return nil
		}
		prefix, last := "", v
		if k.Type == TypeList {
			prefix, last = splitLast(v)
		}
		for _, s := range entitySuggestions(names(k.Ref), last) {
			s.Text = prefix + s.Text
			out = append(out, s)
		}
	}
	return out
}

// SortEntities orders entities by name, as entitySuggestions wants them;
// caches call it once per fetch, off the keystroke path.
func SortEntities(es []Entity) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Name < es[j].Name })
}

// entitySuggestions returns names (then UUIDs and IPs) starting with
// prefix, in name order, capped. With entities already sorted by name it
// is one scan that stops at the cap: fast enough per keystroke for tens of
// thousands of entities.
func entitySuggestions(es []Entity, prefix string) []Suggestion {
	if !sort.SliceIsSorted(es, func(i, j int) bool { return es[i].Name < es[j].Name }) {
		es = slices.Clone(es)
		SortEntities(es)
	}
	var out []Suggestion
	last := ""
	for _, e := range es {
		if len(out) >= maxNameSuggestions {
			return out
		}
		if e.Name == "" || e.Name == last || !strings.HasPrefix(e.Name, prefix) {
			continue
		}
		last = e.Name
		out = append(out, Suggestion{Text: e.Name, Description: e.UUID})
	}
	if prefix == "" {
		return out
	}
	// UUIDs and aliases only once something is typed: listing them all
	// for an empty word would drown the names.
	for _, e := range es {
		if len(out) >= maxNameSuggestions {
			break
		}
		if strings.HasPrefix(e.UUID, prefix) {
			out = append(out, Suggestion{Text: e.UUID, Description: e.Name})
		}
		for _, a := range e.Aliases {
			if a != "" && strings.HasPrefix(a, prefix) {
				out = append(out, Suggestion{Text: a, Description: e.Name})
			}
		}
	}
	return out
}

// describe is the one-line description completion shows for a key.
func (k *Key) describe() string {
	var sb strings.Builder
	sb.WriteString(k.Type.String())
	if k.Required {
		sb.WriteString(", required")
	} else if k.Default != "" {
		sb.WriteString(", default " + k.Default)
	}
	if k.Help != "" {
		sb.WriteString(": " + k.Help)
	}
	return sb.String()
}
