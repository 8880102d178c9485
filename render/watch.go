package render

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// Watcher prints a listing that is read again on every change (vm.list
// --watch, like kubectl get -w): the first state in full, then only the
// rows that are new or changed, one line each, in every format (NDJSON,
// YAML documents, CSV rows, names, values, table rows aligned with the
// first table). A row that disappears prints once more, its last state
// marked with why (kubectl get -w prints deletions too).
type Watcher struct {
	p      *Printer
	last   map[string]watched // key → the row as last printed
	order  []string           // keys in the order first printed
	widths []int              // table columns so far
	rows   int                // rows printed so far
}

type watched struct {
	row   string   // what is compared: the table cells or the JSON
	cells []string // the table row
	item  any
	gone  string // why a row printed before is missing now
}

// Watch starts a watch on p; its output is a stream (no JSON envelope).
func (p *Printer) Watch() *Watcher {
	p.BeginStream()
	return &Watcher{p: p, last: map[string]watched{}}
}

// Update prints what changed: keys[i] identifies items[i] (what JSON and
// YAML print) and t.Rows[i] (what the table prints). A row printed before
// and missing now prints last, with gone(key) saying why: "deleted", or
// "filtered out" when it no longer matches the command's filters.
func (w *Watcher) Update(keys []string, items []any, t *TableData, gone func(key string) string) error {
	var rows []watched
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		seen[k] = true
		// A table shows its row; other formats the whole object.
		row := strings.Join(t.Rows[i], "\x1f")
		if !w.p.Human() {
			b, err := MarshalJSON(items[i])
			if err != nil {
				return err
			}
			row = string(b)
		}
		prev, ok := w.last[k]
		if ok && prev.row == row {
			continue
		}
		if !ok {
			w.order = append(w.order, k)
		}
		w.last[k] = watched{row: row, cells: t.Rows[i], item: items[i]}
		rows = append(rows, w.last[k])
	}
	kept := w.order[:0]
	for _, k := range w.order {
		if seen[k] {
			kept = append(kept, k)
			continue
		}
		r := w.last[k]
		delete(w.last, k)
		r.gone = gone(k)
		rows = append(rows, r)
	}
	w.order = kept
	first := w.p.items == 0 && w.widths == nil
	if len(rows) == 0 && !first {
		return nil
	}
	return w.print(t.Headers, rows, first)
}

func (w *Watcher) print(headers []string, rows []watched, first bool) error {
	p := w.p
	var out bytes.Buffer
	for _, r := range rows {
		var err error
		switch {
		case p.JQ != nil:
			err = writeJQ(&out, p.JQ, markGone(r.item, r.gone))
		case p.Format == JSON || p.Format == YAML:
			err = p.Stream(Doc{Data: markGone(r.item, r.gone)})
		case p.Format == Name:
			err = writeNames(&out, r.item)
		case p.Format == CSV:
			jt, ok := jsonTable(r.item)
			if !ok {
				jt = &TableData{Headers: headers, Rows: [][]string{r.cells}}
			}
			if jt, err = shapeGone(jt, p, r.gone); err == nil {
				err = writeJSONCSV(&out, jt, p.NoHeaders || w.rows > 0 || out.Len() > 0)
			}
		}
		if err != nil {
			return err
		}
	}
	switch {
	case p.JQ != nil || p.Format == Name || p.Format == CSV:
	case p.Format == JSON || p.Format == YAML:
		return nil // Stream wrote them
	default:
		// Rows that changed are shaped together (--sort-by orders them),
		// rows gone follow, each with its reason in a last cell.
		var now, gone [][]string
		for _, r := range rows {
			if r.gone == "" {
				now = append(now, r.cells)
			} else {
				gone = append(gone, r.cells)
			}
		}
		st, err := shape(&TableData{Headers: headers, Rows: now}, p.Columns, p.SortBy)
		if err != nil {
			return err
		}
		st.Rows = append([][]string(nil), st.Rows...)
		for i, r := range rows[len(now):] {
			g, err := shapeGone(&TableData{Headers: headers, Rows: gone[i : i+1]}, p, r.gone)
			if err != nil {
				return err
			}
			st.Rows = append(st.Rows, g.Rows[0])
		}
		if p.Format == Value {
			err = writeValues(&out, st)
		} else {
			w.table(&out, st, first && !p.NoHeaders)
		}
		if err != nil {
			return err
		}
		if p.Color {
			return w.flush(colorize(out.Bytes()), len(rows))
		}
	}
	return w.flush(out.Bytes(), len(rows))
}

// shapeGone selects and orders t's columns as the listing does and, for a
// row gone, adds the reason as a last cell: "(deleted)" in a table, the
// bare word in values and CSV.
func shapeGone(t *TableData, p *Printer, gone string) (*TableData, error) {
	st, err := shape(t, p.Columns, p.SortBy)
	if err != nil || gone == "" {
		return st, err
	}
	if p.Human() {
		gone = "(" + gone + ")"
	}
	rows := make([][]string, len(st.Rows))
	for i, r := range st.Rows {
		rows[i] = append(r[:len(r):len(r)], gone)
	}
	return &TableData{Headers: st.Headers, Rows: rows}, nil
}

// markGone adds "removed": why to an entity's JSON object, so a reader of
// the stream tells its last state from a change.
func markGone(item any, why string) any {
	if why == "" {
		return item
	}
	b, err := MarshalJSON(item)
	if err != nil || len(b) < 2 || b[0] != '{' {
		return item
	}
	mark := `{"removed":"` + why + `"`
	if string(b) != "{}" {
		mark += ","
	}
	return json.RawMessage(mark + string(b[1:]))
}

// table lays rows out in the columns of the rows before them, widening a
// column only when a cell needs it (earlier lines stay as they were).
func (w *Watcher) table(out *bytes.Buffer, t *TableData, headers bool) {
	if w.widths == nil {
		w.widths = make([]int, len(t.Headers))
		if headers {
			for i, h := range t.Headers {
				w.widths[i] = len(h)
			}
		}
	}
	for _, r := range t.Rows {
		for i, c := range r[:min(len(r), len(w.widths))] { // not a reason cell
			w.widths[i] = max(w.widths[i], len(c))
		}
	}
	emit := func(cells []string) {
		var line strings.Builder
		for i, c := range cells {
			line.WriteString(c)
			if i < len(cells)-1 {
				line.WriteString(strings.Repeat(" ", w.widths[i]-len(c)+2))
			}
		}
		out.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	if headers {
		emit(t.Headers)
	}
	for _, r := range t.Rows {
		emit(r)
	}
}

func (w *Watcher) flush(b []byte, rows int) error {
	w.rows += rows
	w.p.items += rows
	w.p.printed = true
	_, err := io.Copy(w.p.IO.Out, bytes.NewReader(b))
	return err
}
