package manager_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// A state.DB View inside another deadlocks once a commit waits for the
// write lock between the two (Go's RWMutex lets no new reader in then):
// clusterd's host events hung that way for good. This reads every manager
// package and fails on a View closure that calls a function of its own
// package that takes a View itself.
func TestNoViewInsideAView(t *testing.T) {
	dirs := map[string][]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for dir, files := range dirs {
		// viewers: functions of the package that View, directly or through
		// another of its functions.
		bodies := map[string]*ast.BlockStmt{}
		imports := map[string]bool{}
		for _, f := range files {
			for _, im := range f.Imports {
				name := strings.Trim(im.Path.Value, `"`)
				name = name[strings.LastIndex(name, "/")+1:]
				if im.Name != nil {
					name = im.Name.Name
				}
				imports[name] = true
			}
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
					key := "f:" + fd.Name.Name
					if fd.Recv != nil {
						key = "m:" + fd.Name.Name
					}
					bodies[key] = fd.Body
				}
			}
		}
		viewers := map[string]bool{}
		for changed := true; changed; {
			changed = false
			for name, body := range bodies {
				if viewers[name] {
					continue
				}
				ast.Inspect(body, func(n ast.Node) bool {
					if c, ok := n.(*ast.CallExpr); ok && !viewers[name] {
						if callee := calleeName(c, imports); callee == "m:View" || callee == "m:ViewDurable" || viewers[callee] {
							viewers[name], changed = true, true
						}
					}
					return true
				})
			}
		}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok || len(c.Args) == 0 {
					return true
				}
				if sel, ok := c.Fun.(*ast.SelectorExpr); !ok || (sel.Sel.Name != "View" && sel.Sel.Name != "ViewDurable") {
					return true
				}
				lit, ok := c.Args[len(c.Args)-1].(*ast.FuncLit)
				if !ok {
					return true
				}
				checked++
				ast.Inspect(lit.Body, func(n ast.Node) bool {
					if in, ok := n.(*ast.CallExpr); ok {
						if callee := calleeName(in, imports); viewers[callee] {
							t.Errorf("%s: a View closure calls %s, which takes a View itself (%s)", fset.Position(in.Pos()), callee[2:], dir)
						}
					}
					return true
				})
				return true
			})
		}
	}
	if checked < 20 {
		t.Fatalf("only %d View closures found: the scan is broken", checked)
	}
}

// calleeName is what a call may reach in its own package: "f:name" for a
// function, "m:name" for a method of anything but tx (the view's own
// reads) or an imported package.
func calleeName(c *ast.CallExpr, imports map[string]bool) string {
	switch fn := c.Fun.(type) {
	case *ast.Ident:
		return "f:" + fn.Name
	case *ast.SelectorExpr:
		if x, ok := fn.X.(*ast.Ident); ok && (x.Name == "tx" || imports[x.Name]) {
			return ""
		}
		return "m:" + fn.Sel.Name
	}
	return ""
}
