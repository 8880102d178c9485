package render

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// TableData is a rectangular result: headers in natural case and rows of cells.
type TableData struct {
	Headers []string
	Rows    [][]string
}

// WriteTable writes t borderless, left-aligned, columns two spaces apart,
// without trailing spaces, optionally without the header line.
func WriteTable(w io.Writer, t *TableData, noHeaders bool) error {
	if len(t.Rows) == 0 && noHeaders {
		return nil
	}
	if len(t.Rows) > fastRows && plainCells(t) {
		return writeAligned(w, t, noHeaders)
	}
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
	rows := t.Rows
	if len(rows) == 0 {
		// tablewriter prints nothing for a header-only table; keep the header
		// so scripts and eyes see the columns.
		_, err := io.WriteString(w, strings.Join(t.Headers, "  ")+"\n")
		return err
	}
	if err := tb.Bulk(rows); err != nil {
		return err
	}
	if err := tb.Render(); err != nil {
		return err
	}
	return trimLines(w, buf.Bytes())
}

// trimLines copies b to w without the padding tablewriter leaves at line ends.
func trimLines(w io.Writer, b []byte) error {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		out = append(out, bytes.TrimRight(line, " ")...)
		out = append(out, '\n')
	}
	_, err := w.Write(out)
	return err
}

// WriteCSV writes t as RFC 4180 CSV.
func WriteCSV(w io.Writer, t *TableData, noHeaders bool) error {
	cw := csv.NewWriter(w)
	if !noHeaders {
		if err := cw.Write(t.Headers); err != nil {
			return err
		}
	}
	if err := cw.WriteAll(t.Rows); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// fastRows is where tablewriter hands over to writeAligned: tablewriter
// spends ~30 µs and 8 KB per row, so a 10,000-VM vm.list would take a third
// of a second in layout alone. Below it, tablewriter renders everything.
const fastRows = 500

// plainCells reports whether every cell is one line of printable text,
// the case writeAligned lays out exactly as tablewriter does.
func plainCells(t *TableData) bool {
	check := func(cells []string) bool {
		for _, c := range cells {
			for i := 0; i < len(c); i++ {
				if b := c[i]; b < 0x20 || b == 0x7f || b >= 0x80 {
					return false
				}
			}
		}
		return true
	}
	if !check(t.Headers) {
		return false
	}
	for _, r := range t.Rows {
		if len(r) != len(t.Headers) || !check(r) {
			return false
		}
	}
	return true
}

// writeAligned writes t in the same layout as the tablewriter path
// (columns left-aligned, two spaces apart, no trailing spaces) in one
// pass over ASCII cells.
func writeAligned(w io.Writer, t *TableData, noHeaders bool) error {
	widths := make([]int, len(t.Headers))
	if !noHeaders {
		for i, h := range t.Headers {
			widths[i] = len(h)
		}
	}
	for _, r := range t.Rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	line := make([]byte, 0, 256)
	emit := func(cells []string) {
		line = line[:0]
		for i, c := range cells {
			line = append(line, c...)
			if i < len(cells)-1 {
				for n := widths[i] - len(c) + 2; n > 0; n-- {
					line = append(line, ' ')
				}
			}
		}
		line = bytes.TrimRight(line, " ")
		line = append(line, '\n')
		_, _ = bw.Write(line)
	}
	if !noHeaders {
		emit(t.Headers)
	}
	for _, r := range t.Rows {
		emit(r)
	}
	return bw.Flush()
}
