package maildir

import (
	"testing"
	"time"
)

// repeatReader returns its bytes over and over: a predictable random
// source.
type repeatReader []byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

var vectorRand = repeatReader{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}

// qmail's name and ours (with size tagging), and a host name with '/' and
// ':' escaped, through the name a Deliverer gives a delivery.
func TestDeliverNames(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	fixed := func() time.Time { return at }
	tests := []struct {
		name string
		dl   *Deliverer
		msg  string
		want string
	}{
		{"vector 1 legacy", &Deliverer{Naming: NamingQmail, Now: fixed, Pid: 4321, Host: "mx1"}, "x\n",
			"1700000000.4321.mx1"},
		{"vector 2 modern", &Deliverer{Now: fixed, Pid: 4321, Host: "mx1", Rand: vectorRand}, "x\n",
			"1700000000.M123456P4321Q1R0123456789abcdef.mx1"},
		{"vector 2 size tag", &Deliverer{Now: fixed, Pid: 4321, Host: "mx1", Rand: vectorRand, SizeTag: true},
			string(make([]byte, 1234)), "1700000000.M123456P4321Q1R0123456789abcdef.mx1,S=1234"},
		{"vector 3 host escapes", &Deliverer{Now: fixed, Pid: 4321, Host: "a/b:c", Rand: vectorRand}, "x\n",
			`1700000000.M123456P4321Q1R0123456789abcdef.a\057b\072c`},
		{"comma escaped", &Deliverer{Now: fixed, Pid: 1, Host: "h,S=9", Rand: vectorRand, SizeTag: true}, "x\n",
			`1700000000.M123456P1Q1R0123456789abcdef.h\054S=9,S=2`},
		{"usec zero", &Deliverer{Now: func() time.Time { return time.Unix(5, 999) }, Pid: 7, Host: "h", Rand: vectorRand}, "",
			"5.M0P7Q1R0123456789abcdef.h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDir(t)
			got, err := tt.dl.Deliver(t.Context(), d, stringsReader(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("name = %q, want %q", got, tt.want)
			}
			if n, _ := ParseName(got); n.Unique != got || n.Info != "" {
				t.Errorf("ParseName(%q) = %+v", got, n)
			}
			wantFiles(t, d, "new", map[string]string{tt.want: tt.msg})
		})
	}
}

func TestDelivererCountsNames(t *testing.T) {
	d := newDir(t)
	dl := &Deliverer{Now: func() time.Time { return time.Unix(1700000000, 0) }, Pid: 9, Host: "h", Rand: vectorRand}
	for i, want := range []string{
		"1700000000.M0P9Q1R0123456789abcdef.h",
		"1700000000.M0P9Q2R0123456789abcdef.h",
		"1700000000.M0P9Q3R0123456789abcdef.h",
	} {
		got, err := dl.Deliver(t.Context(), d, stringsReader("m\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("delivery %d: name = %q, want %q", i+1, got, want)
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		in      string
		unique  string
		info    string
		flags   Flags
		size    int64
		hasSize bool
		bad     bool
	}{
		{in: "1700000000.4321.mx1", unique: "1700000000.4321.mx1"},
		{in: "1700000000.4321.mx1:2,S", unique: "1700000000.4321.mx1", info: "2,S", flags: "S"},
		{in: "X:2,FRS", unique: "X", info: "2,FRS", flags: "FRS"},
		{in: "X:2,SRRF", unique: "X", info: "2,SRRF", flags: "FRS"},
		{in: "X:2,FSab,extra", unique: "X", info: "2,FSab,extra", flags: "FSab"},
		{in: "X:1,abc", unique: "X", info: "1,abc", flags: ""},
		{in: "X:2,", unique: "X", info: "2,", flags: ""},
		{in: "X:garbage", unique: "X", info: "garbage"},
		{in: "X:2,S:more", unique: "X", info: "2,S:more", flags: ":Semor"},
		{in: "1.M1P2Q3R4.h,S=1234", unique: "1.M1P2Q3R4.h,S=1234", size: 1234, hasSize: true},
		{in: "1.M1P2Q3R4.h,S=1234,W=1300:2,S", unique: "1.M1P2Q3R4.h,S=1234,W=1300", info: "2,S", flags: "S", size: 1234, hasSize: true},
		{in: "1.M1P2Q3R4.h,W=1300,S=77", unique: "1.M1P2Q3R4.h,W=1300,S=77", size: 77, hasSize: true},
		{in: "1.2.h,S=", unique: "1.2.h,S="},
		{in: "1.2.h,S=-5", unique: "1.2.h,S=-5"},
		{in: "1.2.h,S=12x", unique: "1.2.h,S=12x"},
		{in: "1.2.hS=12", unique: "1.2.hS=12"},
		{in: "", bad: true},
		{in: ".hidden", bad: true},
		{in: "a/b", bad: true},
		{in: "a\x00b", bad: true},
		{in: ":2,S", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := ParseName(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseName(%q) = %+v, want an error", tt.in, n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Unique != tt.unique || n.Info != tt.info {
				t.Errorf("ParseName(%q) = %+v, want unique %q info %q", tt.in, n, tt.unique, tt.info)
			}
			if got := n.Flags(); got != tt.flags {
				t.Errorf("Flags() = %q, want %q", got, tt.flags)
			}
			size, ok := n.Size()
			if size != tt.size || ok != tt.hasSize {
				t.Errorf("Size() = %d, %v, want %d, %v", size, ok, tt.size, tt.hasSize)
			}
			if got := n.String(); got != tt.in {
				t.Errorf("String() = %q, want %q", got, tt.in)
			}
			if got := Unique(tt.in); got != tt.unique {
				t.Errorf("Unique(%q) = %q, want %q", tt.in, got, tt.unique)
			}
		})
	}
}

// Flags kept sorted in the :2, info, unknown ones kept, and more flag
// edits.
func TestFlags(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		set      func(Flags) Flags
		want     string
		wantFlag Flags
	}{
		{"vector 7 {S,R}", "X", func(Flags) Flags { return Seen + Replied }, "X:2,RS", "RS"},
		{"vector 7 {T,D,F}", "X", func(Flags) Flags { return Trashed + Draft + Flagged }, "X:2,DFT", "DFT"},
		{"vector 7 add S", "X:2,FT", func(f Flags) Flags { return f.Add(Seen) }, "X:2,FST", "FST"},
		{"vector 7 remove F", "X:2,FSab", func(f Flags) Flags { return f.Remove(Flagged) }, "X:2,Sab", "Sab"},
		{"vector 7 1, replaced when set", "X:1,abc", func(f Flags) Flags { return f.Add(Seen) }, "X:2,S", "S"},
		{"extra kept", "X:2,S,extra", func(f Flags) Flags { return f.Add(Replied) }, "X:2,RS,extra", "RS"},
		{"duplicates", "X", func(Flags) Flags { return "SSRRS" }, "X:2,RS", "RS"},
		{"remove all", "X:2,S", func(f Flags) Flags { return f.Remove(Seen) }, "X:2,", ""},
		{"comma and slash dropped", "X", func(Flags) Flags { return "S,/\x00" }, "X:2,S", "S"},
		{"keywords after flags", "X:2,ba", func(f Flags) Flags { return f.Add(Passed) }, "X:2,Pab", "Pab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseName(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got := n.WithFlags(tt.set(n.Flags()))
			if got.String() != tt.want {
				t.Errorf("%q: got %q, want %q", tt.file, got, tt.want)
			}
			if got.Flags() != tt.wantFlag {
				t.Errorf("%q: flags %q, want %q", tt.file, got.Flags(), tt.wantFlag)
			}
			if got.Unique != n.Unique {
				t.Errorf("unique changed: %q -> %q", n.Unique, got.Unique)
			}
		})
	}
}

func TestFlagsHas(t *testing.T) {
	f := Flags("FRS")
	for _, tt := range []struct {
		g    Flags
		want bool
	}{{"", true}, {Seen, true}, {Seen + Flagged, true}, {"SR", true}, {Trashed, false}, {"ST", false}} {
		if got := f.Has(tt.g); got != tt.want {
			t.Errorf("%q.Has(%q) = %v, want %v", f, tt.g, got, tt.want)
		}
	}
}

// The UIDL is the name cut at the first ':'.
func TestUIDL(t *testing.T) {
	for _, m := range []Message{
		{Subdir: "cur", Name: "1700000000.4321.mx1:2,S"},
		{Subdir: "new", Name: "1700000000.4321.mx1"},
	} {
		if got := m.Unique(); got != "1700000000.4321.mx1" {
			t.Errorf("%s: Unique() = %q", m.Path(), got)
		}
	}
}
