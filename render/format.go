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
)

// Formats lists the formats in the order help shows them.
var Formats = []Format{Table, JSON, YAML, CSV}

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
	return "", fmt.Errorf("unknown output format %q (valid: table, json, yaml, csv)", s)
}
