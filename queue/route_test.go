package queue

import (
	"strings"
	"testing"
)

func vectorRouting(extra ...string) Routing {
	lines := "virt.example:joe\n.sub.example:bob-net\ncarol@vu.example:carol\nvu.example:dave\nno.sub.example:\n" + strings.Join(extra, "\n")
	vds, err := ParseVirtualDomains(strings.NewReader(lines))
	if err != nil {
		panic(err)
	}
	return Routing{
		Locals:         []string{"example.com"},
		PercentHack:    []string{"relay.example.com"},
		VirtualDomains: vds,
		EnvNoAtHost:    "example.com",
	}
}

// qmail-send's routing of recipients (see qmail-send(8)): locals,
// percenthack, virtualdomains (exact, .suffix, user@domain, an empty
// prepend, the last of a repeated key) and the catch-all line.
func TestRoute(t *testing.T) {
	base, catch := vectorRouting(), vectorRouting(":alias-catch")
	twice := vectorRouting("v.example:first", "v.example:second")
	percent2 := vectorRouting()
	percent2.PercentHack = append(percent2.PercentHack, "c")
	for _, tc := range []struct {
		name   string
		r      Routing
		in     string
		want   string
		remote bool
	}{
		{"8 no @", base, "joe", "joe@example.com", false},
		{"9 case kept", base, "Joe@EXAMPLE.COM", "Joe@EXAMPLE.COM", false},
		{"10 percent", base, "u%far.example@relay.example.com", "u@far.example", true},
		{"10 percent twice", base, "a%b%c@relay.example.com", "a%b@c", true},
		{"10 percent chained", percent2, "a%b%c@relay.example.com", "a@b", true},
		{"10 no percent", base, "u@relay.example.com", "u@relay.example.com", true},
		{"11 virtual", base, "info@virt.example", "joe-info@virt.example", false},
		{"11 virtual case", base, "Info@VIRT.example", "joe-Info@VIRT.example", false},
		{"12 suffix", base, "x@h.sub.example", "bob-net-x@h.sub.example", false},
		{"12 bare domain", base, "x@sub.example", "x@sub.example", true},
		{"13 user", base, "carol@vu.example", "carol-carol@vu.example", false},
		{"13 domain", base, "other@vu.example", "dave-other@vu.example", false},
		{"14 empty prepend", base, "y@no.sub.example", "y@no.sub.example", true},
		{"14 longer suffix", base, "y@a.no.sub.example", "bob-net-y@a.no.sub.example", false},
		{"15 last wins", twice, "x@v.example", "second-x@v.example", false},
		{"16 catch-all", catch, "x@elsewhere.example", "alias-catch-x@elsewhere.example", false},
		{"16 catch-all bare", catch, "x@sub.example", "alias-catch-x@sub.example", false},
		{"16 catch-all percent", catch, "u%far.example@relay.example.com", "alias-catch-u@far.example", false},
		{"16 empty prepend first", catch, "y@no.sub.example", "y@no.sub.example", true},
		{"16 locals first", catch, "joe@example.com", "joe@example.com", false},
		{"remote", base, "bob@b.org", "bob@b.org", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, remote := tc.r.Route(tc.in)
			if got != tc.want || remote != tc.remote {
				t.Errorf("Route(%q) = %q remote=%v, want %q remote=%v", tc.in, got, remote, tc.want, tc.remote)
			}
		})
	}
}

func TestParseVirtualDomains(t *testing.T) {
	got, err := ParseVirtualDomains(strings.NewReader("# comment\n\nnocolon\na.example:p:q \t\n:catch\nb.example:\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []VirtualDomain{{"a.example", "p:q"}, {"", "catch"}, {"b.example", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
}

// A virtual domain's prepend is removed for the bounce record (not for a
// user@domain entry).
func TestStripPrepend(t *testing.T) {
	c := vectorRouting().compile()
	for in, want := range map[string]string{
		"joe-info@virt.example":      "info@virt.example",
		"carol-carol@vu.example":     "carol-carol@vu.example",
		"dave-other@vu.example":      "other@vu.example",
		"bob-net-x@h.sub.example":    "x@h.sub.example",
		"someone@virt.example":       "someone@virt.example",
		"y@no.sub.example":           "y@no.sub.example",
		"bob@b.org":                  "bob@b.org",
		"bob-net-x@a.no.sub.example": "x@a.no.sub.example",
	} {
		if got := c.stripPrepend(in); got != want {
			t.Errorf("stripPrepend(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRoute(f *testing.F) {
	for _, s := range []string{"joe", "a%b%c@relay.example.com", "Info@VIRT.example", "x@h.sub.example", "@", "%@", ""} {
		f.Add(s)
	}
	c := vectorRouting(":alias-catch").compile()
	f.Fuzz(func(t *testing.T, in string) {
		out, remote := c.route(in)
		if !remote && !strings.Contains(out, "@") {
			t.Fatalf("%q routed local without @: %q", in, out)
		}
		if len(out) > len(in)+len("@example.com")+len("alias-catch-")+len("bob-net-") {
			t.Fatalf("%q grew to %q", in, out)
		}
	})
}

func FuzzParseVirtualDomains(f *testing.F) {
	for _, s := range []string{"virt.example:joe\n.sub.example:bob-net\n", "# c\n\n:catch\nx:y:z \t\n", "nocolon\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		vds, err := ParseVirtualDomains(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, v := range vds {
			if strings.ContainsAny(v.Key, ":\n") || strings.Contains(v.Prepend, "\n") {
				t.Fatalf("%q parsed to %+v", in, v)
			}
			if strings.HasSuffix(v.Prepend, " ") || strings.HasSuffix(v.Prepend, "\t") {
				t.Fatalf("trailing blank kept in %+v", v)
			}
		}
	})
}
