package cdb

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

const benchRecords = 1_000_000

func benchKey(i int) []byte { return []byte("user" + strconv.Itoa(i) + "@example.com") }

func writeBench(b *testing.B, path string) {
	w, err := Create(path)
	if err != nil {
		b.Fatal(err)
	}
	val := []byte("alias\x00" + "7791\x002108\x00/var/qmail/alias\x00-\x00")
	for i := range benchRecords {
		if err := w.Put(benchKey(i), val); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWrite1M writes a 1M-record database (target: under 2 s).
func BenchmarkWrite1M(b *testing.B) {
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		writeBench(b, filepath.Join(dir, fmt.Sprint(i)))
	}
}

// BenchmarkGet1M looks up present keys in a memory-mapped 1M-record database
// on one goroutine (target: at least 2M lookups/s).
func BenchmarkGet1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "db")
	writeBench(b, path)
	c, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = benchKey((i * 7919) % benchRecords)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if v, err := c.Get(keys[i&4095]); v == nil || err != nil {
			b.Fatal("lookup failed", err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
