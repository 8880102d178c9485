package render

import (
	"errors"
	"strings"
	"testing"
)

// A stream's JSON is one object per line; an error after it adds the
// envelope as a last line; an empty stream prints nothing.
func TestStreamFormats(t *testing.T) {
	item := func(n int) Doc {
		return Doc{Data: map[string]int{"n": n}, Text: "line " + strings.Repeat("x", n),
			Table: &TableData{Headers: []string{"N"}, Rows: [][]string{{strings.Repeat("x", n)}}}}
	}
	for _, c := range []struct {
		format Format
		err    error
		want   string
	}{
		{JSON, nil, "{\"n\":1}\n{\"n\":2}\n"},
		{JSON, errors.New("stream fell behind"), "{\"n\":1}\n{\"n\":2}\n{\"data\": null, \"error\": \"stream fell behind\", \"status\": 5}\n"},
		{Table, nil, "line x\nline xx\n"},
		{CSV, nil, "N\nx\nxx\n"},
		{YAML, nil, "---\nn: 1\n---\nn: 2\n"},
	} {
		io, out, _ := Test("", false)
		p := &Printer{IO: io, Format: c.format}
		p.BeginStream()
		for i := 1; i <= 2; i++ {
			if err := p.Stream(item(i)); err != nil {
				t.Fatal(err)
			}
		}
		status := 0
		if c.err != nil {
			status = 5
		}
		if err := p.Finish(c.err, status, nil); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.format, out.String(), c.want)
		}
	}
	io, out, _ := Test("", false)
	p := &Printer{IO: io, Format: JSON}
	p.BeginStream()
	if err := p.Finish(nil, 0, nil); err != nil || out.Len() != 0 {
		t.Fatalf("empty stream printed %q (%v)", out.String(), err)
	}
}
