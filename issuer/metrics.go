package issuer

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the issuer's Prometheus metrics, in a registry of its own so that two
// services in one process (tests, the demo) never collide.
type metrics struct {
	registry         *prometheus.Registry
	minted           *prometheus.CounterVec
	staleMints       prometheus.Counter
	cacheHits        prometheus.Counter
	cacheMisses      prometheus.Counter
	registryCalls    prometheus.Counter
	registryFailures prometheus.Counter
	refreshQueue     prometheus.Gauge
	refreshDropped   prometheus.Counter
	destroyed        *prometheus.CounterVec
	retentionRuns    *prometheus.CounterVec
	traceQueries     *prometheus.CounterVec
	enrolments       *prometheus.CounterVec
	httpDuration     *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.registry.MustRegister(c)
		return c
	}
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.registry.MustRegister(c)
		return c
	}
	m.minted = vec("kipass_issuer_passes_minted_total", "Passes minted, by kind (online, offline).", "kind")
	m.staleMints = counter("kipass_issuer_stale_mints_total", "Online passes minted from facts older than the facts TTL (registry not confirming).")
	m.cacheHits = counter("kipass_issuer_facts_cache_hits_total", "Facts look-ups answered from memory.")
	m.cacheMisses = counter("kipass_issuer_facts_cache_misses_total", "Facts look-ups not answered from memory (database or registry).")
	m.registryCalls = counter("kipass_issuer_registry_calls_total", "Calls made to the immunization registry.")
	m.registryFailures = counter("kipass_issuer_registry_failures_total", "Registry calls that failed (unreachable, timed out or unusable).")
	m.refreshDropped = counter("kipass_issuer_refresh_dropped_total", "Background refreshes dropped because the queue was full.")
	m.destroyed = vec("kipass_issuer_retention_destroyed_total", "Items destroyed by retention, by kind.", "kind")
	m.retentionRuns = vec("kipass_issuer_retention_runs_total", "Runs of the retention job, by result (ok, error).", "result")
	m.traceQueries = vec("kipass_issuer_trace_queries_total", "Investigator queries answered, by action.", "action")
	m.enrolments = vec("kipass_issuer_enrolments_total", "Enrolment steps, by result.", "result")
	m.refreshQueue = prometheus.NewGauge(prometheus.GaugeOpts{Name: "kipass_issuer_refresh_queue_depth", Help: "Facts refreshes waiting in the queue."})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kipass_issuer_http_request_duration_seconds", Help: "HTTP request durations by route pattern and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "code"})
	m.registry.MustRegister(m.refreshQueue, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusWriter records the status code of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status written.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument observes the duration of each request by route pattern. It measures with
// the wall clock: durations are not domain times.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		m.httpDuration.WithLabelValues(route, strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}
