// Package completion completes shell lines from the command registry: a
// go-prompt completer for the interactive shell and a cache of live entity
// names that refreshes off the keystroke path. The bash, zsh and fish
// scripts come from the same registry logic through cobra (commands).
package completion

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/acli-dev/acli/commands"
	prompt "github.com/elk-language/go-prompt"
	istrings "github.com/elk-language/go-prompt/strings"
)

// Completer completes acli lines.
type Completer struct {
	Registry *commands.Registry
	// Names supplies live entity names; it must return at once (see Cache).
	Names commands.NameFunc
	// Driver, when set, names clusterd's driver ("" while unknown; see
	// DriverProbe): namespaces only another driver serves are not offered.
	Driver func() string
}

// WordSeparator is the shell's go-prompt word separator. A selected
// suggestion replaces the word back to the last separator (go-prompt does
// so again on the key typed after Tab), so every suggestion is a whole
// word: "host=h1", not "h1", or the key would be lost.
const WordSeparator = " "

// Complete completes the text before the cursor. It returns suggestions,
// each a whole word, and the byte offset in before where that word starts.
func (c *Completer) Complete(before string) ([]commands.Suggestion, int) {
	words, partial, start := split(before)
	if start < 0 {
		return nil, len(before)
	}
	fan, done := commands.CompleteFanout(words, partial)
	if done {
		return fan, start
	}
	sugs, off := c.Registry.CompleteLine(words, partial, c.Names)
	if len(words) == 0 && c.Driver != nil {
		sugs = c.servedOnly(sugs, c.Driver())
	}
	if off > 0 {
		for i := range sugs {
			sugs[i].Text = partial[:off] + sugs[i].Text
		}
	}
	return append(sugs, fan...), start
}

// servedOnly drops command and namespace suggestions that the running
// driver does not serve.
func (c *Completer) servedOnly(sugs []commands.Suggestion, driver string) []commands.Suggestion {
	return slices.DeleteFunc(sugs, func(s commands.Suggestion) bool {
		name, _, _ := strings.Cut(s.Text, ".")
		ns, ok := c.Registry.Namespace(name)
		return ok && ns.Driver != "" && ns.Driver != driver
	})
}

// Prompt adapts Complete to go-prompt.
func (c *Completer) Prompt(d prompt.Document) ([]prompt.Suggest, istrings.RuneNumber, istrings.RuneNumber) {
	before := d.TextBeforeCursor()
	sugs, start := c.Complete(before)
	end := istrings.RuneNumber(utf8.RuneCountInString(before))
	if len(sugs) == 0 {
		return nil, end, end
	}
	out := make([]prompt.Suggest, len(sugs))
	for i, s := range sugs {
		out[i] = prompt.Suggest{Text: s.Text, Description: s.Description}
	}
	return out, istrings.RuneNumber(utf8.RuneCountInString(before[:start])), end
}

// split cuts a line into its complete words and the word under the cursor
// (and that word's byte offset). Quotes group words; a partial word with
// quotes in it gets start -1: completing there would break the quoting.
func split(line string) (words []string, partial string, start int) {
	var cur strings.Builder
	inWord := false
	var quote rune
	wordStart := 0
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			if !inWord {
				inWord, wordStart = true, i
			}
			quote = r
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			if !inWord {
				inWord, wordStart = true, i
			}
			cur.WriteRune(r)
		}
	}
	if !inWord {
		return words, "", len(line)
	}
	if strings.ContainsAny(line[wordStart:], `"'`) {
		return words, cur.String(), -1
	}
	return words, cur.String(), wordStart
}
