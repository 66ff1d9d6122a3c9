package system

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/qmailkit/qmailkit/smtpclient"
)

// Metrics counts what a System does, for MetricsHandler. Its zero value is
// ready; every method is safe for concurrent use.
type Metrics struct {
	// deliveries[channel][outcome]: channel 0 local, 1 remote; outcome 0
	// success, 1 deferral, 2 failure.
	deliveries [2][3]atomic.Int64
	mu         sync.Mutex
	conns      map[string]*connCount
}

type connCount struct{ total, active atomic.Int64 }

var outcomes = [3]string{"success", "deferral", "failure"}

func (m *Metrics) delivered(remote bool, err error) {
	ch := 0
	if remote {
		ch = 1
	}
	switch {
	case err == nil:
		m.deliveries[ch][0].Add(1)
	case smtpclient.IsPermanent(err):
		m.deliveries[ch][2].Add(1)
	default:
		m.deliveries[ch][1].Add(1)
	}
}

func (m *Metrics) server(name string) *connCount {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		m.conns = map[string]*connCount{}
	}
	c := m.conns[name]
	if c == nil {
		c = &connCount{}
		m.conns[name] = c
	}
	return c
}

// countListener counts the connections accepted from l and those still
// open. An accepted connection's Env method (tcprules') is kept.
type countListener struct {
	net.Listener
	c *connCount
}

func (l countListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.total.Add(1)
	l.c.active.Add(1)
	cc := &countConn{Conn: conn, c: l.c}
	if e, ok := conn.(interface{ Env() map[string]string }); ok {
		return envConn{cc, e}, nil
	}
	return cc, nil
}

type countConn struct {
	net.Conn
	c    *connCount
	once sync.Once
}

func (c *countConn) Close() error {
	c.once.Do(func() { c.c.active.Add(-1) })
	return c.Conn.Close()
}

type envConn struct {
	*countConn
	e interface{ Env() map[string]string }
}

func (c envConn) Env() map[string]string { return c.e.Env() }

// MetricsHandler serves the System's metrics in Prometheus's text format
// (version 0.0.4): the queue's size as qmail-qstat counts it, deliveries
// by channel and outcome (as the deliverers reported them), and SMTP,
// submission and POP3 connections, accepted and open.
func (s *System) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Queue.Stat()
		if err != nil {
			http.Error(w, "queue: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m := &s.Metrics
		fmt.Fprintf(w, "# HELP qmailkit_queue_messages Messages in the queue.\n# TYPE qmailkit_queue_messages gauge\nqmailkit_queue_messages %d\n", st.Messages)
		fmt.Fprintf(w, "# HELP qmailkit_queue_unprocessed Messages not yet preprocessed (todo).\n# TYPE qmailkit_queue_unprocessed gauge\nqmailkit_queue_unprocessed %d\n", st.Unprocessed)
		fmt.Fprintf(w, "# HELP qmailkit_deliveries_total Deliveries by channel and outcome.\n# TYPE qmailkit_deliveries_total counter\n")
		for ch, name := range []string{"local", "remote"} {
			for o, outcome := range outcomes {
				fmt.Fprintf(w, "qmailkit_deliveries_total{channel=%q,outcome=%q} %d\n", name, outcome, m.deliveries[ch][o].Load())
			}
		}
		m.mu.Lock()
		names := []string{"smtp", "submission", "pop3"}
		counts := make([]*connCount, len(names))
		for i, n := range names {
			counts[i] = m.conns[n]
		}
		m.mu.Unlock()
		fmt.Fprintf(w, "# HELP qmailkit_connections_total Connections accepted.\n# TYPE qmailkit_connections_total counter\n")
		for i, n := range names {
			if counts[i] != nil {
				fmt.Fprintf(w, "qmailkit_connections_total{server=%q} %d\n", n, counts[i].total.Load())
			}
		}
		fmt.Fprintf(w, "# HELP qmailkit_connections_open Connections open.\n# TYPE qmailkit_connections_open gauge\n")
		for i, n := range names {
			if counts[i] != nil {
				fmt.Fprintf(w, "qmailkit_connections_open{server=%q} %d\n", n, counts[i].active.Load())
			}
		}
	})
}

// HealthHandler answers 200 "ok" while the queue can be read, 503
// otherwise.
func (s *System) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Queue.Stat(); err != nil {
			http.Error(w, "queue: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
