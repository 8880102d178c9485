package shell

import (
	"bytes"

	prompt "github.com/elk-language/go-prompt"
)

// lineReader hands go-prompt a pasted (or typed-ahead) chunk one line at a
// time, with each line's Enter as a read of its own. go-prompt takes a lone
// CR or LF as the Enter key but inserts a longer chunk as text, so without
// this a two-line paste would become one command.
type lineReader struct {
	prompt.Reader
	pending []byte
}

func (r *lineReader) Read(p []byte) (int, error) {
	if len(r.pending) == 0 {
		n, err := r.Reader.Read(p)
		if n <= 0 || !bytes.ContainsAny(p[:n], "\r\n") || n == 1 {
			return n, err
		}
		r.pending = append(r.pending[:0], p[:n]...)
	}
	// The text before the next line end, else the line end alone.
	n := bytes.IndexAny(r.pending, "\r\n")
	switch {
	case n < 0:
		n = len(r.pending)
	case n == 0:
		n = 1
	}
	n = copy(p, r.pending[:n])
	r.pending = r.pending[n:]
	return n, nil
}
