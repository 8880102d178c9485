package state

import (
	"strings"
	"testing"
)

// Defect 8: one alphabet for names.
func TestCheckName(t *testing.T) {
	ok := []string{"web01", "db-1", "app_2.prod", "wébserver", "データ", "my vm", "a:b", "x/y", "h1@rack(2)", strings.Repeat("a", MaxNameBytes)}
	for _, n := range ok {
		if err := CheckName("vm", n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	bad := map[string]string{
		"":                                     "required",
		"   ":                                  "required",
		"=5":                                   `contains '='`,
		"a,b":                                  `contains ','`,
		"web*":                                 `contains '*'`,
		"web[1]":                               `contains '['`,
		"6f1c2a3e-8b4d-4c5e-9f60-718293a4b5c6": "parses as a UUID",
		"6F1C2A3E8B4D4C5E9F60718293A4B5C6":     "parses as a UUID",
		"ab\u202ecd":                           "U+202E",
		"ab\u200bcd":                           "U+200B",
		"ab\tcd":                               "U+0009",
		"a\u00a0b":                             "U+00A0",
		" lead":                                "begins or ends with a space",
		"\xff":                                 "not valid UTF-8",
		strings.Repeat("a", MaxNameBytes+1):    "at most 255",
	}
	for n, want := range bad {
		err := CheckName("vm", n)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want it to mention %q", n, err, want)
		}
	}
}
