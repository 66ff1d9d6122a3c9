package tcprules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/internal/errstr"
)

func TestCompileFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cdb")
	if err := CompileFile(good, good+".tmp", strings.NewReader("1.2.3.4:allow\n")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(good)
	tests := []struct {
		name     string
		path     string
		tmp      string
		rules    string
		op       FileOp
		parse    bool
		wantText string
	}{
		{"tmp in a missing directory", good, filepath.Join(dir, "no", "x.tmp"), ":allow\n", OpCreate, false, "file does not exist"},
		{"rename into a missing directory", filepath.Join(dir, "no", "x.cdb"), filepath.Join(dir, "x.tmp"), ":allow\n", OpRename, false, "file does not exist"},
		{"rename over a directory", dir, filepath.Join(dir, "y.tmp"), ":allow\n", OpRename, false, ""},
		{"bad line keeps the old cdb", good, good + ".tmp", "1.2.3.4:allow\nbad-line:allow\n", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CompileFile(tt.path, tt.tmp, strings.NewReader(tt.rules))
			if tt.parse {
				if !errors.Is(err, ErrParse) {
					t.Fatalf("err = %v, want a parse error", err)
				}
			} else {
				var fe *FileError
				if !errors.As(err, &fe) || fe.Op != tt.op {
					t.Fatalf("err = %v, want a FileError %q", err, tt.op)
				}
				if tt.wantText != "" && errstr.Text(fe.Err) != tt.wantText {
					t.Errorf("ErrorText = %q, want %q", errstr.Text(fe.Err), tt.wantText)
				}
				var perm interface{ Permanent() bool }
				if errors.As(err, &perm) && perm.Permanent() {
					t.Error("a FileError is permanent")
				}
			}
			if _, err := os.Stat(tt.tmp); !os.IsNotExist(err) {
				t.Errorf("temporary file left: %v", err)
			}
			if after, _ := os.ReadFile(good); string(after) != string(before) {
				t.Error("the old cdb changed")
			}
		})
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, syscall.EIO }

func TestCompileReadError(t *testing.T) {
	_, err := Compile(failReader{})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != OpRead || errstr.Text(fe.Err) != "input/output error" {
		t.Fatalf("err = %v", err)
	}
}
