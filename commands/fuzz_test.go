package commands

import (
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
)

// FuzzParse: any line either parses or fails with a one-line usage error
// (exit 2); it never panics. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"vm.create web[01..20] memory=4G num_vcpus=2",
		"vm.list power_state=kOn host=127.20.0.21",
		"vm.on a,b,,c web* x?y",
		"net.create n vlan=4094 mode=trunked",
		"vm.disk_delete v disk_addr=scsi.1",
		"task.list limit=-1",
		"vm.update w memory=1.5T",
		"=x", "vm.", ".", "vm.create =", "vm.create a memory==4G",
	} {
		f.Add(s)
	}
	reg := Default()
	f.Fuzz(func(t *testing.T, line string) {
		inv, err := reg.Parse(strings.Fields(line))
		if err != nil {
			if code := client.ExitCode(err); code != client.ExitUsage {
				t.Fatalf("%q: exit %d for %v", line, code, err)
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("%q: multi-line error %q", line, err)
			}
			return
		}
		if inv.Cmd == nil {
			t.Fatalf("%q: no command", line)
		}
		for _, k := range inv.Cmd.Keys {
			if k.Required && !inv.Set[k.Name] {
				t.Fatalf("%q: required %s missing but parsed", line, k.Name)
			}
		}
	})
}

// FuzzExpand: patterns never panic, never generate beyond the cap, and
// a plain word always expands to itself.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"web[01..20]", "a*b?c[!x]", "[", "w[1..2][3..4]", "x[0..0]", "[]"} {
		f.Add(s)
	}
	live := []Entity{{Name: "web01", UUID: "u1"}, {Name: "a-b.c", UUID: "u2", Aliases: []string{"127.0.0.1"}}}
	f.Fuzz(func(t *testing.T, w string) {
		names, err := ExpandRange(w)
		if err == nil && len(names) > maxRange {
			t.Fatalf("%q made %d names", w, len(names))
		}
		ts, err := Expand([]string{w}, KindVM, func() ([]Entity, error) { return live, nil })
		if err == nil && !hasPattern(w) && (len(ts) != 1 || ts[0].ID != w) {
			t.Fatalf("%q: plain word expanded to %v", w, ts)
		}
		_, _ = Generate([]string{w})
	})
}
