package commands

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/acli-dev/acli/client"
)

// Invocation is a parsed command line: the command, its positionals (comma
// lists split, patterns not yet expanded) and its typed key values.
type Invocation struct {
	Cmd    *Command
	Args   [][]string       // per declared Arg
	Values map[string]Value // every key, explicit or defaulted
	Set    map[string]bool  // keys given on the line
}

// Value is a parsed key value; the field matching the key's type is set.
type Value struct {
	Raw  string
	Int  int64 // TypeInt, TypeSize (bytes), TypeEnum (the enum number)
	Bool bool
	List []string
}

func usageErrorf(format string, args ...any) error {
	return client.Errorf(client.ExitUsage, format, args...)
}

// isKeyToken reports whether w is key=value (identifier, then "=").
func isKeyToken(w string) (key, val string, ok bool) {
	k, v, found := strings.Cut(w, "=")
	if !found || k == "" {
		return "", "", false
	}
	for i, r := range k {
		if !(r == '_' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			return "", "", false
		}
	}
	return k, v, true
}

// Parse parses words (words[0] is the command name) against the registry.
func (r *Registry) Parse(words []string) (*Invocation, error) {
	if len(words) == 0 {
		return nil, usageErrorf("no command given (try: acli help)")
	}
	cmd, err := r.Find(words[0])
	if err != nil {
		return nil, err
	}
	return cmd.Parse(words[1:])
}

// Parse parses the arguments after the command name.
func (c *Command) Parse(words []string) (*Invocation, error) {
	inv := &Invocation{Cmd: c, Args: make([][]string, len(c.Args)), Values: map[string]Value{}, Set: map[string]bool{}}
	var positional []string
	for _, w := range words {
		k, v, ok := isKeyToken(w)
		if !ok {
			positional = append(positional, w)
			continue
		}
		spec, found := c.Key(k)
		if !found {
			if len(c.Keys) == 0 {
				return nil, usageErrorf("%s: unknown key %q (%s takes no key=value arguments; see: acli help %s)", c.Name, k, c.Name, c.Name)
			}
			return nil, usageErrorf("%s: unknown key %q%s", c.Name, k, suggest(k, keyNames(c)))
		}
		if inv.Set[k] {
			return nil, usageErrorf("%s: key %q given twice", c.Name, k)
		}
		val, err := spec.parse(v)
		if err != nil {
			return nil, usageErrorf("%s: %v", c.Name, err)
		}
		inv.Values[k] = val
		inv.Set[k] = true
	}
	if err := c.assignPositionals(inv, positional); err != nil {
		return nil, err
	}
	for i := range c.Keys {
		k := &c.Keys[i]
		if inv.Set[k.Name] {
			continue
		}
		if k.Required {
			return nil, usageErrorf("%s: missing required key %s=<%s>%s", c.Name, k.Name, k.Type, k.exampleSuffix())
		}
		if k.Default != "" {
			val, err := k.parse(k.Default)
			if err != nil {
				return nil, fmt.Errorf("%s: bad default for %s: %w", c.Name, k.Name, err)
			}
			inv.Values[k.Name] = val
		}
	}
	if c.Validate != nil {
		if err := c.Validate(inv); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

func (c *Command) assignPositionals(inv *Invocation, words []string) error {
	var items [][]string
	for _, w := range words {
		var parts []string
		for _, p := range strings.Split(w, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			return usageErrorf("%s: empty argument %q", c.Name, w)
		}
		items = append(items, parts)
	}
	if len(c.Args) == 0 && len(items) > 0 {
		return usageErrorf("%s takes no positional arguments, got %q (keys are written key=value)", c.Name, words[0])
	}
	for i, a := range c.Args {
		if i >= len(items) {
			if !a.Optional {
				return usageErrorf("%s: missing %s (usage: %s)", c.Name, a.Name, c.Usage())
			}
			continue
		}
		if a.Many {
			for _, it := range items[i:] {
				inv.Args[i] = append(inv.Args[i], it...)
			}
			items = items[:i+1]
			break
		}
		if len(items[i]) > 1 {
			return usageErrorf("%s takes one %s, got %q", c.Name, a.Name, strings.Join(items[i], ","))
		}
		if hasPattern(items[i][0]) {
			return usageErrorf("%s takes one %s; patterns like %q are not allowed here", c.Name, a.Name, items[i][0])
		}
		inv.Args[i] = items[i]
	}
	if len(items) > len(c.Args) {
		return usageErrorf("%s: unexpected argument %q (usage: %s)", c.Name, words[len(c.Args)], c.Usage())
	}
	return nil
}

func keyNames(c *Command) []string {
	out := make([]string, len(c.Keys))
	for i, k := range c.Keys {
		out[i] = k.Name
	}
	return out
}

func (k *Key) exampleSuffix() string {
	if ex := k.example(); ex != "" {
		return ", e.g. " + k.Name + "=" + ex
	}
	return ""
}

func (k *Key) example() string {
	switch {
	case k.Example != "":
		return k.Example
	case k.Type == TypeEnum:
		return k.Enum[0].Name
	case k.Type == TypeBool:
		return "true"
	case k.Type == TypeSize:
		return "4G"
	}
	return ""
}

// parse validates and converts one value for this key.
func (k *Key) parse(s string) (Value, error) {
	v := Value{Raw: s}
	switch k.Type {
	case TypeInt:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return v, fmt.Errorf("%s=%q is not an integer%s", k.Name, s, k.exampleSuffix())
		}
		if err := k.checkRange(n, strconv.FormatInt); err != nil {
			return v, err
		}
		v.Int = n
	case TypeSize:
		n, err := ParseSize(s)
		if err != nil {
			return v, fmt.Errorf("%s=%q: %v", k.Name, s, err)
		}
		if err := k.checkRange(n, func(n int64, _ int) string { return FormatSize(n) }); err != nil {
			return v, err
		}
		v.Int = n
	case TypeBool:
		b, err := ParseBool(s)
		if err != nil {
			return v, fmt.Errorf("%s=%q is not a boolean (use true/false, yes/no or 1/0)", k.Name, s)
		}
		v.Bool = b
	case TypeEnum:
		e, ok := k.lookupEnum(s)
		if !ok {
			return v, fmt.Errorf("%s=%q is not valid%s (valid: %s)", k.Name, s, k.enumSuggest(s), strings.Join(k.enumNames(), ", "))
		}
		v.Int = int64(e.Value)
		v.Raw = e.Name
	case TypeList:
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				v.List = append(v.List, p)
			}
		}
	case TypeRef, TypeString:
		if k.Required && s == "" {
			return v, fmt.Errorf("%s= must not be empty%s", k.Name, k.exampleSuffix())
		}
	}
	return v, nil
}

func (k *Key) checkRange(n int64, format func(int64, int) string) error {
	if k.Max <= k.Min {
		return nil
	}
	if n < k.Min || n > k.Max {
		return fmt.Errorf("%s=%s is out of range (%s to %s)", k.Name, format(n, 10), format(k.Min, 10), format(k.Max, 10))
	}
	return nil
}

// normEnum folds case, '_' and '-' and acli's leading k, so kAcpiShutdown,
// acpi_shutdown and AcpiShutdown are one spelling.
func normEnum(s string) string {
	if len(s) > 1 && s[0] == 'k' && unicode.IsUpper(rune(s[1])) {
		s = s[1:]
	}
	s = strings.ToLower(s)
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(s)
}

func (k *Key) lookupEnum(s string) (EnumValue, bool) {
	n := normEnum(strings.TrimSpace(s))
	for _, e := range k.Enum {
		if normEnum(e.Name) == n {
			return e, true
		}
		for _, a := range e.Aliases {
			if normEnum(a) == n {
				return e, true
			}
		}
	}
	return EnumValue{}, false
}

func (k *Key) enumNames() []string {
	out := make([]string, len(k.Enum))
	for i, e := range k.Enum {
		out[i] = e.Name
	}
	return out
}

func (k *Key) enumSuggest(s string) string {
	var cands []string
	for _, e := range k.Enum {
		cands = append(cands, e.Name)
		cands = append(cands, e.Aliases...)
	}
	if best := nearest(s, cands); len(best) > 0 {
		return fmt.Sprintf("; did you mean %s?", quoteJoin(best))
	}
	return ""
}

// ParseBool accepts true/false, yes/no, y/n, on/off and 1/0 in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "y", "1", "on":
		return true, nil
	case "false", "no", "n", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

var sizeUnits = []struct {
	suffixes []string
	mult     float64
}{
	{[]string{"t", "tb", "ti", "tib"}, 1 << 40},
	{[]string{"g", "gb", "gi", "gib"}, 1 << 30},
	{[]string{"m", "mb", "mi", "mib"}, 1 << 20},
	{[]string{"k", "kb", "ki", "kib"}, 1 << 10},
	{[]string{"b"}, 1},
}

// ParseSize parses 512M, 4G, 1.5T, 100K (binary multiples, any case). A
// bare number other than 0 is refused: memory=4096 is ambiguous.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "0" {
		return 0, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.') })
	if i <= 0 {
		if i < 0 && t != "" {
			return 0, fmt.Errorf("add a unit: %sM or %sG (K/M/G/T, binary)", t, t)
		}
		return 0, fmt.Errorf("not a size (use a number and K/M/G/T, e.g. 512M or 4G)")
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("not a size (use a number and K/M/G/T, e.g. 512M or 4G)")
	}
	for _, u := range sizeUnits {
		for _, suf := range u.suffixes {
			if unit == suf {
				b := f * u.mult
				if b > math.MaxInt64/2 {
					return 0, fmt.Errorf("size too large")
				}
				return int64(math.Round(b)), nil
			}
		}
	}
	return 0, fmt.Errorf("unknown unit %q (use K, M, G or T, e.g. 512M or 4G)", t[i:])
}

// FormatSize prints bytes the way ParseSize reads them, exactly when possible.
func FormatSize(n int64) string {
	units := []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}}
	if n == 0 {
		return "0"
	}
	for _, u := range units {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	for _, u := range units {
		if n >= u.m {
			return strconv.FormatFloat(float64(n)/float64(u.m), 'f', 1, 64) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

func itoa(n int) string { return strconv.Itoa(n) }
