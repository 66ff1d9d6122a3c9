package golden

import "testing"

func TestDump(t *testing.T) {
	got := Dump([]byte("!joe\x00"), []byte("a\\b\r\n\t\x7f\xffz"))
	want := `+5,9:!joe\0->a\\b\r\n\t\x7f\xffz`
	if got != want {
		t.Errorf("Dump = %q, want %q", got, want)
	}
}

func TestDir(t *testing.T) {
	if _, err := Path("no-such-set"); err == nil {
		t.Error("Path found a set that does not exist")
	}
	if g := Dir(t, "tcprules"); g == "" {
		t.Error("Dir returned nothing")
	}
}
