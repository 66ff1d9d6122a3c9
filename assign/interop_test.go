package assign

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
)

// tinycdb's "cdb -d" reads the users/cdb we write and lists exactly the
// records of the assign file, in order, then the wildchars record.
func TestTinycdbReadsOutput(t *testing.T) {
	bin, err := exec.LookPath("cdb")
	if err != nil {
		t.Skip("tinycdb's cdb is not installed (Debian package tinycdb)")
	}
	// The small example, after two of the golden file "odd"'s forms.
	path := compileString(t, "=Mixed.Case:mc:2071:100:/home/MixedCase:-:Ext:\r\n+x:xwild:2078:100:/home/x:-:pre:\n"+specExample)
	out, err := exec.Command(bin, "-d", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for _, r := range records(t, path) {
		fmt.Fprintf(&want, "+%d,%d:%s->%s\n", len(r[0]), len(r[1]), r[0], r[1])
	}
	want.WriteString("\n")
	if !bytes.Equal(out, want.Bytes()) {
		t.Errorf("cdb -d:\n%q\nwant\n%q", out, want.Bytes())
	}
	if !bytes.Contains(out, []byte("+12,33:!mixed.case\x00->mc\x002071\x00100\x00/home/MixedCase\x00-\x00Ext\n")) {
		t.Errorf("cdb -d lacks the Mixed.Case record: %q", out)
	}
	if !bytes.HasSuffix(out, []byte("+0,2:->x-\n\n")) {
		t.Errorf("cdb -d: wildchars record: %q", out[max(0, len(out)-20):])
	}
}
