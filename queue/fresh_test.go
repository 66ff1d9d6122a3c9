package queue

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFreshList(t *testing.T) {
	var l freshList
	l.begin(1)
	l.begin(2)
	if !l.isPending(1) || !l.isPending(2) || l.isPending(3) {
		t.Fatal("begin does not mark the ids pending")
	}
	l.end(freshMsg{id: 2}) // a failed commit
	if l.isPending(2) || l.waiting() {
		t.Error("a failed commit left its id pending or a message waiting")
	}
	l.end(freshMsg{id: 1, todo: []byte("Fa\x00"), size: 5})
	if !l.isPending(1) || !l.waiting() {
		t.Error("a committed message is not pending and waiting")
	}
	got, lost := l.take(10)
	if lost || len(got) != 1 || got[0].id != 1 || got[0].size != 5 {
		t.Errorf("take = %v, %v", got, lost)
	}
	if l.isPending(1) || l.waiting() {
		t.Error("a taken message is still pending or waiting")
	}

	// Beyond freshMax, messages are dropped: their ids are no longer
	// pending (a scan must find them) and the next take says so.
	for i := range freshMax + 3 {
		l.begin(ID(100 + i))
		l.end(freshMsg{id: ID(100 + i), todo: []byte{}})
	}
	if l.isPending(ID(100+freshMax)) || !l.isPending(100) {
		t.Error("dropped or kept messages have the wrong pending state")
	}
	got, lost = l.take(freshMax / 2)
	if !lost || len(got) != freshMax/2 || got[0].id != 100 {
		t.Errorf("take after an overflow: %d messages from %v, lost %v", len(got), got[0].id, lost)
	}
	if _, lost := l.take(0); lost {
		t.Error("a second take reports the drop again")
	}
}

// freshRun injects n messages from several goroutines into a running
// Scheduler, each to its own recipient with the recipient's name as its
// body, while pulling the trigger FIFO all along so that scans of todo/
// race with the hand-over of fresh messages. hold, when not nil, blocks
// every delivery until it is closed. It checks that each message is
// delivered exactly once, with its own body.
func freshRun(t *testing.T, n int, hold chan struct{}, release func()) {
	q := openRingTest(t, Options{Now: time.Now})
	var mu sync.Mutex
	count := map[string]int{}
	wrong := 0
	local := LocalFunc(func(ctx context.Context, d Delivery) Result {
		if hold != nil {
			<-hold
		}
		body, _ := io.ReadAll(d.Message)
		mu.Lock()
		defer mu.Unlock()
		count[d.Recipients[0]]++
		if !strings.HasSuffix(string(body), "\n"+d.Recipients[0]+"\n") {
			wrong++
		}
		return Result{Report: "did 0+0+1\n"}
	})
	s := &Scheduler{Queue: q, Local: local, Routing: Routing{Locals: []string{"example.com"}}}
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(count)
	}
	runUntil(t, s, func() {
		stop := make(chan struct{})
		var pulls sync.WaitGroup
		pulls.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
					PullTrigger(q.Dir())
				}
			}
		})
		var wg sync.WaitGroup
		const workers = 8
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					rcpt := fmt.Sprintf("r%d@example.com", i)
					if _, err := q.Inject(t.Context(), Envelope{Sender: "s@example.com", Recipients: []string{rcpt}}, strings.NewReader("\n"+rcpt+"\n")); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if release != nil {
			release()
		}
		time.Sleep(20 * time.Millisecond)
		close(stop)
		pulls.Wait()
	}, func() (bool, string) {
		d := delivered()
		return d == n, fmt.Sprintf("%d of %d recipients delivered", d, n)
	})
	for rcpt, c := range count {
		if c != 1 {
			t.Errorf("%s: %d deliveries", rcpt, c)
		}
	}
	if wrong > 0 {
		t.Errorf("%d deliveries with another message's body", wrong)
	}
	emptyQueue(t, q)
}

// Messages handed over while scans list todo/ are each delivered once.
func TestFreshExactlyOnce(t *testing.T) {
	freshRun(t, 300, nil, nil)
}

// More messages than the hand-over holds, queued while every delivery
// waits: those dropped are found by a scan, and each is delivered once.
func TestFreshOverflow(t *testing.T) {
	hold := make(chan struct{})
	freshRun(t, freshMax+100, hold, func() { close(hold) })
}
