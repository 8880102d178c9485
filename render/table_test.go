package render

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// tablewriterTable is the layout WriteTable keeps, as tablewriter renders
// it: the reference the tests compare with.
func tablewriterTable(w io.Writer, t *TableData, noHeaders bool) error {
	var buf bytes.Buffer
	tb := tablewriter.NewTable(&buf,
		tablewriter.WithRendition(tw.Rendition{
			Borders: tw.BorderNone,
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off, ShowHeader: tw.Off, ShowFooter: tw.Off},
				Lines:      tw.Lines{ShowTop: tw.Off, ShowBottom: tw.Off, ShowHeaderLine: tw.Off, ShowFooterLine: tw.Off},
			},
		}),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithTrimSpace(tw.Off),
	)
	if !noHeaders {
		tb.Header(t.Headers)
	}
	if err := tb.Bulk(t.Rows); err != nil {
		return err
	}
	if err := tb.Render(); err != nil {
		return err
	}
	var out []byte
	for line := range strings.SplitSeq(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		out = append(out, strings.TrimRight(line, " ")+"\n"...)
	}
	_, err := w.Write(out)
	return err
}

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

// WriteTable lays tables out exactly as tablewriter does, wide characters
// and cells of several lines included.
func TestAlignedMatchesTablewriter(t *testing.T) {
	for _, rows := range [][][]string{
		{{"a", "\n6y"}, {"bb", "c"}},
		{{"a", "x\n\n6y"}, {"a\nb", "日本"}},
	} {
		var slow, fast bytes.Buffer
		td := &TableData{Headers: []string{"H1", "H2"}, Rows: rows}
		if err := tablewriterTable(&slow, td, false); err != nil {
			t.Fatal(err)
		}
		if err := WriteTable(&fast, td, false); err != nil || slow.String() != fast.String() {
			t.Fatalf("%q: %v\ntablewriter %q\nWriteTable  %q", rows, err, slow.String(), fast.String())
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		n := rng.IntN(14)
		var sb strings.Builder
		for range n {
			if rng.IntN(30) == 0 {
				sb.WriteString([]string{"é", "…", "日本"}[rng.IntN(3)])
				continue
			}
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
			if err := tablewriterTable(&slow, td, noHeaders); err != nil {
				t.Fatal(err)
			}
			td.Rows = saved
			if err := WriteTable(&fast, td, noHeaders); err != nil {
				t.Fatal(err)
			}
			if slow.String() != fast.String() {
				t.Fatalf("trial %d (noHeaders=%v) differs:\ntablewriter:\n%q\naligned:\n%q", trial, noHeaders, slow.String(), fast.String())
			}
		}
	}
}
