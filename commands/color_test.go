package commands

import (
	"testing"

	"github.com/acli-dev/acli/render"
)

// Colour on a terminal only, and never with NO_COLOR set.
func TestColorOnlyOnATerminalWithoutNoColor(t *testing.T) {
	for _, c := range []struct {
		tty     bool
		noColor string
		want    bool
	}{{true, "", true}, {true, "1", false}, {false, "", false}} {
		io, _, _ := render.Test("", c.tty)
		f := &Factory{IO: io, Getenv: func(k string) string {
			if k == "NO_COLOR" {
				return c.noColor
			}
			return ""
		}}
		if got := f.printer(f.DefaultGlobals(), false).Color; got != c.want {
			t.Errorf("tty %v NO_COLOR=%q: colour %v", c.tty, c.noColor, got)
		}
	}
}
