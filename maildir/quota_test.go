package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseQuota(t *testing.T) {
	tests := []struct {
		in   string
		want Quota
		str  string
		bad  bool
	}{
		{in: "10000000S,1000C", want: Quota{Bytes: 10000000, Count: 1000}, str: "10000000S,1000C"},
		{in: "1000C,500S", want: Quota{Bytes: 500, Count: 1000}, str: "500S,1000C"},
		{in: "1000S", want: Quota{Bytes: 1000}, str: "1000S"},
		{in: "10C", want: Quota{Count: 10}, str: "10C"},
		{in: "", want: Quota{}, str: ""},
		{in: "0S", want: Quota{}, str: ""},
		{in: "10X", bad: true},
		{in: "S", bad: true},
		{in: "-5S", bad: true},
		{in: "+5S", bad: true},
		{in: "5S,", bad: true},
		{in: "abcS", bad: true},
	}
	for _, tt := range tests {
		q, err := ParseQuota(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseQuota(%q) = %+v, want an error", tt.in, q)
			}
			continue
		}
		if err != nil || q != tt.want || q.String() != tt.str {
			t.Errorf("ParseQuota(%q) = %+v (%q), %v; want %+v (%q)", tt.in, q, q, err, tt.want, tt.str)
		}
	}
}

func writeMaildirsize(t *testing.T, d Dir, content string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(string(d), "maildirsize")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func readMaildirsizeFile(t *testing.T, d Dir) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(d), "maildirsize"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Maildir++ quota: usage summed from maildirsize, a delivery over the
// byte limit refused, one under it appended.
func TestQuotaVector12(t *testing.T) {
	now := time.Unix(1700000000, 0)
	const file = "1000S,10C\n500 2\n-100 -1\n"

	t.Run("usage", func(t *testing.T) {
		d := newDir(t)
		writeMaildirsize(t, d, file, now)
		q, u, err := d.ReadQuota()
		if err != nil {
			t.Fatal(err)
		}
		if q != (Quota{Bytes: 1000, Count: 10}) || u != (Usage{Bytes: 400, Count: 1}) {
			t.Errorf("ReadQuota = %+v, %+v", q, u)
		}
	})
	t.Run("700 refused with 4.2.2", func(t *testing.T) {
		d := newDir(t)
		// The file has two delta lines, so a refusal recalculates first:
		// give the Maildir the one 400-byte message the file counts.
		put(t, d, "cur", "1.2.h:2,S", strings.Repeat("m", 400), now)
		writeMaildirsize(t, d, file, now)
		dl := &Deliverer{Now: func() time.Time { return now }}
		_, err := dl.Deliver(t.Context(), d, strings.NewReader(strings.Repeat("x", 700)))
		if !errors.Is(err, ErrQuota) {
			t.Fatalf("err = %v, want ErrQuota", err)
		}
		var qe *QuotaError
		if !errors.As(err, &qe) || qe.Enhanced() != "4.2.2" || isPermanent(err) || stepOf(err) != "quota" {
			t.Errorf("err = %v: want a temporary 4.2.2 quota error", err)
		}
		if qe.Usage != (Usage{400, 1}) || qe.Size != 700 {
			t.Errorf("QuotaError = %+v", qe)
		}
		if !strings.Contains(err.Error(), "(#4.2.2)") {
			t.Errorf("error text %q lacks (#4.2.2)", err)
		}
		wantFiles(t, d, "new", nil)
		wantFiles(t, d, "tmp", nil)
		if got := readMaildirsizeFile(t, d); got != "1000S,10C\n400 1\n" {
			t.Errorf("maildirsize after recalculation = %q", got)
		}
	})
	t.Run("600 accepted, appends 600 1", func(t *testing.T) {
		d := newDir(t)
		writeMaildirsize(t, d, file, now)
		dl := &Deliverer{Now: func() time.Time { return now }}
		name, err := dl.Deliver(t.Context(), d, strings.NewReader(strings.Repeat("x", 600)))
		if err != nil {
			t.Fatal(err)
		}
		wantFiles(t, d, "new", map[string]string{name: strings.Repeat("x", 600)})
		if got, want := readMaildirsizeFile(t, d), file+"600 1\n"; got != want {
			t.Errorf("maildirsize = %q, want %q", got, want)
		}
	})
	t.Run("permanent 5.2.2", func(t *testing.T) {
		d := newDir(t)
		writeMaildirsize(t, d, "1000S\n400 1\n", now)
		dl := &Deliverer{Now: func() time.Time { return now }, QuotaPermanent: true}
		_, err := dl.Deliver(t.Context(), d, strings.NewReader(strings.Repeat("x", 700)))
		var qe *QuotaError
		if !errors.As(err, &qe) || qe.Enhanced() != "5.2.2" || !isPermanent(err) || !errors.Is(err, ErrQuota) {
			t.Fatalf("err = %v: want a permanent 5.2.2 quota error", err)
		}
	})
}

func TestQuotaRules(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name       string
		file       string // "" = no maildirsize
		age        time.Duration
		messages   []int // sizes of messages present in cur/
		configured Quota
		size       int
		refused    bool
		after      string // maildirsize afterwards; "-" = absent
	}{
		{name: "no quota anywhere", size: 5000, after: "-"},
		{name: "configured, file made", configured: Quota{Bytes: 1000}, messages: []int{100}, size: 50,
			after: "1000S\n100 1\n50 1\n"},
		{name: "configured, refused", configured: Quota{Bytes: 1000}, messages: []int{990}, size: 50, refused: true,
			after: "1000S\n990 1\n"},
		{name: "count limit", file: "10C\n100 10\n", size: 1, refused: true, after: "10C\n100 10\n"},
		{name: "count limit not reached", file: "10C\n100 9\n", size: 1, after: "10C\n100 9\n1 1\n"},
		{name: "fresh single line trusted", file: "1000S\n990 1\n", size: 50, refused: true, after: "1000S\n990 1\n"},
		{name: "stale over-quota file recalculated", file: "1000S\n990 1\n", age: 16 * time.Minute, size: 50,
			after: "1000S\n0 0\n50 1\n"},
		{name: "14:59 is fresh", file: "1000S\n990 1\n", age: 15*time.Minute - time.Second, size: 50, refused: true,
			after: "1000S\n990 1\n"},
		{name: "15 minutes is stale (Courier)", file: "1000S\n990 1\n", age: 15 * time.Minute, size: 50,
			after: "1000S\n0 0\n50 1\n"},
		{name: "no delta line over quota recalculated", file: "10S\n", size: 20, refused: true,
			after: "10S\n0 0\n"},
		{name: "negative usage recalculated", file: "1000S\n-50 -1\n", messages: []int{20}, size: 50,
			after: "1000S\n20 1\n50 1\n"},
		{name: "two delta lines over quota recalculated", file: "1000S\n900 1\n90 1\n", messages: []int{10}, size: 50,
			after: "1000S\n10 1\n50 1\n"},
		{name: "not over quota: no recalculation", file: "1000S\n100 1\n100 1\n", size: 50,
			after: "1000S\n100 1\n100 1\n50 1\n"},
		{name: "configured replaces the file's quota", file: "1000S\n100 1\n", configured: Quota{Bytes: 2000}, size: 50,
			after: "2000S\n0 0\n50 1\n"},
		{name: "long file recalculated", file: "1000S\n" + strings.Repeat("1 0\n", 1300), messages: []int{7}, size: 50,
			after: "1000S\n7 1\n50 1\n"},
		{name: "bad delta line recalculated", file: "1000S\n100 one\n", messages: []int{3}, size: 50,
			after: "1000S\n3 1\n50 1\n"},
		{name: "bad quota line ignored", file: "lots\n100 1\n", size: 5000, after: "lots\n100 1\n"},
	}
	for _, tt := range forEachMode(tests) {
		t.Run(tt.mode.name(tt.v.name), func(t *testing.T) {
			tt, unnamed := tt.v, tt.mode
			d := newDir(t)
			for i, size := range tt.messages {
				put(t, d, "cur", "m"+string(rune('a'+i))+":2,S", strings.Repeat("m", size), now)
			}
			if tt.file != "" {
				writeMaildirsize(t, d, tt.file, now.Add(-tt.age))
			}
			dl := &Deliverer{Now: func() time.Time { return now }, Quota: tt.configured, Unnamed: bool(unnamed)}
			_, err := dl.Deliver(t.Context(), d, strings.NewReader(strings.Repeat("x", tt.size)))
			if tt.refused != errors.Is(err, ErrQuota) {
				t.Fatalf("err = %v, refused want %v", err, tt.refused)
			}
			if !tt.refused && err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(string(d), "maildirsize"))
			got := string(b)
			if err != nil {
				got = "-"
			}
			if got != tt.after {
				t.Errorf("maildirsize = %q, want %q", got, tt.after)
			}
			wantFiles(t, d, "tmp", nil)
		})
	}
}

// Recalculation counts folders, skips .Trash and T-flagged messages, uses
// ",S=" sizes without stat.
func TestRecalculateQuota(t *testing.T) {
	d := newDir(t)
	now := time.Unix(1700000000, 0)
	put(t, d, "new", "a", "12345", now)        // 5
	put(t, d, "cur", "b,S=100:2,S", "x", now)  // 100 by its tag
	put(t, d, "cur", "c:2,ST", "trashed", now) // not counted
	put(t, d, "cur", ".hidden", "hidden", now) // not a message
	for _, f := range []string{".Sent", ".Lists.qmail", ".Trash"} {
		sub, err := Create(filepath.Join(string(d), f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(string(sub), "maildirfolder"), nil, 0o600)
		put(t, sub, "cur", "s:2,S", "1234567890", now) // 10 each, .Trash not counted
	}
	u, err := d.RecalculateQuota(Quota{Bytes: 1 << 20, Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	if u != (Usage{Bytes: 125, Count: 4}) {
		t.Errorf("usage = %+v, want 125 bytes in 4 messages", u)
	}
	if got := readMaildirsizeFile(t, d); got != "1048576S,100C\n125 4\n" {
		t.Errorf("maildirsize = %q", got)
	}
	wantFiles(t, d, "tmp", nil)

	// Remove appends the negative delta.
	if err := d.Remove(Message{Subdir: "new", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(Message{Subdir: "cur", Name: "b,S=100:2,S"}); err != nil {
		t.Fatal(err)
	}
	_, u, err = d.ReadQuota()
	if err != nil || u != (Usage{Bytes: 20, Count: 2}) {
		t.Errorf("after removes: %+v, %v", u, err)
	}
}

// A Maildir++ folder (it holds maildirfolder) is counted in its parent's
// maildirsize, as Courier does.
func TestQuotaFolder(t *testing.T) {
	for _, unnamed := range modes {
		t.Run(unnamed.name("folder"), func(t *testing.T) { testQuotaFolder(t, bool(unnamed)) })
	}
}

func testQuotaFolder(t *testing.T, unnamed bool) {
	now := time.Unix(1700000000, 0)
	d := newDir(t)
	writeMaildirsize(t, d, "1000S\n100 1\n", now)
	folder, err := Create(filepath.Join(string(d), ".Lists"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(folder), "maildirfolder"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dl := &Deliverer{Now: func() time.Time { return now }, Unnamed: unnamed}
	name, err := dl.Deliver(t.Context(), folder, strings.NewReader(strings.Repeat("x", 300)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readMaildirsizeFile(t, d); got != "1000S\n100 1\n300 1\n" {
		t.Errorf("parent maildirsize = %q", got)
	}
	if _, err := os.Stat(filepath.Join(string(folder), "maildirsize")); err == nil {
		t.Error("the folder got its own maildirsize")
	}
	// Over quota: the recalculation counts the folder's message (and not
	// the 100 bytes the file made up).
	if _, err := dl.Deliver(t.Context(), folder, strings.NewReader(strings.Repeat("x", 800))); !errors.Is(err, ErrQuota) {
		t.Errorf("delivery over the parent's quota: %v", err)
	}
	if got := readMaildirsizeFile(t, d); got != "1000S\n300 1\n" {
		t.Errorf("parent maildirsize after recalculation = %q", got)
	}
	if err := folder.Remove(Message{Subdir: "new", Name: name}); err != nil {
		t.Fatal(err)
	}
	if _, u, err := folder.ReadQuota(); err != nil || u != (Usage{}) {
		t.Errorf("after Remove in the folder: %+v, %v", u, err)
	}
}

func TestReadQuotaMissing(t *testing.T) {
	d := newDir(t)
	if _, _, err := d.ReadQuota(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}
