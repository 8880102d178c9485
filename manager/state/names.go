package state

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxNameBytes caps entity names (and the references resolved against
// them), so no request makes the manager compare megabytes of text.
const MaxNameBytes = 255

// nameSyntax are the characters the acli grammar gives a meaning to in a
// positional: key=value, comma lists, globs and ranges.
const nameSyntax = "=,*?[]"

// CheckName says why name cannot name an entity of kind, or returns nil.
// The alphabet: letters, marks and digits of any script, spaces inside the
// name, and printable punctuation except the grammar's = , * ? [ ]. Control,
// format (bidi, zero-width), private-use and unassigned characters are
// refused, and so is a name that parses as a UUID, so that resolving a
// reference by UUID or by name is never ambiguous.
func CheckName(kind, name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return fmt.Errorf("%s name is required", kind)
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%s name is %d bytes long; at most %d", kind, len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%s name %q is not valid UTF-8", kind, name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%s name %q begins or ends with a space", kind, name)
	}
	if _, err := uuid.Parse(name); err == nil {
		return fmt.Errorf("%s name %q parses as a UUID; names and UUIDs must not be confused", kind, name)
	}
	for i, r := range name {
		if strings.ContainsRune(nameSyntax, r) {
			return fmt.Errorf("%s name %q contains %q at byte %d; names may not contain any of %s (the grammar's key=value, lists, globs and ranges)",
				kind, name, r, i, strings.Join(strings.Split(nameSyntax, ""), " "))
		}
		if r == ' ' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r) ||
			(unicode.IsGraphic(r) && (unicode.IsPunct(r) || unicode.IsSymbol(r)) && !unicode.Is(unicode.Co, r)) {
			continue
		}
		return fmt.Errorf("%s name %q contains %U at byte %d; names may hold letters, digits, spaces and printable punctuation only (no control, bidi or zero-width characters)",
			kind, name, r, i)
	}
	return nil
}
