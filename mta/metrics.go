package mta

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/authlimit"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// Metrics counts what a System does, in a Prometheus registry of its own
// (no global state): deliveries by channel and outcome and their latency,
// connections by server, rejections by server and reason, failed TLS
// handshakes and AUTH attempts by server, the queue's size and the age of
// its oldest message (from the counts the scheduler keeps in memory: a
// scrape reads no directory), and the Go runtime's and the process's own
// metrics (among them resident memory). Use NewMetrics; every method is
// safe for concurrent use.
//
// The metric names: qmailkit_deliveries_total{channel,outcome},
// qmailkit_delivery_latency_seconds{channel,outcome} (a histogram of the
// time from a message's arrival to each recipient's final delivery or
// bounce), qmailkit_connections_total{server},
// qmailkit_connections_open{server},
// qmailkit_rejections_total{server,reason} (the reason tokens of the
// smtpserver and pop3 log lines), qmailkit_tls_failures_total{server},
// qmailkit_auth_failures_total{server}, qmailkit_auth_throttled_total{event},
// qmailkit_auth_delay_seconds, qmailkit_auth_tracked{kind},
// qmailkit_queue_messages, qmailkit_queue_unprocessed,
// qmailkit_queue_oldest_age_seconds and qmailkit_scheduler_up.
type Metrics struct {
	reg          *prometheus.Registry
	deliveries   *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	connsTotal   *prometheus.CounterVec
	connsOpen    *prometheus.GaugeVec
	authEvents   *prometheus.CounterVec
	authDelay    prometheus.Histogram
	rejections   *prometheus.CounterVec
	tlsFailures  *prometheus.CounterVec
	authFailures *prometheus.CounterVec

	sched atomic.Pointer[queue.Scheduler] // whose counts are scraped
	now   func() time.Time                // for the oldest message's age; nil: time.Now

	mu      sync.Mutex
	servers []servedServer // for the health check, in the order watched
	watched map[any]bool   // the servers watched
}

// servedServer is a network server Run serves, for the health check.
type servedServer struct {
	name    string
	serving func() bool
}

// NewMetrics makes a System's registry. The queue's gauges come from the
// scheduler given to watchScheduler.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_deliveries_total", Help: "Deliveries by channel and outcome.",
		}, []string{"channel", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qmailkit_delivery_latency_seconds",
			Help: "Time from a message's arrival in the queue to each recipient's final delivery (success) or bounce (failure), by channel.",
			// From a local delivery in milliseconds to a bounce after the
			// queue lifetime (a week).
			Buckets: []float64{0.01, 0.05, 0.25, 1, 5, 30, 120, 600, 3600, 4 * 3600, 86400, 7 * 86400},
		}, []string{"channel", "outcome"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_connections_total", Help: "Connections accepted.",
		}, []string{"server"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qmailkit_connections_open", Help: "Connections open.",
		}, []string{"server"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_rejections_total",
			Help: "Rejections (refused commands, logins, connections) by server and reason, as in the servers' log lines.",
		}, []string{"server", "reason"}),
		tlsFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_tls_failures_total", Help: "Failed TLS handshakes (STARTTLS, STLS, implicit TLS) by server.",
		}, []string{"server"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_auth_failures_total", Help: "Logins (POP3, SMTP AUTH) refused for wrong credentials, by server.",
		}, []string{"server"}),
	}
	m.authEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qmailkit_auth_throttled_total",
		Help: "Logins (POP3 and SMTP AUTH) delayed or refused after repeated failures, by event (delay, refuse).",
	}, []string{"event"})
	m.authDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qmailkit_auth_delay_seconds",
		Help:    "How long delayed logins waited before their check.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
	})
	for _, e := range []string{authlimit.EventDelay, authlimit.EventRefuse} {
		m.authEvents.WithLabelValues(e)
	}
	for _, ch := range []string{"local", "remote"} {
		for _, o := range []string{"success", "deferral", "failure"} {
			m.deliveries.WithLabelValues(ch, o) // present from the start, at 0
		}
	}
	m.reg.MustRegister(m.deliveries, m.latency, m.connsTotal, m.connsOpen, m.authEvents, m.authDelay,
		m.rejections, m.tlsFailures, m.authFailures, queueCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchScheduler takes the queue's gauges from sched's in-memory counts
// and the delivery latency from its final outcomes (its Observe, which
// is chained to any already set). Call it before sched runs.
func (m *Metrics) watchScheduler(sched *queue.Scheduler) {
	prev := sched.Observe
	sched.Observe = func(o queue.Outcome) {
		m.observeDelivery(o)
		if prev != nil {
			prev(o)
		}
	}
	m.sched.Store(sched)
}

// observeDelivery is a Scheduler's Observe: the latency of a final
// outcome.
func (m *Metrics) observeDelivery(o queue.Outcome) {
	ch, outcome := "local", "success"
	if o.Remote {
		ch = "remote"
	}
	if !o.Success {
		outcome = "failure"
	}
	m.latency.WithLabelValues(ch, outcome).Observe(o.Age.Seconds())
}

// watchServer counts the rejections of srv (an *smtpserver.Server or a
// *pop3.Server) under the server label name, chaining any Rejected hook
// already set, and has the health check ask it whether it serves. Call it
// before srv serves; watching a server again does nothing.
func (m *Metrics) watchServer(name string, srv any) {
	m.mu.Lock()
	seen := m.watched[srv]
	if m.watched == nil {
		m.watched = map[any]bool{}
	}
	m.watched[srv] = true
	m.mu.Unlock()
	if seen {
		return // a second Run with the same servers: hooks are in place
	}
	m.tlsFailures.WithLabelValues(name)
	m.authFailures.WithLabelValues(name)
	var serving func() bool
	switch srv := srv.(type) {
	case *smtpserver.Server:
		prev := srv.Rejected
		srv.Rejected = func(r smtpserver.Rejection) {
			m.rejected(name, r.Reason)
			if prev != nil {
				prev(r)
			}
		}
		serving = srv.Serving
	case *pop3.Server:
		prev := srv.Rejected
		srv.Rejected = func(r pop3.Rejection) {
			m.rejected(name, r.Reason)
			if prev != nil {
				prev(r)
			}
		}
		serving = srv.Serving
	case interface{ Serving() bool }:
		serving = srv.Serving
	default:
		return
	}
	m.mu.Lock()
	m.servers = append(m.servers, servedServer{name, serving})
	m.mu.Unlock()
}

// rejected counts one rejection.
func (m *Metrics) rejected(server, reason string) {
	m.rejections.WithLabelValues(server, reason).Inc()
	switch reason {
	case smtpserver.ReasonTLS:
		m.tlsFailures.WithLabelValues(server).Inc()
	case smtpserver.ReasonAuth:
		m.authFailures.WithLabelValues(server).Inc()
	}
}

func (m *Metrics) delivered(remote bool, err error) {
	ch := "local"
	if remote {
		ch = "remote"
	}
	outcome := "success"
	switch {
	case err == nil:
	case qmailkit.IsPermanent(err):
		outcome = "failure"
	default:
		outcome = "deferral"
	}
	m.deliveries.WithLabelValues(ch, outcome).Inc()
}

// observeAuth is an authlimit.Limiter's Observe: the throttled logins
// by event, and the delays waited.
func (m *Metrics) observeAuth(event string, delay time.Duration) {
	m.authEvents.WithLabelValues(event).Inc()
	if event == authlimit.EventDelay {
		m.authDelay.Observe(delay.Seconds())
	}
}

// authCollector reports the clients and accounts an authlimit.Limiter
// tracks. (Failed logins are qmailkit_auth_failures_total, by server,
// from the servers' Rejected hooks.)
type authCollector struct{ l *authlimit.Limiter }

var authTracked = prometheus.NewDesc("qmailkit_auth_tracked", "Clients and accounts with failed logins being counted.", []string{"kind"}, nil)

func (c authCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- authTracked
}

func (c authCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(authTracked, prometheus.GaugeValue, float64(st.Clients), "client")
	ch <- prometheus.MustNewConstMetric(authTracked, prometheus.GaugeValue, float64(st.Accounts), "account")
}

// connCount is one server's pair of connection metrics.
type connCount struct {
	total prometheus.Counter
	open  prometheus.Gauge
}

func (m *Metrics) server(name string) connCount {
	return connCount{total: m.connsTotal.WithLabelValues(name), open: m.connsOpen.WithLabelValues(name)}
}

// queueCollector reports the queue's size and the age of its oldest
// message from the counts the watched scheduler keeps in memory
// (queue.Scheduler.Stats): a scrape costs the same for an empty queue and
// for a million messages. While the scheduler does not run, only
// qmailkit_scheduler_up (0) is reported.
type queueCollector struct{ m *Metrics }

var (
	queueMessages    = prometheus.NewDesc("qmailkit_queue_messages", "Messages in the queue, as the scheduler counts them.", nil, nil)
	queueUnprocessed = prometheus.NewDesc("qmailkit_queue_unprocessed", "Messages not yet preprocessed (todo).", nil, nil)
	queueOldest      = prometheus.NewDesc("qmailkit_queue_oldest_age_seconds", "Age of the oldest message in the queue (0 when empty).", nil, nil)
	schedulerUp      = prometheus.NewDesc("qmailkit_scheduler_up", "1 while the scheduler runs, else 0.", nil, nil)
)

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessages
	ch <- queueUnprocessed
	ch <- queueOldest
	ch <- schedulerUp
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	sched := c.m.sched.Load()
	var st queue.SchedulerStats
	if sched != nil {
		st = sched.Stats()
	}
	if !st.Running {
		ch <- prometheus.MustNewConstMetric(schedulerUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(schedulerUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(queueUnprocessed, prometheus.GaugeValue, float64(st.Unprocessed))
	age := 0.0
	if !st.Oldest.IsZero() {
		now := time.Now
		if c.m.now != nil {
			now = c.m.now
		}
		age = max(now().Sub(st.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, age)
}

// countListener counts the connections accepted from l and those still
// open. An accepted connection's Env method (tcprules') is kept.
type countListener struct {
	net.Listener
	c connCount
}

func (l countListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.total.Inc()
	l.c.open.Inc()
	cc := &countConn{Conn: conn, c: l.c}
	if e, ok := conn.(interface{ Env() map[string]string }); ok {
		return envConn{cc, e}, nil
	}
	return cc, nil
}

type countConn struct {
	net.Conn
	c    connCount
	once sync.Once
}

func (c *countConn) Close() error {
	c.once.Do(func() { c.c.open.Dec() })
	return c.Conn.Close()
}

type envConn struct {
	*countConn
	e interface{ Env() map[string]string }
}

func (c envConn) Env() map[string]string { return c.e.Env() }

// MetricsHandler serves the System's metrics in Prometheus's exposition
// formats (see Metrics).
func (s *System) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.Metrics.reg, promhttp.HandlerOpts{})
}

// healthHeartbeatMax is how old the scheduler's heartbeat may be (its
// loop goes round at least every 10 seconds when idle) before the health
// check calls it stuck.
const healthHeartbeatMax = time.Minute

// HealthCheck is the state of one health check (see System.Health).
type HealthCheck struct {
	Name   string `json:"name"`            // scheduler, listener:NAME or disk
	Status string `json:"status"`          // "ok" or "fail"
	Error  string `json:"error,omitempty"` // why it failed
}

// Health runs the health checks: "scheduler" (Run's scheduler is running
// and its loop went round in the last minute), one "listener:NAME" per
// server Run serves (its Serve is accepting connections), and "disk"
// (the queue's file system has the free space and inodes a new
// transaction needs, as SMTP's MAIL checks). ok is true when all pass.
func (s *System) Health() (checks []HealthCheck, ok bool) {
	now := time.Now()
	add := func(name string, err error) {
		c := HealthCheck{Name: name, Status: "ok"}
		if err != nil {
			c.Status, c.Error = "fail", err.Error()
		}
		checks = append(checks, c)
	}
	st := s.Scheduler.Stats()
	switch {
	case !st.Running:
		add("scheduler", errors.New("not running"))
	case now.Sub(st.Heartbeat) > healthHeartbeatMax:
		add("scheduler", fmt.Errorf("no heartbeat for %v", now.Sub(st.Heartbeat).Round(time.Second)))
	default:
		add("scheduler", nil)
	}
	s.Metrics.mu.Lock()
	servers := append([]servedServer(nil), s.Metrics.servers...)
	s.Metrics.mu.Unlock()
	for _, srv := range servers {
		var err error
		if !srv.serving() {
			err = errors.New("not serving")
		}
		add("listener:"+srv.name, err)
	}
	var err error
	if s.space != nil {
		if err = s.space.check(now); err != nil {
			var r smtpserver.Reply
			if errors.As(err, &r) {
				err = errors.New("free space or inodes below the minimum")
			}
		}
	}
	add("disk", err)
	ok = true
	for _, c := range checks {
		ok = ok && c.Status == "ok"
	}
	return checks, ok
}

// HealthHandler answers a health check: 200 when every check of Health
// passes, 503 otherwise, with a JSON body naming each check and its state:
//
//	{"status":"ok","checks":[{"name":"scheduler","status":"ok"},
//	 {"name":"listener:smtp","status":"ok"},{"name":"disk","status":"ok"}]}
//
// A failing check has "status":"fail" and an "error".
func (s *System) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks, ok := s.Health()
		body := struct {
			Status string        `json:"status"`
			Checks []HealthCheck `json:"checks"`
		}{"ok", checks}
		code := http.StatusOK
		if !ok {
			body.Status, code = "fail", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	})
}
