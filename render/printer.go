package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/itchyny/gojq"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
)

// Doc is one command result in every shape a format may want: Data is the
// full object for json/yaml (proto messages print in their acli enum
// spelling), Table or Block the human view, Text a plain message.
type Doc struct {
	Data  any
	Table *TableData
	Block *Block
	// Proto is a get-style result as acli prints it: protobuf text, one
	// `<name> { ... }` per entity; the table format prints it, -o wide or
	// -o block prints Block instead.
	Proto []Named
	Text  string
	// Report marks Data as a report that stays in the JSON envelope even
	// when the command then fails (a preflight's blockers, say).
	Report bool
}

// Printer writes results and errors in the chosen format. In JSON mode it
// holds the result until Finish so stdout is always exactly one document.
type Printer struct {
	IO        *IO
	Format    Format
	NoHeaders bool
	// Columns (-c) and SortBy (--sort-by) shape tables, CSV and values:
	// columns by any spelling of their header or JSON key.
	Columns []string
	SortBy  string
	// Color paints states that need attention in tables (a terminal
	// without NO_COLOR).
	Color bool
	// JQ, when set, replaces the format: the expression runs over the
	// result's JSON form.
	JQ *gojq.Code
	// Shell: errors are read at the shell's prompt, where commands are
	// typed without the program name ("see: help vm", not "acli help vm").
	Shell bool
	// Terminal: tables and blocks are read by a person on a terminal
	// Width columns wide (0: unknown): times show as ages or local times,
	// and a table wider than the terminal has its widest column cut
	// (terminal.go). Now and Location default to the clock and time.Local.
	Terminal bool
	Width    int
	Now      func() time.Time
	Location *time.Location
	// Stale, when set, says the answer came from a manager's copy of the
	// store that may be behind (no quorum): a warning line on stderr, and
	// a "stale" field in the JSON envelope.
	Stale string

	data    any
	report  bool
	printed bool
	// stream is set by BeginStream: a stream's JSON is its lines, with no
	// envelope after them unless it fails. items counts what it wrote.
	stream bool
	items  int
}

// Human reports whether output is for people (table format): progress
// lines and notes are shown only then.
func (p *Printer) Human() bool {
	return p.JQ == nil && (p.Format == Table || p.Format == Wide || p.Format == Blocks || p.Format == "")
}

// Print outputs d (JSON: remembers it for Finish).
func (p *Printer) Print(d Doc) error {
	p.printed = true
	if p.JQ != nil {
		return writeJQ(p.IO.Out, p.JQ, d.Data)
	}
	shaped := func(t *TableData) (*TableData, error) {
		out, err := shape(t, p.Columns, p.SortBy)
		if err != nil || len(p.Columns) > 0 {
			return out, err
		}
		out.Narrow = t.Narrow
		return p.narrow(out), nil
	}
	switch p.Format {
	case JSON, JSONPretty:
		p.data, p.report = d.Data, d.Report
		return nil
	case YAML:
		return WriteYAML(p.IO.Out, d.Data)
	case Name:
		if d.Proto != nil {
			var sb strings.Builder
			for _, n := range d.Proto {
				sb.WriteString(n.Name + "\n")
			}
			_, err := io.WriteString(p.IO.Out, sb.String())
			return err
		}
		return writeNames(p.IO.Out, d.Data)
	case Value:
		t := d.Table
		if t == nil && d.Block != nil {
			t = blockTable(d.Block)
		}
		if t == nil {
			return writeValues(p.IO.Out, &TableData{Rows: [][]string{{d.Text}}})
		}
		t, err := shaped(t)
		if err != nil {
			return err
		}
		return writeValues(p.IO.Out, t)
	case CSV:
		switch {
		case d.Table != nil:
			// Headers are the JSON keys, so CSV and JSON name fields alike.
			t, ok := jsonTable(d.Data)
			if !ok {
				t = d.Table
			}
			t, err := shaped(t)
			if err != nil {
				return err
			}
			return writeJSONCSV(p.IO.Out, t, p.NoHeaders)
		case d.Block != nil:
			return WriteBlockCSV(p.IO.Out, d.Block, p.NoHeaders)
		case d.Text != "":
			return WriteCSV(p.IO.Out, &TableData{Headers: []string{"Result"}, Rows: [][]string{{d.Text}}}, p.NoHeaders)
		}
		return nil
	default:
		switch {
		case d.Table != nil:
			t, err := shaped(d.Table)
			if err != nil {
				return err
			}
			t = p.terminalTable(t)
			if !p.Color {
				return WriteTable(p.IO.Out, t, p.NoHeaders)
			}
			var buf bytes.Buffer
			if err := WriteTable(&buf, t, p.NoHeaders); err != nil {
				return err
			}
			_, err = p.IO.Out.Write(colorize(buf.Bytes()))
			return err
		case d.Proto != nil && (p.Format == Table || p.Format == ""):
			return WriteProtoText(p.IO.Out, d.Proto)
		case d.Block != nil:
			return WriteBlock(p.IO.Out, p.terminalBlock(d.Block))
		case d.Text != "":
			_, err := io.WriteString(p.IO.Out, strings.TrimRight(d.Text, "\n")+"\n")
			return err
		}
		return nil
	}
}

// narrow cuts a table to acli's own columns for the default format; -o
// wide, CSV and -c see every column.
func (p *Printer) narrow(t *TableData) *TableData {
	if t.Narrow <= 0 || t.Narrow >= len(t.Headers) || len(p.Columns) > 0 || (p.Format != Table && p.Format != Value && p.Format != "") {
		return t
	}
	out := &TableData{Headers: t.Headers[:t.Narrow], Rows: make([][]string, len(t.Rows))}
	for i, r := range t.Rows {
		out.Rows[i] = r[:min(len(r), t.Narrow)]
	}
	return out
}

// Finish ends the command: errors go to stderr in every format (message,
// then each detail on its own line); in JSON mode the single envelope
// {"data","error","status"} goes to stdout.
func (p *Printer) Finish(err error, status int, details []string) error {
	if err != nil {
		var sb strings.Builder
		msg := err.Error()
		if p.Shell {
			msg = shellHints.Replace(msg)
		}
		sb.WriteString("Error: " + msg + "\n")
		for _, d := range details {
			sb.WriteString("  " + d + "\n")
		}
		_, _ = io.WriteString(p.IO.Err, sb.String())
	}
	if p.Stale != "" {
		_, _ = io.WriteString(p.IO.Err, "Warning: "+p.Stale+"\n")
	}
	if p.Format == YAML && p.JQ == nil && err != nil {
		// As with JSON, a script reading YAML gets a document saying what
		// failed, not an empty stdout.
		return WriteYAML(p.IO.Out, map[string]any{"data": nil, "error": err.Error(), "status": status})
	}
	if !p.JSON() || p.JQ != nil || (p.stream && err == nil) {
		return nil
	}
	var env bytes.Buffer
	env.WriteString(`{"data": `)
	if (err != nil && !p.report) || p.data == nil {
		env.WriteString("null")
	} else {
		b, merr := MarshalJSON(p.data)
		if merr != nil {
			return merr
		}
		env.Write(b)
	}
	env.WriteString(`, "error": `)
	if err != nil {
		msg, _ := json.Marshal(err.Error())
		env.Write(msg)
	} else {
		env.WriteString("null")
	}
	if p.Stale != "" {
		msg, _ := json.Marshal(p.Stale)
		env.WriteString(`, "stale": `)
		env.Write(msg)
	}
	fmt.Fprintf(&env, `, "status": %d}`, status)
	out := env.Bytes()
	if p.Format == JSONPretty {
		var ind bytes.Buffer
		if err := json.Indent(&ind, out, "", "  "); err != nil {
			return err
		}
		out = ind.Bytes()
	}
	_, werr := p.IO.Out.Write(append(out, '\n'))
	return werr
}

// JSON reports whether the format is a JSON envelope (json or json-pretty).
func (p *Printer) JSON() bool { return p.Format == JSON || p.Format == JSONPretty }

// shellHints rewrites the one-shot spelling of the commands errors suggest
// to what is typed at the shell's prompt.
var shellHints = strings.NewReplacer("see: acli ", "see: ", "try: acli ", "try: ")

// MarshalJSON encodes v compactly: proto messages (alone, in slices or in
// maps) as FromProto shapes them, so enums read kOn, AcropolisNormal and
// 64-bit integers are numbers; everything else through encoding/json.
func MarshalJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte("null"), nil
	case proto.Message:
		return FromProto(x).MarshalJSON()
	case json.RawMessage:
		return x, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Implements(reflect.TypeFor[proto.Message]()) {
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i := range rv.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			b, err := FromProto(rv.Index(i).Interface().(proto.Message)).MarshalJSON()
			if err != nil {
				return nil, err
			}
			buf.Write(b)
		}
		buf.WriteByte(']')
		return buf.Bytes(), nil
	}
	if rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String {
		// Maps of results (e.g. {"tasks": [...]}) keep proto encoding inside.
		out := make(map[string]json.RawMessage, rv.Len())
		for _, k := range rv.MapKeys() {
			b, err := MarshalJSON(rv.MapIndex(k).Interface())
			if err != nil {
				return nil, err
			}
			out[k.String()] = b
		}
		return json.Marshal(out)
	}
	return json.Marshal(v)
}

// WriteYAML renders v by way of its JSON form, so YAML and JSON agree on
// field names and enum spellings; yaml.v3 keeps the key order.
func WriteYAML(w io.Writer, v any) error {
	b, err := MarshalJSON(v)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle drops the flow style the JSON input gives every node.
func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
		n.Style &^= yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
