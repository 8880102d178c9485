package manager_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A rule is written once, in manager/state, where commits are checked: a
// function of the manager root whose whole body returns an expression a
// state function already computes is a second copy that drifts (the
// root's placed() lacked state.Placed's nil check). Conditions are
// compared as sets of && operands, parameters by position.
func TestRootRepeatsNoStateExpression(t *testing.T) {
	fset := token.NewFileSet()
	parse := func(dir string) []*ast.FuncDecl {
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		var out []*ast.FuncDecl
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
					out = append(out, fd)
				}
			}
		}
		return out
	}
	// shape prints e with the function's parameters renamed by position.
	shape := func(fd *ast.FuncDecl, e ast.Expr) string {
		params := map[string]string{}
		n := 0
		for _, f := range fd.Type.Params.List {
			for _, name := range f.Names {
				params[name.Name] = "p" + string(rune('0'+n))
				n++
			}
		}
		var buf bytes.Buffer
		if err := printer.Fprint(&buf, token.NewFileSet(), e); err != nil {
			t.Fatal(err)
		}
		// Rename whole identifiers only.
		return renameIdents(buf.String(), params)
	}
	// conds flattens a chain of && into its operands' shapes.
	var conds func(fd *ast.FuncDecl, e ast.Expr) []string
	conds = func(fd *ast.FuncDecl, e ast.Expr) []string {
		if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.LAND {
			return append(conds(fd, b.X), conds(fd, b.Y)...)
		}
		return []string{shape(fd, e)}
	}
	type chain struct {
		fn    string
		conds map[string]bool
	}
	var known []chain
	for _, fd := range parse("state") {
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if b, ok := n.(*ast.BinaryExpr); ok && b.Op == token.LAND {
				c := chain{fn: "state." + fd.Name.Name, conds: map[string]bool{}}
				for _, s := range conds(fd, b) {
					c.conds[s] = true
				}
				known = append(known, c)
				return false // its sub-chains are in it
			}
			return true
		})
	}
	root := parse(".")
	if len(root) < 50 || len(known) < 20 {
		t.Fatalf("read %d root functions and %d state conditions: wrong directory?", len(root), len(known))
	}
	for _, fd := range root {
		if len(fd.Body.List) != 1 {
			continue
		}
		ret, ok := fd.Body.List[0].(*ast.ReturnStmt)
		if !ok || len(ret.Results) != 1 {
			continue
		}
		bin, ok := ret.Results[0].(*ast.BinaryExpr)
		if !ok || bin.Op != token.LAND {
			continue // a rule is a conjunction of conditions
		}
		mine := conds(fd, bin)
		for _, c := range known {
			if !slices.ContainsFunc(mine, func(s string) bool { return !c.conds[s] }) {
				t.Errorf("%s: %s repeats what %s computes; call it", fset.Position(fd.Pos()), fd.Name.Name, c.fn)
				break
			}
		}
	}
}

// renameIdents replaces the identifiers of src named in names.
func renameIdents(src string, names map[string]string) string {
	var out strings.Builder
	word := func(r byte) bool {
		return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	for i := 0; i < len(src); {
		if !word(src[i]) {
			out.WriteByte(src[i])
			i++
			continue
		}
		j := i
		for j < len(src) && word(src[j]) {
			j++
		}
		w := src[i:j]
		// A selector's field (after '.') is not a parameter.
		if to, ok := names[w]; ok && (i == 0 || src[i-1] != '.') {
			w = to
		}
		out.WriteString(w)
		i = j
	}
	return out.String()
}
