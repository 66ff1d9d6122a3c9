package maildir

import (
	"strings"
	"testing"
)

// FuzzParseName checks the file-name and flags parser: names round-trip,
// unique names never hold ':' or '/', flags come out sorted and
// de-duplicated, and setting flags keeps the unique name and a ",extra".
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"1700000000.4321.mx1", "1700000000.4321.mx1:2,S", "X:2,FSab,extra", "X:1,abc",
		"1700000000.M123456P4321Q1R0123456789abcdef.mx1,S=1234:2,RS", "a,S=1,W=2:2,",
		"X:2,S:x", ".hidden", "", ":", "a/b", "X:2,,", "h,S=99999999999999999999",
	} {
		f.Add(s, "SR")
	}
	f.Fuzz(func(t *testing.T, name string, flags string) {
		n, err := ParseName(name)
		if err != nil {
			return
		}
		if n.Unique == "" || n.Unique[0] == '.' || strings.ContainsAny(n.Unique, ":/\x00") {
			t.Fatalf("ParseName(%q): bad unique name %q", name, n.Unique)
		}
		if Unique(name) != n.Unique {
			t.Fatalf("Unique(%q) = %q, ParseName says %q", name, Unique(name), n.Unique)
		}
		if n.Info != "" || !strings.Contains(name, ":") {
			if n.String() != name {
				t.Fatalf("ParseName(%q).String() = %q", name, n.String())
			}
		}
		if size, ok := n.Size(); ok && size < 0 {
			t.Fatalf("negative size %d from %q", size, name)
		}
		checkSorted(t, n.Flags())

		want := Flags(flags).Add("")
		checkSorted(t, want)
		m := n.WithFlags(Flags(flags))
		if m.Unique != n.Unique || m.Flags() != want {
			t.Fatalf("%q WithFlags(%q) = %q: flags %q, want %q", name, flags, m, m.Flags(), want)
		}
		again, err := ParseName(m.String())
		if err != nil || again != m {
			t.Fatalf("ParseName(%q) = %+v, %v; want %+v", m.String(), again, err, m)
		}
		if _, extra, ok := n.flagsExtra(); ok && !strings.HasSuffix(m.Info, extra) {
			t.Fatalf("%q WithFlags(%q) = %q lost %q", name, flags, m, extra)
		}
		if m.WithFlags(m.Flags()) != m {
			t.Fatalf("WithFlags(Flags()) changed %q", m)
		}
		g := Flags(flags)
		if !n.Flags().Add(g).Has(g) {
			t.Fatalf("%q.Add(%q) lacks %q", n.Flags(), g, g)
		}
		r := n.Flags().Add("+").Remove(g)
		for i := 0; i < len(g); i++ {
			if strings.IndexByte(string(r), g[i]) >= 0 {
				t.Fatalf("%q.Remove(%q) = %q", n.Flags(), g, r)
			}
		}
	})
}

func checkSorted(t *testing.T, f Flags) {
	t.Helper()
	for i := 0; i < len(f); i++ {
		if c := f[i]; c == ',' || c == '/' || c == 0 || i > 0 && f[i-1] >= c {
			t.Fatalf("flags %q not sorted, de-duplicated and clean", f)
		}
	}
}

// FuzzMaildirsize checks the maildirsize parser: no panic, and a quota
// line that parses prints back to itself.
func FuzzMaildirsize(f *testing.F) {
	for _, s := range []string{
		"1000S,10C\n500 2\n-100 -1\n", "10000000S\n", "10C\n1 1\n\n2 2\n", "x\n", "", "1000S\n1 one\n",
		"5S,5S,5C\n9223372036854775807 1\n1 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMaildirsize([]byte(s))
		if err != nil {
			return
		}
		if m.quota.Bytes < 0 || m.quota.Count < 0 {
			t.Fatalf("negative quota %+v from %q", m.quota, s)
		}
		q, err := ParseQuota(m.quota.String())
		if err != nil || q != m.quota {
			t.Fatalf("quota %+v prints as %q, which parses as %+v, %v", m.quota, m.quota.String(), q, err)
		}
		if strings.Count(s, "\n") < m.deltas {
			t.Fatalf("%d delta lines counted in %q", m.deltas, s)
		}
	})
}
