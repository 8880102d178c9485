package render

import (
	"encoding/csv"
	"io"
	"strings"
)

// Block is an ordered key/value block; a field with Children is a nested
// section printed below its key, indented.
type Block struct {
	Fields []Field
}

// Field is one line of a Block.
type Field struct {
	Key      string
	Value    string
	Children *Block
}

// Add appends a key and value.
func (b *Block) Add(key, value string) *Block {
	b.Fields = append(b.Fields, Field{Key: key, Value: value})
	return b
}

// Section appends a nested section and returns it for filling.
func (b *Block) Section(key string) *Block {
	c := &Block{}
	b.Fields = append(b.Fields, Field{Key: key, Children: c})
	return c
}

// WriteBlock writes b with values aligned within each section and nested
// sections indented by two spaces. An empty section prints "(none)".
func WriteBlock(w io.Writer, b *Block) error {
	var sb strings.Builder
	writeBlock(&sb, b, 0)
	_, err := io.WriteString(w, sb.String())
	return err
}

func writeBlock(sb *strings.Builder, b *Block, depth int) {
	width := 0
	for _, f := range b.Fields {
		if f.Children == nil && len(f.Key) > width {
			width = len(f.Key)
		}
	}
	indent := strings.Repeat("  ", depth)
	for _, f := range b.Fields {
		sb.WriteString(indent)
		sb.WriteString(f.Key)
		sb.WriteString(":")
		if f.Children != nil {
			if len(f.Children.Fields) == 0 {
				sb.WriteString(" (none)\n")
				continue
			}
			sb.WriteString("\n")
			writeBlock(sb, f.Children, depth+1)
			continue
		}
		if f.Value != "" {
			sb.WriteString(strings.Repeat(" ", width-len(f.Key)+2))
			sb.WriteString(f.Value)
		}
		sb.WriteString("\n")
	}
}

// WriteBlockCSV flattens b to "Key,Value" rows, nested keys joined with ".".
func WriteBlockCSV(w io.Writer, b *Block, noHeaders bool) error {
	cw := csv.NewWriter(w)
	if !noHeaders {
		_ = cw.Write([]string{"Key", "Value"})
	}
	var walk func(prefix string, b *Block)
	walk = func(prefix string, b *Block) {
		for _, f := range b.Fields {
			k := prefix + f.Key
			if f.Children != nil {
				walk(k+".", f.Children)
				continue
			}
			_ = cw.Write([]string{k, f.Value})
		}
	}
	walk("", b)
	cw.Flush()
	return cw.Error()
}

// blockTable is a block as one row, its keys (nested ones dotted) as
// headers, for -o value and -c on a *.get.
func blockTable(b *Block) *TableData {
	t := &TableData{Rows: [][]string{{}}}
	var walk func(prefix string, b *Block)
	walk = func(prefix string, b *Block) {
		for _, f := range b.Fields {
			if f.Children != nil {
				walk(prefix+f.Key+".", f.Children)
				continue
			}
			t.Headers = append(t.Headers, prefix+f.Key)
			t.Rows[0] = append(t.Rows[0], f.Value)
		}
	}
	walk("", b)
	return t
}
