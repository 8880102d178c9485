// Package render writes acli output: borderless tables, indented key/value
// blocks, the one-document JSON envelope, YAML, CSV and task progress, for a
// terminal or for a pipe.
package render

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IO is the set of streams a command writes to, with what is known about
// them; tests inject buffers and choose whether they "are" terminals.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	InTTY  bool // stdin is a terminal: prompts and the interactive shell are allowed
	OutTTY bool // stdout is a terminal: progress updates in place
	Width  int  // stdout's terminal columns (0: not a terminal, or unknown)
}

// System returns the process's standard streams.
func System() *IO {
	io := &IO{
		In:     os.Stdin,
		Out:    os.Stdout,
		Err:    os.Stderr,
		InTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		OutTTY: term.IsTerminal(int(os.Stdout.Fd())),
	}
	if io.OutTTY {
		io.Width, _, _ = term.GetSize(int(os.Stdout.Fd()))
	}
	return io
}

// Columns is the terminal's width now (a shell session outlives resizes);
// Width when stdout is not a terminal file.
func (io *IO) Columns() int {
	if f, ok := io.Out.(*os.File); ok && io.OutTTY {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			return w
		}
	}
	return io.Width
}

// Test returns streams over buffers; in is what stdin will read.
func Test(in string, tty bool) (*IO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &IO{In: bytes.NewBufferString(in), Out: &out, Err: &errb, InTTY: tty, OutTTY: tty}, &out, &errb
}
