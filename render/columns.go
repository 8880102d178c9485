package render

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/itchyny/gojq"
)

// colKey normalizes a column name so "Power state", "power_state" and
// "POWER-STATE" are one column.
func colKey(s string) string {
	return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(strings.ToLower(s))
}

// ColumnError is a -c or --sort-by naming no column: bad input (exit 2).
type ColumnError struct{ Msg string }

func (e *ColumnError) Error() string { return e.Msg }

// columnIndex finds a column by any spelling of its name: exactly, else the
// shortest header ending with it ("name" is "VM name" in vm.list and
// "Hypervisor Name" in host.list).
func columnIndex(headers []string, name string) (int, error) {
	k := colKey(name)
	best := -1
	for i, h := range headers {
		hk := colKey(h)
		if hk == k {
			return i, nil
		}
		if k != "" && strings.HasSuffix(hk, k) && (best < 0 || len(h) < len(headers[best])) {
			best = i
		}
	}
	if best >= 0 {
		return best, nil
	}
	return -1, &ColumnError{fmt.Sprintf("no column %q (columns: %s)", name, strings.Join(headers, ", "))}
}

// shape applies --sort-by and -c/--columns to a table, returning a new one.
func shape(t *TableData, columns []string, sortBy string) (*TableData, error) {
	out := &TableData{Headers: t.Headers, Rows: t.Rows}
	if sortBy != "" {
		i, err := columnIndex(t.Headers, sortBy)
		if err != nil {
			return nil, &ColumnError{"--sort-by: " + err.Error()}
		}
		rows := append([][]string(nil), t.Rows...)
		sort.SliceStable(rows, func(a, b int) bool { return lessCell(rows[a][i], rows[b][i]) })
		out.Rows = rows
	}
	if len(columns) > 0 {
		idx := make([]int, len(columns))
		for j, c := range columns {
			i, err := columnIndex(t.Headers, c)
			if err != nil {
				return nil, &ColumnError{"-c: " + err.Error()}
			}
			idx[j] = i
		}
		sel := &TableData{Headers: make([]string, len(idx))}
		for j, i := range idx {
			sel.Headers[j] = t.Headers[i]
		}
		for _, r := range out.Rows {
			row := make([]string, len(idx))
			for j, i := range idx {
				row[j] = r[i]
			}
			sel.Rows = append(sel.Rows, row)
		}
		out = sel
	}
	return out, nil
}

// lessCell orders numbers (and sizes such as 4G) by value, else text.
func lessCell(a, b string) bool {
	fa, ea := strconv.ParseFloat(strings.TrimRight(a, "KMGTPB"), 64)
	fb, eb := strconv.ParseFloat(strings.TrimRight(b, "KMGTPB"), 64)
	if ea == nil && eb == nil && strings.TrimLeft(a, "0123456789.") == strings.TrimLeft(b, "0123456789.") {
		return fa < fb
	}
	return a < b
}

// objects decodes data's JSON form as a list of objects, each with its keys
// in document order; ok is false when it is not such a list.
func objects(data any) (keys []string, rows []map[string]json.RawMessage, ok bool) {
	b, err := MarshalJSON(data)
	if err != nil {
		return nil, nil, false
	}
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		var one json.RawMessage
		if json.Unmarshal(b, &one) != nil || !bytes.HasPrefix(bytes.TrimSpace(one), []byte("{")) {
			return nil, nil, false
		}
		raw = []json.RawMessage{one}
	}
	seen := map[string]bool{}
	for _, r := range raw {
		m := map[string]json.RawMessage{}
		if json.Unmarshal(r, &m) != nil {
			return nil, nil, false
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		_, _ = dec.Token() // {
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				break
			}
			k, _ := t.(string)
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				break
			}
		}
		rows = append(rows, m)
	}
	return keys, rows, true
}

// jsonTable is data as a table whose headers are its JSON keys: scalars as
// text, nested values as compact JSON.
func jsonTable(data any) (*TableData, bool) {
	keys, objs, ok := objects(data)
	if !ok {
		return nil, false
	}
	t := &TableData{Headers: keys}
	for _, o := range objs {
		row := make([]string, len(keys))
		for i, k := range keys {
			v, ok := o[k]
			if !ok || string(v) == "null" {
				continue
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				row[i] = s
			} else {
				row[i] = string(v)
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, true
}

// writeNames prints the name of each object in data, one per line (-o name).
func writeNames(w io.Writer, data any) error {
	t, ok := jsonTable(data)
	if !ok {
		return fmt.Errorf("-o name: this command's result has no names")
	}
	if len(t.Rows) == 0 {
		return nil // an empty list names nothing
	}
	i, err := columnIndex(t.Headers, "name")
	if err != nil {
		if i, err = columnIndex(t.Headers, "uuid"); err != nil {
			return fmt.Errorf("-o name: this command's result has no names")
		}
	}
	var sb strings.Builder
	for _, r := range t.Rows {
		sb.WriteString(r[i] + "\n")
	}
	_, err = io.WriteString(w, sb.String())
	return err
}

// writeValues prints rows without headers, cells separated by one space
// (openstack's -f value).
func writeValues(w io.Writer, t *TableData) error {
	var sb strings.Builder
	for _, r := range t.Rows {
		sb.WriteString(strings.TrimRight(strings.Join(r, " "), " ") + "\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// writeJSONCSV writes data as CSV whose headers are its JSON keys.
func writeJSONCSV(w io.Writer, t *TableData, noHeaders bool) error {
	cw := csv.NewWriter(w)
	if !noHeaders {
		_ = cw.Write(t.Headers)
	}
	_ = cw.WriteAll(t.Rows)
	cw.Flush()
	return cw.Error()
}

// CompileJQ parses a --jq expression, so a bad one is a usage error before
// anything runs.
func CompileJQ(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("--jq: %v", err)
	}
	c, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("--jq: %v", err)
	}
	return c, nil
}

// writeJQ runs a --jq expression over data's JSON form: strings print raw,
// anything else as compact JSON, one result per line (as gh does).
func writeJQ(w io.Writer, code *gojq.Code, data any) error {
	b, err := MarshalJSON(data)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var sb strings.Builder
	it := code.Run(v)
	for {
		x, ok := it.Next()
		if !ok {
			break
		}
		if err, ok := x.(error); ok {
			return fmt.Errorf("--jq: %v", err)
		}
		if s, ok := x.(string); ok {
			sb.WriteString(s + "\n")
			continue
		}
		out, err := gojq.Marshal(x)
		if err != nil {
			return err
		}
		sb.Write(out)
		sb.WriteByte('\n')
	}
	_, err = io.WriteString(w, sb.String())
	return err
}

// attention matches the states an operator must notice; on a terminal
// they are coloured after the table is laid out, so widths stay exact.
var attention = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\b(kFailed|kAborted|Down|kNodeDown|kCvmDown|EnteredMaintenanceMode|EnteringMaintenanceMode)\b`)
})

// colorize paints attention states: red for failures and down hosts or
// CVMs, yellow for maintenance.
func colorize(b []byte) []byte {
	return attention().ReplaceAllFunc(b, func(m []byte) []byte {
		code := "31" // red
		if bytes.Contains(m, []byte("Maintenance")) {
			code = "33" // yellow
		}
		return []byte("\x1b[" + code + "m" + string(m) + "\x1b[0m")
	})
}
