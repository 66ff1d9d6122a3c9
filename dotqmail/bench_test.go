package dotqmail

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/maildir"
)

// The two benchmarks compare a dotqmail delivery of a 1 KB message to a
// ./Maildir/ line with a raw maildir delivery of the same bytes (the
// message with its Return-Path and Delivered-To lines):
//
//	go test -run '^$' -bench 'Maildir1K' -count 5 ./dotqmail/

var bench1K = "Subject: bench\n\n" + strings.Repeat(strings.Repeat("x", 63)+"\n", 1008/64)

func BenchmarkDotqmailMaildir1K(b *testing.B) {
	home := filepath.Join(b.TempDir(), "joe")
	os.Mkdir(home, 0o755)
	if _, err := maildir.Create(filepath.Join(home, "Maildir")); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, ".qmail"), []byte("./Maildir/\n"), 0o644)
	d := &Deliverer{Env: []string{}}
	tg := Target{User: "joe", Home: home, Local: "joe", Domain: "ex.com", Sender: "a@b.c"}
	ctx := context.Background()
	b.SetBytes(int64(len(bench1K)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Deliver(ctx, tg, strings.NewReader(bench1K)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawMaildir1K(b *testing.B) {
	dir, err := maildir.Create(filepath.Join(b.TempDir(), "Maildir"))
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(RPLine("a@b.c") + DTLine("joe", "ex.com") + bench1K)
	var md maildir.Deliverer
	ctx := context.Background()
	b.SetBytes(int64(len(bench1K)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := md.Deliver(ctx, dir, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}
