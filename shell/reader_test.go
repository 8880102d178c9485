package shell

import (
	"fmt"
	"testing"

	prompt "github.com/elk-language/go-prompt"
)

// chunks is a prompt.Reader that returns one chunk per Read.
type chunks struct {
	prompt.Reader
	in []string
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, nil
	}
	n := copy(p, c.in[0])
	c.in = c.in[1:]
	return n, nil
}

func TestLineReaderSplitsPastedLines(t *testing.T) {
	r := &lineReader{Reader: &chunks{in: []string{"cluster.get\rvm.list\r", "vm.get web01", "\r", "ab\x1b[A", "x\r\ry"}}}
	var got []string
	buf := make([]byte, 64)
	for range 12 {
		n, _ := r.Read(buf)
		if n == 0 {
			break
		}
		got = append(got, string(buf[:n]))
	}
	want := `["cluster.get" "\r" "vm.list" "\r" "vm.get web01" "\r" "ab\x1b[A" "x" "\r" "\r" "y"]`
	if fmt.Sprintf("%q", got) != want {
		t.Fatalf("reads %q\nwant  %s", got, want)
	}
}
