package render

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
	"strings"

	"github.com/mattn/go-runewidth"
)

// TableData is a rectangular result: headers in natural case and rows of cells.
type TableData struct {
	Headers []string
	Rows    [][]string
	// Narrow, when set, is how many leading columns are acli's own: the
	// default table shows only those, -o wide every column.
	Narrow int
}

// WriteTable writes t borderless, left-aligned, columns two spaces apart,
// without trailing spaces, optionally without the header line. A cell of
// several lines makes its row that tall. (This is tablewriter's layout,
// which the tests hold it to, without its start-up cost: its width tables
// took a fifth of acli's initialisation.)
func WriteTable(w io.Writer, t *TableData, noHeaders bool) error {
	if len(t.Rows) == 0 && noHeaders {
		return nil
	}
	if len(t.Rows) == 0 {
		// A header-only table still shows the columns, to scripts and eyes.
		_, err := io.WriteString(w, strings.Join(t.Headers, "  ")+"\n")
		return err
	}
	return writeAligned(w, t, noHeaders)
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

// cellWidth is the terminal columns one line of a cell takes.
func cellWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return runewidth.StringWidth(s)
		}
	}
	return len(s)
}

// writeAligned lays t out in one pass: column widths, then each row, a
// multi-line cell giving its row one line per cell line.
func writeAligned(w io.Writer, t *TableData, noHeaders bool) error {
	cols := len(t.Headers)
	for _, r := range t.Rows {
		cols = max(cols, len(r))
	}
	widths := make([]int, cols)
	measure := func(cells []string) {
		for i, c := range cells {
			for line := range strings.SplitSeq(c, "\n") {
				widths[i] = max(widths[i], cellWidth(line))
			}
		}
	}
	if !noHeaders {
		measure(t.Headers)
	}
	for _, r := range t.Rows {
		measure(r)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	line := make([]byte, 0, 256)
	emitLine := func(cells []string) {
		line = line[:0]
		for i, c := range cells {
			line = append(line, c...)
			if i < len(cells)-1 {
				for n := widths[i] - cellWidth(c) + 2; n > 0; n-- {
					line = append(line, ' ')
				}
			}
		}
		line = bytes.TrimRight(line, " ")
		line = append(line, '\n')
		_, _ = bw.Write(line)
	}
	emit := func(cells []string) {
		if len(cells) < cols {
			cells = append(append([]string(nil), cells...), make([]string, cols-len(cells))...)
		}
		tall := false
		for _, c := range cells {
			tall = tall || strings.IndexByte(c, '\n') >= 0
		}
		if !tall {
			emitLine(cells)
			return
		}
		split := make([][]string, len(cells))
		height := 0
		for i, c := range cells {
			// Blank lines inside a cell are dropped, as tablewriter does.
			for l := range strings.SplitSeq(c, "\n") {
				if l != "" || len(split[i]) == 0 {
					split[i] = append(split[i], l)
				}
			}
			height = max(height, len(split[i]))
		}
		part := make([]string, len(cells))
		for l := range height {
			for i := range cells {
				part[i] = ""
				if l < len(split[i]) {
					part[i] = split[i][l]
				}
			}
			emitLine(part)
		}
	}
	if !noHeaders {
		emit(t.Headers)
	}
	for _, r := range t.Rows {
		emit(r)
	}
	return bw.Flush()
}
