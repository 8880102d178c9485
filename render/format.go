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
	// Wide is the table with every column. Today the default table already
	// shows them all; when the default narrows to acli's own columns, wide
	// keeps today's.
	Wide Format = "wide"
	// Name prints each listed entity's name, one per line.
	Name Format = "name"
	// Value prints table rows without headers, one space between cells.
	Value Format = "value"
)

// Formats lists the formats in the order help shows them.
var Formats = []Format{Table, Wide, JSON, YAML, CSV, Name, Value}

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
	return "", fmt.Errorf("unknown output format %q (valid: table, wide, json, yaml, csv, name, value)", s)
}
