package cdb

import (
	"bytes"
	"testing"
)

// FuzzReader opens arbitrary bytes as a database and looks keys up and
// iterates: errors are fine, panics and out-of-range reads are not.
func FuzzReader(f *testing.F) {
	var buf seekBuffer
	w, _ := NewWriter(&buf, nil)
	w.Put([]byte("a"), []byte("1"))
	w.Put([]byte("a"), []byte("2"))
	w.Put(nil, []byte("default"))
	w.Close()
	f.Add(buf.b, []byte("a"))
	f.Add(buf.b[:2060], []byte(""))
	f.Add(make([]byte, 2048), []byte("x"))
	f.Fuzz(func(t *testing.T, data, key []byte) {
		for _, open := range []func([]byte) (*CDB, error){
			Bytes,
			func(b []byte) (*CDB, error) { return New(bytes.NewReader(b), nil) },
		} {
			c, err := open(data)
			if err != nil {
				continue
			}
			c.Get(key)
			c.GetAll(key)
			it := c.Iter()
			for n := 0; it.Next() && n < 1000; n++ {
				c.Get(it.Key())
			}
		}
	})
}

// FuzzRoundTrip writes records and reads every one back.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("a\x00b\x00a\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		parts := bytes.Split(in, []byte{0})
		var buf seekBuffer
		w, _ := NewWriter(&buf, nil)
		for i := 0; i+1 < len(parts); i += 2 {
			if err := w.Put(parts[i], parts[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		c, err := w.Freeze()
		if err != nil {
			t.Fatal(err)
		}
		first := map[string][]byte{}
		for i := 0; i+1 < len(parts); i += 2 {
			if _, ok := first[string(parts[i])]; !ok {
				first[string(parts[i])] = parts[i+1]
			}
		}
		for k, want := range first {
			if v, err := c.Get([]byte(k)); err != nil || !bytes.Equal(v, want) {
				t.Fatalf("Get(%q) = %q, %v; want %q", k, v, err, want)
			}
		}
	})
}
