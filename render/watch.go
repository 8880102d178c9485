package render

import (
	"bytes"
	"io"
	"strings"
)

// Watcher prints a listing that is read again on every change (vm.list
// --watch, like kubectl get -w): the first state in full, then only the
// rows that are new or changed, one line each, in every format (NDJSON,
// YAML documents, CSV rows, names, values, table rows aligned with the
// first table). A row that disappears prints nothing.
type Watcher struct {
	p      *Printer
	last   map[string]string // key → the row's cells as last printed
	widths []int             // table columns so far
	rows   int               // rows printed so far
}

// Watch starts a watch on p; its output is a stream (no JSON envelope).
func (p *Printer) Watch() *Watcher {
	p.BeginStream()
	return &Watcher{p: p, last: map[string]string{}}
}

// Update prints what changed: keys[i] identifies items[i] (what JSON and
// YAML print) and t.Rows[i] (what the table prints).
func (w *Watcher) Update(keys []string, items []any, t *TableData) error {
	var changed []int
	for i, k := range keys {
		// A table shows its row; other formats the whole object.
		row := strings.Join(t.Rows[i], "\x1f")
		if !w.p.Human() {
			b, err := MarshalJSON(items[i])
			if err != nil {
				return err
			}
			row = string(b)
		}
		if prev, ok := w.last[k]; ok && prev == row {
			continue
		}
		w.last[k] = row
		changed = append(changed, i)
	}
	first := w.p.items == 0 && w.widths == nil
	if len(changed) == 0 && !first {
		return nil
	}
	p := w.p
	var out bytes.Buffer
	if p.JQ != nil {
		for _, i := range changed {
			if err := writeJQ(&out, p.JQ, items[i]); err != nil {
				return err
			}
		}
		return w.flush(out.Bytes(), len(changed))
	}
	sub := &TableData{Headers: t.Headers, Rows: make([][]string, len(changed))}
	for j, i := range changed {
		sub.Rows[j] = t.Rows[i]
	}
	switch p.Format {
	case JSON, YAML:
		for _, i := range changed {
			if err := p.Stream(Doc{Data: items[i]}); err != nil {
				return err
			}
		}
		return nil
	case Name:
		for _, i := range changed {
			if err := writeNames(&out, items[i]); err != nil {
				return err
			}
		}
	case CSV:
		for _, i := range changed {
			jt, ok := jsonTable(items[i])
			if !ok {
				jt = &TableData{Headers: t.Headers, Rows: [][]string{t.Rows[i]}}
			}
			jt, err := shape(jt, p.Columns, p.SortBy)
			if err != nil {
				return err
			}
			if err := writeJSONCSV(&out, jt, p.NoHeaders || w.rows > 0 || out.Len() > 0); err != nil {
				return err
			}
		}
	case Value:
		st, err := shape(sub, p.Columns, p.SortBy)
		if err != nil {
			return err
		}
		if err := writeValues(&out, st); err != nil {
			return err
		}
	default:
		st, err := shape(sub, p.Columns, p.SortBy)
		if err != nil {
			return err
		}
		w.table(&out, st, first && !p.NoHeaders)
		if p.Color {
			return w.flush(colorize(out.Bytes()), len(changed))
		}
	}
	return w.flush(out.Bytes(), len(changed))
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
		for i, c := range r {
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
