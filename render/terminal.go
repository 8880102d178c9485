package render

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Times on a terminal: commands write UTC RFC 3339 (what machine formats
// and pipes keep); a person reads a table's times as ages ("3m ago") and a
// block's as local time with the age. Event times, which carry
// milliseconds, stay absolute (local, to the millisecond) in tables too:
// their order within a second matters.

// parseTime reads a cell written as UTC RFC 3339; ok is false for any
// other text.
func parseTime(s string) (t time.Time, frac, ok bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[10] != 'T' || !strings.HasSuffix(s, "Z") {
		return time.Time{}, false, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, strings.Contains(s, "."), err == nil
}

// Age says how long ago t was ("45s ago", "3m ago", "2h ago", "5d ago"),
// or how far ahead it is ("in 10m").
func Age(t, now time.Time) string {
	d := now.Sub(t)
	suffix, prefix := " ago", ""
	if d < 0 {
		d, suffix, prefix = -d, "", "in "
	}
	var n int64
	var unit string
	switch {
	case d < time.Minute:
		n, unit = int64(d/time.Second), "s"
	case d < time.Hour:
		n, unit = int64(d/time.Minute), "m"
	case d < 48*time.Hour:
		n, unit = int64(d/time.Hour), "h"
	default:
		n, unit = int64(d/(24*time.Hour)), "d"
	}
	return prefix + strconv.FormatInt(n, 10) + unit + suffix
}

func (p *Printer) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// EventTime writes a time kept to the millisecond (an event's) as the
// output's reader wants it: local on a terminal, as tables show event
// times, else UTC RFC 3339.
func (p *Printer) EventTime(t time.Time) string {
	if p.Terminal {
		return p.local(t).Format(eventLayout)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// eventLayout is an event time on a terminal: local, to the millisecond.
const eventLayout = "2006-01-02 15:04:05.000"

func (p *Printer) local(t time.Time) time.Time {
	if p.Location != nil {
		return t.In(p.Location)
	}
	return t.Local()
}

// terminalTable returns t as a terminal shows it: times as ages (event
// times as local times) and, when the table is wider than the terminal,
// its widest column cut to fit.
func (p *Printer) terminalTable(t *TableData) *TableData {
	if !p.Terminal {
		return t
	}
	now := p.now()
	out := &TableData{Headers: t.Headers, Rows: make([][]string, len(t.Rows))}
	for i, r := range t.Rows {
		row, copied := r, false
		for j, c := range r {
			tm, frac, ok := parseTime(c)
			if !ok {
				continue
			}
			if !copied {
				row, copied = append([]string(nil), r...), true
			}
			if frac {
				row[j] = p.local(tm).Format(eventLayout)
			} else {
				row[j] = Age(tm, now)
			}
		}
		out.Rows[i] = row
	}
	return fitWidth(out, p.Width)
}

// terminalBlock returns b with its times local, followed by their age.
func (p *Printer) terminalBlock(b *Block) *Block {
	if !p.Terminal || b == nil {
		return b
	}
	now := p.now()
	out := &Block{Fields: make([]Field, len(b.Fields))}
	for i, f := range b.Fields {
		if tm, _, ok := parseTime(f.Value); ok {
			f.Value = p.local(tm).Format("2006-01-02 15:04:05 MST") + " (" + Age(tm, now) + ")"
		}
		f.Children = p.terminalBlock(f.Children)
		out.Fields[i] = f
	}
	return out
}

// fitWidth cuts the cells of the widest column (the free text: a message,
// a reason, a description) so the table's lines fit width terminal
// columns; a cut cell ends in "…". UUID columns are never cut, and no
// column is cut below its header or 12 columns.
func fitWidth(t *TableData, width int) *TableData {
	if width <= 0 || len(t.Headers) == 0 {
		return t
	}
	widths := make([]int, len(t.Headers))
	for i, h := range t.Headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	total := 2 * (len(widths) - 1)
	widest := -1
	for i, w := range widths {
		total += w
		if !strings.Contains(strings.ToUpper(t.Headers[i]), "UUID") && (widest < 0 || w > widths[widest]) {
			widest = i
		}
	}
	if total <= width || widest < 0 {
		return t
	}
	keep := max(widths[widest]-(total-width), utf8.RuneCountInString(t.Headers[widest]), 12)
	if keep >= widths[widest] {
		return t
	}
	out := &TableData{Headers: t.Headers, Rows: make([][]string, len(t.Rows))}
	for i, r := range t.Rows {
		out.Rows[i] = r
		if widest < len(r) && utf8.RuneCountInString(r[widest]) > keep {
			row := append([]string(nil), r...)
			row[widest] = string([]rune(r[widest])[:keep-1]) + "…"
			out.Rows[i] = row
		}
	}
	return out
}
