package render

import (
	"io"
	"strings"
)

// Stream writes one item of a stream (event.watch) as it arrives, in a
// shape a script can read line by line: JSON is one compact object per
// line (NDJSON) instead of the one-document envelope, which would only come
// at the end; YAML is one document per item; CSV is rows under one header;
// the table format prints d.Text as one line. If the stream then fails, JSON
// ends with an envelope line carrying the error (Finish).
func (p *Printer) Stream(d Doc) error {
	p.BeginStream()
	first := p.items == 0
	p.items++
	p.printed = true
	switch p.Format {
	case JSON, JSONPretty:
		b, err := MarshalJSON(d.Data)
		if err != nil {
			return err
		}
		_, err = p.IO.Out.Write(append(b, '\n'))
		return err
	case YAML:
		if _, err := io.WriteString(p.IO.Out, "---\n"); err != nil {
			return err
		}
		return WriteYAML(p.IO.Out, d.Data)
	case CSV:
		if d.Table == nil {
			return nil
		}
		return WriteCSV(p.IO.Out, d.Table, p.NoHeaders || !first)
	}
	_, err := io.WriteString(p.IO.Out, strings.TrimRight(d.Text, "\n")+"\n")
	return err
}

// BeginStream marks the output as a stream before its first item, so a
// stream that ends with no items prints nothing rather than an envelope.
func (p *Printer) BeginStream() { p.stream = true }
