package commands

import (
	"testing"

	"github.com/acli-dev/acli/render"
)

// BenchmarkStartupTree: the cobra tree a one-shot command builds before it
// runs (its own leaf only), against the whole tree help and completion use.
func BenchmarkStartupTree(b *testing.B) {
	io, _, _ := render.Test("", false)
	f := &Factory{IO: io, Registry: Default(), Getenv: func(string) string { return "" }}
	for _, bc := range []struct {
		name string
		args []string
	}{{"one-shot", []string{"-o", "json", "host.list"}}, {"whole", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				g := f.DefaultGlobals()
				_ = f.newRoot(&g, &runState{}, false, bc.args)
			}
		})
	}
}

// BenchmarkStartupRegistry: every declaration built and checked.
func BenchmarkStartupRegistry(b *testing.B) {
	for b.Loop() {
		if _, err := NewRegistry(namespaces()...); err != nil {
			b.Fatal(err)
		}
	}
}

// Every declaration passes the registry's checks (the default registry
// builds namespaces lazily and panics on a bad one).
func TestDeclarations(t *testing.T) {
	r, err := NewRegistry(namespaces()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Commands()) != len(Default().Commands()) {
		t.Fatalf("%d commands, default registry %d", len(r.Commands()), len(Default().Commands()))
	}
}

// BenchmarkStartupLookup: finding a one-shot command in a fresh default
// registry builds its namespace only.
func BenchmarkStartupLookup(b *testing.B) {
	for b.Loop() {
		if _, ok := newRegistry(namespaces()).Lookup("host.list"); !ok {
			b.Fatal("host.list not found")
		}
	}
}
