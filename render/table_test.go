package render

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestWriteTableLayout(t *testing.T) {
	var b bytes.Buffer
	err := WriteTable(&b, &TableData{Headers: []string{"VM name", "VM UUID", "Host"}, Rows: [][]string{{"web01", "u-1", ""}, {"a-much-longer-name", "u-22", "node-1"}}}, false)
	want := "VM name             VM UUID  Host\nweb01               u-1\na-much-longer-name  u-22     node-1\n"
	if err != nil || b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	_ = WriteTable(&b, &TableData{Headers: []string{"A", "B"}}, false)
	if b.String() != "A  B\n" {
		t.Fatalf("empty table: %q", b.String())
	}
	b.Reset()
	_ = WriteTable(&b, &TableData{Headers: []string{"A", "B"}}, true)
	if b.String() != "" {
		t.Fatalf("empty table without headers: %q", b.String())
	}
}

// The fast path for big tables must be byte-identical to tablewriter.
func TestAlignedMatchesTablewriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		n := rng.IntN(14)
		var sb strings.Builder
		for range n {
			sb.WriteByte("abcxyz-._:0123456789 "[rng.IntN(21)])
		}
		return strings.TrimSpace(sb.String())
	}
	for trial := range 50 {
		cols := 1 + rng.IntN(8)
		td := &TableData{}
		for range cols {
			td.Headers = append(td.Headers, fmt.Sprintf("Col %s", word()))
		}
		for range 1 + rng.IntN(30) {
			var r []string
			for range cols {
				r = append(r, word())
			}
			td.Rows = append(td.Rows, r)
		}
		for _, noHeaders := range []bool{false, true} {
			var slow, fast bytes.Buffer
			saved := td.Rows
			if err := WriteTable(&slow, td, noHeaders); err != nil {
				t.Fatal(err)
			}
			td.Rows = saved
			if err := writeAligned(&fast, td, noHeaders); err != nil {
				t.Fatal(err)
			}
			if slow.String() != fast.String() {
				t.Fatalf("trial %d (noHeaders=%v) differs:\ntablewriter:\n%q\naligned:\n%q", trial, noHeaders, slow.String(), fast.String())
			}
		}
	}
}
