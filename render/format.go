package render

import (
	"fmt"
	"strings"
)

// Format is an output format chosen with -o.
type Format string

// The output formats.
const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
	CSV   Format = "csv"
	// JSONPretty is the JSON envelope indented (acli's -o json-pretty).
	JSONPretty Format = "json-pretty"
	// Wide is the table with every column (the default shows acli's own)
	// and, for a *.get, the readable block instead of protobuf text.
	Wide Format = "wide"
	// Block is the readable key: value block for a *.get (tables as wide).
	Blocks Format = "block"
	// Name prints each listed entity's name, one per line.
	Name Format = "name"
	// Value prints table rows without headers, one space between cells.
	Value Format = "value"
)

// Formats lists the formats in the order help shows them.
var Formats = []Format{Table, Wide, Blocks, JSON, JSONPretty, YAML, CSV, Name, Value}

// ParseFormat accepts a format name in any case.
func ParseFormat(s string) (Format, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, f := range Formats {
		if string(f) == l {
			return f, nil
		}
	}
	if l == "yml" {
		return YAML, nil
	}
	return "", fmt.Errorf("unknown output format %q (valid: table, wide, block, json, json-pretty, yaml, csv, name, value)", s)
}
