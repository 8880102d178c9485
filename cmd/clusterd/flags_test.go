package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Flags are GNU-style (--listen, --data-dir=DIR) as in the docs and acli;
// the single-dash spellings of earlier releases still work.
func TestFlagSpellings(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"--version"}, 0, "clusterd 0.1.0-dev\n", ""},
		{[]string{"-version"}, 0, "clusterd 0.1.0-dev\n", ""},
		{[]string{"-data-dir=/nonexistent", "--lisen", "x"}, 2, "", "clusterd: unknown flag --lisen (did you mean --listen?)\n"},
		{[]string{"-sim", "0", "-data-dir", "d", "--sim-speed=0"}, 2, "", "clusterd: --sim-speed 0 must be positive, e.g. 1 or 1000\n"},
		{[]string{"--data-dir", "d", "extra"}, 2, "", "clusterd: unexpected argument \"extra\"; clusterd takes only flags (see --help)\n"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, &out, &errb)
		if code != c.code || out.String() != c.out || errb.String() != c.err {
			t.Errorf("%v: exit %d %q %q, want %d %q %q", c.args, code, out.String(), errb.String(), c.code, c.out, c.err)
		}
	}
}

// Every flag clusterd takes is documented in clusterd(1)'s source.
func TestManPageNamesEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, io.Discard); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	doc, err := os.ReadFile("../../docs/clusterd.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := regexp.MustCompile(`(?m)^\s+--([a-z-]+)`).FindAllStringSubmatch(out.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("--help lists %d flags:\n%s", len(flags), out.String())
	}
	for _, f := range flags {
		if !strings.Contains(string(doc), "`--"+f[1]) {
			t.Errorf("docs/clusterd.md does not document --%s (then run make docs)", f[1])
		}
	}
}
