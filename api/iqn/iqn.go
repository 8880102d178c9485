// Package iqn validates and normalises iSCSI names (RFC 3720) as the acli
// API accepts them, for acli and clusterd alike.
package iqn

import (
	"fmt"
	"strings"
)

// maxNameLen is the longest iSCSI name (RFC 3720 §3.2.6.1).
const maxNameLen = 223

const exampleIQN = "iqn.2024-01.com.example:host1"

// NormalizeName validates an iSCSI initiator or target name and returns it in
// canonical form. Two forms are accepted (RFC 3720 §3.2.6.3):
//
//	iqn.YYYY-MM.reversed.domain[:unique-string]   e.g. iqn.1994-05.com.redhat:client1
//	eui.<16 hex digits>                           e.g. eui.02004567A425678D
//
// iqn names are case-insensitive and returned lower-case; eui names are
// returned with upper-case hex. The error names the problem and, where it
// can, the nearest valid spelling.
func NormalizeName(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("initiator name is empty (expected e.g. %s)", exampleIQN)
	}
	if len(s) > maxNameLen {
		return "", fmt.Errorf("iSCSI name %.40q... is %d bytes long; the limit is %d", s, len(s), maxNameLen)
	}
	low := strings.ToLower(s)
	switch {
	case strings.HasPrefix(low, "iqn."):
		return normalizeIQN(s, low)
	case strings.HasPrefix(low, "eui."):
		return normalizeEUI(s)
	}
	return "", fmt.Errorf("%q is not an iSCSI name: it must start with iqn. or eui. (%s)", s, suggestPrefix(low))
}

// ValidateName reports whether s is a valid iSCSI name (see NormalizeName).
func ValidateName(s string) error {
	_, err := NormalizeName(s)
	return err
}

func normalizeIQN(orig, s string) (string, error) {
	rest := s[len("iqn."):]
	date, rest, ok := strings.Cut(rest, ".")
	if !validDate(date) {
		return "", fmt.Errorf("%q has date %q where YYYY-MM is expected, month 01-12 (e.g. %s)", orig, date, exampleIQN)
	}
	if !ok || rest == "" {
		return "", fmt.Errorf("%q lacks the reversed domain after the date (e.g. iqn.%s.com.example:host1)", orig, date)
	}
	authority, unique, hasUnique := strings.Cut(rest, ":")
	labels := strings.Split(authority, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%q has naming authority %q where a reversed domain is expected (e.g. iqn.%s.com.%s)", orig, authority, date, authority)
	}
	for _, l := range labels {
		if !validLabel(l) {
			return "", fmt.Errorf("%q has domain label %q: labels are non-empty a-z, 0-9 and inner '-' (e.g. iqn.%s.com.example)", orig, l, date)
		}
	}
	if hasUnique {
		if unique == "" {
			return "", fmt.Errorf("%q ends with ':' and no name after it (e.g. iqn.%s.%s:host1)", orig, date, authority)
		}
		if i := strings.IndexFunc(unique, func(r rune) bool { return !nameChar(r) }); i >= 0 {
			bad := []rune(unique[i:])[0]
			return "", fmt.Errorf("%q has character %q, not allowed in iSCSI names (a-z, 0-9, '-', '.', ':'); did you mean %s?",
				orig, bad, "iqn."+date+"."+authority+":"+fixChars(unique))
		}
	}
	return s, nil
}

func normalizeEUI(s string) (string, error) {
	hex := s[len("eui."):]
	valid := len(hex) == 16
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			valid = false
		}
	}
	if !valid {
		return "", fmt.Errorf("%q needs exactly 16 hexadecimal digits after eui., got %q (e.g. eui.02004567A425678D)", s, hex)
	}
	return "eui." + strings.ToUpper(hex), nil
}

func validDate(d string) bool {
	if len(d) != 7 || d[4] != '-' {
		return false
	}
	for i, c := range []byte(d) {
		if i != 4 && (c < '0' || c > '9') {
			return false
		}
	}
	month := (d[5]-'0')*10 + d[6] - '0'
	return month >= 1 && month <= 12
}

func validLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == ':'
}

func fixChars(s string) string {
	return strings.Map(func(r rune) rune {
		if nameChar(r) {
			return r
		}
		return '-'
	}, s)
}

// suggestPrefix proposes a spelling for a name without a valid prefix.
func suggestPrefix(low string) string {
	switch {
	case len(low) > 4 && strings.HasPrefix(low, "iqn") && strings.ContainsRune(":-_ ", rune(low[3])):
		return "did you mean iqn." + low[4:] + "?"
	case len(low) > 4 && strings.HasPrefix(low, "eui") && strings.ContainsRune(":-_ ", rune(low[3])):
		return "did you mean eui." + low[4:] + "?"
	case len(low) > 8 && validDate(low[:7]) && low[7] == '.':
		return "did you mean iqn." + low + "?"
	}
	return "e.g. " + exampleIQN
}
