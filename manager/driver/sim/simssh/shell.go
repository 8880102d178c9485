package simssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// The simulated shell: sessions on a simulated machine run no process of
// the manager's machine. A command line is parsed like sh parses it (words,
// quotes, $VAR, ;, &&, ||, |) and each command is looked up in the table of
// commands.go; anything else answers that it is not available on a
// simulated host. Command substitution, redirections, subshells and
// background jobs are refused before anything runs.

// syntaxError is a line the simulated shell refuses to run: bad syntax, or
// a shell feature it does not offer.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

func notAvailable(what string) error {
	return &syntaxError{what + " not available on a simulated host"}
}

// word kinds of the tokenizer.
const (
	tokWord = iota
	tokOp
)

type token struct {
	kind int
	text string
}

// tokenize splits line into words and operators, expanding variables with
// get. Quotes and backslashes work as in sh.
func tokenize(line string, get func(string) string) ([]token, error) {
	var toks []token
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, token{tokWord, cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	op := func(s string) {
		flush()
		toks = append(toks, token{tokOp, s})
	}
	rs := []rune(line)
	// expand reads $NAME, ${NAME}, $?, $$ at rs[i] == '$' and returns the
	// index of its last rune.
	expand := func(i int) (int, error) {
		if i+1 >= len(rs) {
			cur.WriteRune('$')
			return i, nil
		}
		switch c := rs[i+1]; {
		case c == '(':
			return 0, notAvailable("command substitution $(...) is")
		case c == '?' || c == '$':
			cur.WriteString(get(string(c)))
			return i + 1, nil
		case c == '{':
			j := i + 2
			for j < len(rs) && rs[j] != '}' {
				j++
			}
			if j >= len(rs) {
				return 0, &syntaxError{"sh: bad substitution: missing }"}
			}
			name := string(rs[i+2 : j])
			if !isName(name) {
				return 0, notAvailable("parameter expansion ${" + name + "} is")
			}
			cur.WriteString(get(name))
			return j, nil
		case isNameStart(c):
			j := i + 1
			for j < len(rs) && isNameRune(rs[j]) {
				j++
			}
			cur.WriteString(get(string(rs[i+1 : j])))
			return j - 1, nil
		}
		cur.WriteRune('$')
		return i, nil
	}
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\n' || c == ';':
			op(";")
		case c == '#' && !inWord:
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
			i--
		case c == '\\':
			inWord = true
			if i+1 < len(rs) {
				i++
				if rs[i] != '\n' {
					cur.WriteRune(rs[i])
				}
			}
		case c == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return nil, &syntaxError{"sh: unterminated quoted string"}
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case c == '"':
			inWord = true
			i++
			for ; i < len(rs) && rs[i] != '"'; i++ {
				switch rs[i] {
				case '\\':
					if i+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[i+1]) {
						i++
					}
					cur.WriteRune(rs[i])
				case '`':
					return nil, notAvailable("command substitution `...` is")
				case '$':
					j, err := expand(i)
					if err != nil {
						return nil, err
					}
					i = j
				default:
					cur.WriteRune(rs[i])
				}
			}
			if i >= len(rs) {
				return nil, &syntaxError{"sh: unterminated quoted string"}
			}
		case c == '$':
			inWord = true
			j, err := expand(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '`':
			return nil, notAvailable("command substitution `...` is")
		case c == '|':
			if i+1 < len(rs) && rs[i+1] == '|' {
				op("||")
				i++
			} else {
				op("|")
			}
		case c == '&':
			if i+1 < len(rs) && rs[i+1] == '&' {
				op("&&")
				i++
			} else {
				return nil, notAvailable("background jobs (&) are")
			}
		case c == '<' || c == '>':
			return nil, notAvailable("redirection (" + string(c) + ") is")
		case c == '(' || c == ')':
			return nil, notAvailable("subshells ( ... ) are")
		default:
			inWord = true
			cur.WriteRune(c)
		}
	}
	flush()
	return toks, nil
}

func isNameStart(c rune) bool { return c == '_' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isNameRune(c rune) bool  { return isNameStart(c) || c >= '0' && c <= '9' }
func isName(s string) bool {
	for i, c := range s {
		if !isNameRune(c) || (i == 0 && !isNameStart(c)) {
			return false
		}
	}
	return s != ""
}

// shell runs command lines on one simulated machine for one session.
type shell struct {
	m      *node
	vars   map[string]string
	status int
	exited bool
}

// run parses and runs line, returning its exit status. Parsing happens per
// list element, as sh does, so "hostname; cat <x" runs nothing.
func (sh *shell) run(ctx context.Context, line string, stdout, stderr io.Writer) int {
	get := func(name string) string {
		switch name {
		case "?":
			return statusMark // replaced when the command runs: $? changes as the line runs
		case "$":
			return "4242"
		}
		return sh.vars[name]
	}
	toks, err := tokenize(line, get)
	if err != nil {
		fmt.Fprintln(stderr, "sh: "+strings.TrimPrefix(err.Error(), "sh: "))
		return 2
	}
	// Split into pipelines joined by ; && ||.
	var pipe [][]string
	var args []string
	connector := ";"
	endPipeline := func(next string) error {
		if len(args) == 0 {
			if next == ";" && len(pipe) == 0 {
				connector = next
				return nil
			}
			return &syntaxError{fmt.Sprintf("sh: syntax error near %q", next)}
		}
		pipe = append(pipe, args)
		args = nil
		if next == "|" {
			return nil
		}
		run := connector == ";" || (connector == "&&" && sh.status == 0) || (connector == "||" && sh.status != 0)
		if run && !sh.exited {
			sh.status = sh.pipeline(ctx, pipe, stdout, stderr)
		}
		pipe = nil
		connector = next
		return nil
	}
	// Refuse a bad line before running any of it.
	if err := checkSyntax(toks); err != nil {
		fmt.Fprintln(stderr, err.Error())
		return 2
	}
	for _, t := range toks {
		if sh.exited || ctx.Err() != nil {
			break
		}
		if t.kind == tokWord {
			args = append(args, t.text)
			continue
		}
		if err := endPipeline(t.text); err != nil {
			fmt.Fprintln(stderr, err.Error())
			return 2
		}
	}
	if len(args) > 0 && !sh.exited && ctx.Err() == nil {
		_ = endPipeline(";")
	}
	return sh.status
}

// checkSyntax refuses operators with nothing on one side.
func checkSyntax(toks []token) error {
	prevOp := true
	prev := ""
	for i, t := range toks {
		if t.kind == tokWord {
			prevOp = false
			continue
		}
		if prevOp && !(t.text == ";" && (i == 0 || prev == ";")) {
			return &syntaxError{fmt.Sprintf("sh: syntax error near %q", t.text)}
		}
		prevOp, prev = true, t.text
	}
	if prevOp && prev != "" && prev != ";" {
		return &syntaxError{fmt.Sprintf("sh: syntax error: %q at the end", prev)}
	}
	return nil
}

// pipeline runs cmds connected by pipes and returns the last one's status.
func (sh *shell) pipeline(ctx context.Context, cmds [][]string, stdout, stderr io.Writer) int {
	if len(cmds) == 1 {
		return sh.exec(ctx, cmds[0], strings.NewReader(""), stdout, stderr)
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(cmds))
	var in io.Reader = strings.NewReader("")
	for i, args := range cmds {
		out := stdout
		var pw *io.PipeWriter
		var next io.Reader
		if i < len(cmds)-1 {
			var pr *io.PipeReader
			pr, pw = io.Pipe()
			out, next = pw, pr
		}
		wg.Add(1)
		go func(i int, args []string, in io.Reader, out io.Writer, pw *io.PipeWriter) {
			defer wg.Done()
			statuses[i] = sh.exec(ctx, args, in, out, stderr)
			if pw != nil {
				pw.Close()
			}
			if pr, ok := in.(*io.PipeReader); ok {
				pr.Close() // a writer upstream is not left blocked
			}
		}(i, args, in, out, pw)
		in = next
	}
	wg.Wait()
	return statuses[len(statuses)-1]
}

// statusMark stands for $? until the command using it runs.
const statusMark = "\x00?\x00"

// exec runs one simple command from the table.
func (sh *shell) exec(ctx context.Context, args []string, in io.Reader, stdout, stderr io.Writer) int {
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, statusMark, strconv.Itoa(sh.status))
	}
	name := args[0]
	if name == "exit" {
		st := sh.status
		if len(args) > 1 {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				fmt.Fprintf(stderr, "sh: exit: %s: numeric argument required\n", args[1])
				n = 2
			}
			st = n & 0xff
		}
		sh.exited = true
		return st
	}
	c, ok := lookupCommand(name, sh.m.t.Kind)
	if !ok {
		fmt.Fprintf(stderr, "sh: %s: not available on a simulated host (run help for its commands)\n", name)
		return 127
	}
	err := c.Run(&call{ctx: ctx, args: args, in: in, out: stdout, errw: stderr, m: sh.m, sh: sh})
	var ex exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ex):
		return int(ex)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// exitError is a command's exit status without a message of its own.
type exitError int

func (e exitError) Error() string { return "exit status " + strconv.Itoa(int(e)) }
