package mta

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
)

// BenchmarkSMTPToMaildir: 1 KB messages over 20 concurrent SMTP sessions
// (one message per session, as smtp-source sends them), timed until all are
// in the Maildir: SMTP ingest, queue, scheduler and local delivery.
func BenchmarkSMTPToMaildir(b *testing.B) {
	home := filepath.Join(b.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "bench.test", Password: "secret"})
	if err != nil {
		b.Fatal(err)
	}
	r := startHome(b, home, demo)
	body := fmt.Sprintf("Subject: bench\r\n\r\n%01000d\r\n", 0)
	b.ResetTimer()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 20 {
		wg.Go(func() {
			for range next {
				if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo@bench.test"}, body); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		// Names only (no stat per file), so the polling costs little.
		names, err := readdirnames(filepath.Join(demo.Maildir, "new"))
		if err != nil {
			b.Fatal(err)
		}
		if len(names) >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered", len(names), b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func readdirnames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
