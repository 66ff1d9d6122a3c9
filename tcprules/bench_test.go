package tcprules

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// rules100k is a rules file of 100,000 lines: exact addresses with
// variables, prefixes, ranges and host names, like a large tcp.smtp.
func rules100k() []byte {
	var b bytes.Buffer
	b.Grow(4 << 20)
	for i := range 100000 {
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "10.%d.%d.:allow,RELAYCLIENT=\"\"\n", i>>16&255, i>>8&255)
		case 1:
			fmt.Fprintf(&b, "=host%d.example.com:deny\n", i)
		case 2:
			fmt.Fprintf(&b, "172.%d.%d.%d:allow,RBLSMTPD=\"-blocked %d\"\n", i>>16&255, i>>8&255, i&255, i)
		default:
			fmt.Fprintf(&b, "192.%d.%d.%d:allow,RELAYCLIENT=\"\",DATABYTES=\"%d\"\n", i>>16&255, i>>8&255, i&255, i)
		}
	}
	b.WriteString(":allow,DATABYTES=\"10485760\"\n")
	return b.Bytes()
}

// BenchmarkLookup100k looks up a mix of connections in a cdb of 100,000
// rules, opened from a file as a Listener does: exact hits, prefix hits,
// host-name hits and misses that fall through every step to the default.
// It reports the median and 99th percentile of the time per lookup.
func BenchmarkLookup100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "rules.cdb")
	if err := CompileFile(path, path+".tmp", bytes.NewReader(rules100k())); err != nil {
		b.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	type query struct {
		ip   string
		host *string
	}
	r := rand.New(rand.NewPCG(1, 2))
	var qs []query
	for range 4096 {
		i := r.IntN(100000)
		h := fmt.Sprintf("mx%d.host%d.example.com", i, i-i%10+1)
		switch r.IntN(4) {
		case 0:
			qs = append(qs, query{ip: fmt.Sprintf("192.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
		case 1:
			qs = append(qs, query{ip: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, r.IntN(256))})
		case 2:
			qs = append(qs, query{ip: fmt.Sprintf("203.0.113.%d", r.IntN(256)), host: &h})
		default:
			qs = append(qs, query{ip: fmt.Sprintf("198.51.%d.%d", r.IntN(256), r.IntN(256))})
		}
	}
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		q := qs[i%len(qs)]
		t0 := time.Now()
		d, err := db.Lookup(q.ip, q.host, nil)
		durs = append(durs, time.Since(t0))
		if err != nil || !d.Found {
			b.Fatalf("%s: %+v %v", q.ip, d, err)
		}
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkCompile100k compiles 100,000 rules in memory (parse + cdb).
func BenchmarkCompile100k(b *testing.B) {
	rules := rules100k()
	b.SetBytes(int64(len(rules)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(bytes.NewReader(rules)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileFile100k is the tcprules CDB TMP contract on 100,000
// rules: write, fsync, rename, fsync the directory.
func BenchmarkCompileFile100k(b *testing.B) {
	rules := rules100k()
	path := filepath.Join(b.TempDir(), "rules.cdb")
	for b.Loop() {
		if err := CompileFile(path, path+".tmp", bytes.NewReader(rules)); err != nil {
			b.Fatal(err)
		}
	}
}
