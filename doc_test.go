package qmailkit

import (
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docRefs finds, in documentation text, what points to a file outside the
// module: the internal behaviour specs ("spec §7", "maildir.md §3",
// "spec/queue.md"), the directory beside the repository ("../shared/...",
// "/work/..."), and any NAME.md other than the module's own.
type docRefs struct {
	md *regexp.Regexp
	// own is the Markdown files the module holds, which documentation
	// may name.
	own []string
}

func newDocRefs() docRefs {
	// A NAME.md not preceded by a word byte or a dot, so that a Go
	// selector such as x.d.md is not one.
	return docRefs{
		md:  regexp.MustCompile(`(?:^|[^\w.])([\w-]+)\.md\b`),
		own: []string{"README", "SECURITY", "CHANGELOG"},
	}
}

// find returns what in text points outside the module, each as the
// offending fragment and the line it is on.
func (r docRefs) find(text string) []string {
	var bad []string
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		for _, s := range []string{"§", "spec/", "../shared", "/work/"} {
			if strings.Contains(line, s) {
				bad = append(bad, fmt.Sprintf("%q in %q", s, line))
			}
		}
		for _, m := range r.md.FindAllStringSubmatch(line, -1) {
			if !slices.Contains(r.own, m[1]) {
				bad = append(bad, fmt.Sprintf("%q in %q", m[1]+".md", line))
			}
		}
	}
	return bad
}

// TestDocStandsAlone checks that the documentation of every package of
// the module (what go doc and pkg.go.dev show: package comments, and the
// comments of exported names, struct fields and interface methods) names
// no file outside the module: a reader of the module has only the module.
// It parses the non-test files of each package directory (testdata and
// directories starting with '.' or '_' are not packages, nor is a
// directory with its own go.mod), as go doc would read them.
func TestDocStandsAlone(t *testing.T) {
	refs := newDocRefs()
	var dirs []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != "." {
			name := d.Name()
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		dirs = append(dirs, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	npkg := 0
	for _, dir := range dirs {
		npkg += checkDocDir(t, refs, dir)
	}
	t.Logf("checked the documentation of %d packages", npkg)
	// The walk must have found the module: a check that sees nothing
	// would pass whatever the documentation says.
	if npkg < 10 {
		t.Errorf("checked %d packages, want the module's (at least 10)", npkg)
	}
}

// checkDocDir checks the packages of the non-test Go files in dir and
// returns how many it checked.
func checkDocDir(t *testing.T, refs docRefs, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	byPkg := map[string][]*ast.File{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		byPkg[f.Name.Name] = append(byPkg[f.Name.Name], f)
	}
	report := func(pos token.Pos, what string, cg string) {
		for _, b := range refs.find(cg) {
			p := fset.Position(pos)
			t.Errorf("%s:%d: documentation of %s points outside the module: %s", p.Filename, p.Line, what, b)
		}
	}
	for name, files := range byPkg {
		// The package comment of each file: go doc shows one of them.
		for _, f := range files {
			if f.Doc != nil {
				report(f.Doc.Pos(), "package "+name, f.Doc.Text())
			}
		}
		p, err := doc.NewFromFiles(fset, files, path.Join("github.com/qmailkit/qmailkit", filepath.ToSlash(dir)))
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		checkValues := func(vs []*doc.Value) {
			for _, v := range vs {
				report(v.Decl.Pos(), strings.Join(v.Names, ", "), v.Doc)
				checkDecl(v.Decl, report)
			}
		}
		checkFuncs := func(fs []*doc.Func) {
			for _, f := range fs {
				what := f.Name
				if f.Recv != "" {
					what = "(" + f.Recv + ")." + f.Name
				}
				report(f.Decl.Pos(), what, f.Doc)
			}
		}
		checkValues(p.Consts)
		checkValues(p.Vars)
		checkFuncs(p.Funcs)
		for _, ty := range p.Types {
			report(ty.Decl.Pos(), ty.Name, ty.Doc)
			checkDecl(ty.Decl, report)
			checkValues(ty.Consts)
			checkValues(ty.Vars)
			checkFuncs(ty.Funcs)
			checkFuncs(ty.Methods)
		}
		for _, notes := range p.Notes {
			for _, n := range notes {
				report(n.Pos, "a note", n.Body)
			}
		}
	}
	return len(byPkg)
}

// checkDecl checks the comments inside an exported declaration as go doc
// prints it (go/doc has already removed unexported fields): those of each
// spec of a group, struct field and interface method.
func checkDecl(decl *ast.GenDecl, report func(token.Pos, string, string)) {
	ast.Inspect(decl, func(n ast.Node) bool {
		var what string
		var cgs []*ast.CommentGroup
		switch n := n.(type) {
		case *ast.TypeSpec:
			what, cgs = n.Name.Name, []*ast.CommentGroup{n.Doc, n.Comment}
		case *ast.ValueSpec:
			what, cgs = n.Names[0].Name, []*ast.CommentGroup{n.Doc, n.Comment}
		case *ast.Field:
			what = "a field"
			if len(n.Names) > 0 {
				what = n.Names[0].Name
			}
			cgs = []*ast.CommentGroup{n.Doc, n.Comment}
		default:
			return true
		}
		for _, cg := range cgs {
			if cg != nil {
				report(cg.Pos(), what, cg.Text())
			}
		}
		return true
	})
}
