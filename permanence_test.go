package qmailkit_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// permanenceTests lists, for every non-test Go file of the module under
// root (other modules, testdata and hidden directories left out), the
// places that spell the permanence test themselves: an interface type
// with a method Permanent() bool, as in
//
//	var p interface{ Permanent() bool }
//	if errors.As(err, &p) && p.Permanent() { ... }
//
// Methods named Permanent on the packages' error types are not interface
// types and are not listed.
func permanenceTests(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			it, ok := n.(*ast.InterfaceType)
			if !ok {
				return true
			}
			for _, m := range it.Methods.List {
				ft, ok := m.Type.(*ast.FuncType)
				if !ok || len(m.Names) != 1 || m.Names[0].Name != "Permanent" {
					continue
				}
				if ft.Params.NumFields() == 0 && ft.Results.NumFields() == 1 {
					if id, ok := ft.Results.List[0].Type.(*ast.Ident); ok && id.Name == "bool" {
						rel, _ := filepath.Rel(root, path)
						found = append(found, filepath.ToSlash(rel)+":"+strconv.Itoa(fset.Position(it.Pos()).Line))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestOnePermanenceTest: the module tests an error for permanence in one
// place, qmailkit.IsPermanent in errors.go; every package calls it rather
// than keep a private copy of errors.As with interface{ Permanent() bool },
// so that the convention cannot drift between packages.
func TestOnePermanenceTest(t *testing.T) {
	found := permanenceTests(t, ".")
	if len(found) != 1 || !strings.HasPrefix(found[0], "errors.go:") {
		t.Errorf("interface{ Permanent() bool } spelled out in %q; want only errors.go (call qmailkit.IsPermanent instead)", found)
	}
}

// TestPermanenceTestsFinds shows that the scan of TestOnePermanenceTest
// sees a private copy in each of its spellings, and nothing else.
func TestPermanenceTestsFinds(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a/a.go": "package a\n\nimport \"errors\"\n\nfunc isPermanent(err error) bool {\n\tvar p interface{ Permanent() bool }\n\treturn errors.As(err, &p) && p.Permanent()\n}\n",
		"b/b.go": "package b\n\ntype permanent interface {\n\tPermanent() bool\n}\n",
		// Not copies: an error type's method, a test file, a comment,
		// another module, testdata, an interface with another Permanent.
		"c/c.go":           "package c\n\n// interface{ Permanent() bool }\ntype E struct{}\n\nfunc (E) Permanent() bool { return true }\n\ntype x interface{ Permanent(int) bool }\n",
		"c/c_test.go":      "package c\n\nvar p interface{ Permanent() bool }\n",
		"d/go.mod":         "module d\n",
		"d/d.go":           "package d\n\nvar p interface{ Permanent() bool }\n",
		"c/testdata/t.go":  "package t\n\nvar p interface{ Permanent() bool }\n",
		"c/.hidden/h.go":   "package h\n\nvar p interface{ Permanent() bool }\n",
		"errors.go":        "package root\n\nvar p interface{ Permanent() bool }\n",
		"c/notgo/readme.x": "interface{ Permanent() bool }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(permanenceTests(t, dir), " ")
	if want := "a/a.go:6 b/b.go:3 errors.go:3"; got != want {
		t.Errorf("found %q, want %q", got, want)
	}
}
