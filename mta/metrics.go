package mta

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qmailkit/qmailkit/authlimit"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
)

// Metrics counts what a System does, in a Prometheus registry of its own
// (no global state): deliveries by channel and outcome, connections by
// server, the queue's size at each scrape, and the Go runtime's and the
// process's own metrics (among them resident memory). Use NewMetrics; every
// method is safe for concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	deliveries *prometheus.CounterVec
	connsTotal *prometheus.CounterVec
	connsOpen  *prometheus.GaugeVec
	authEvents *prometheus.CounterVec
	authDelay  prometheus.Histogram
}

// NewMetrics makes the registry of a System whose queue q is counted at
// each scrape.
func NewMetrics(q *queue.Queue) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_deliveries_total", Help: "Deliveries by channel and outcome.",
		}, []string{"channel", "outcome"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmailkit_connections_total", Help: "Connections accepted.",
		}, []string{"server"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qmailkit_connections_open", Help: "Connections open.",
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
	m.reg.MustRegister(m.deliveries, m.connsTotal, m.connsOpen, m.authEvents, m.authDelay, queueCollector{q},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) delivered(remote bool, err error) {
	ch := "local"
	if remote {
		ch = "remote"
	}
	outcome := "success"
	switch {
	case err == nil:
	case smtpclient.IsPermanent(err):
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

// authCollector reports an authlimit.Limiter's failed checks and the
// clients and accounts it tracks.
type authCollector struct{ l *authlimit.Limiter }

var (
	authFailed  = prometheus.NewDesc("qmailkit_auth_failures_total", "Logins refused for wrong credentials (POP3 and SMTP AUTH).", nil, nil)
	authTracked = prometheus.NewDesc("qmailkit_auth_tracked", "Clients and accounts with failed logins being counted.", []string{"kind"}, nil)
)

func (c authCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- authFailed
	ch <- authTracked
}

func (c authCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(authFailed, prometheus.CounterValue, float64(st.Failed))
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

// queueCollector reports the queue's size, as qmail-qstat counts it, from
// one scan per scrape.
type queueCollector struct{ q *queue.Queue }

var (
	queueMessages    = prometheus.NewDesc("qmailkit_queue_messages", "Messages in the queue.", nil, nil)
	queueUnprocessed = prometheus.NewDesc("qmailkit_queue_unprocessed", "Messages not yet preprocessed (todo).", nil, nil)
)

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessages
	ch <- queueUnprocessed
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.q.Stat()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueMessages, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(queueUnprocessed, prometheus.GaugeValue, float64(st.Unprocessed))
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
