package http

import (
	"net/http"

	"github.com/kipass/kipass"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own so that two
// servers in one process (tests, the demo) never collide.
type metrics struct {
	registry *prometheus.Registry
	visits   *prometheus.CounterVec
	// The visits counters by status, looked up once rather than per visit.
	visitsStored, visitsDuplicate, visitsRejected prometheus.Counter
	batchSize                                     prometheus.Histogram
	commitLatency                                 prometheus.Histogram
	shed                                          *prometheus.CounterVec
	purged                                        prometheus.Counter
	purgeRuns                                     *prometheus.CounterVec
	httpDuration                                  *prometheus.HistogramVec
	phoneCheckins                                 *prometheus.CounterVec
	traceQueries                                  *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.visits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_ingest_visits_total",
		Help: "Visits received by ingest, by answer (stored, duplicate, rejected).",
	}, []string{"status"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kipass_ingest_batch_size",
		Help:    "Visits per ingest batch.",
		Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000},
	})
	m.commitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kipass_ingest_commit_seconds",
		Help:    "Time from handing a batch to the store until it is durably committed.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	m.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_shed_requests_total",
		Help: "Requests answered 429 at once, by cause (inflight, store_queue, device_rate, streams).",
	}, []string{"cause"})
	m.purged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kipass_retention_purged_visits_total",
		Help: "Visits destroyed by the retention job.",
	})
	m.purgeRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_retention_runs_total",
		Help: "Runs of the retention job, by result (ok, error).",
	}, []string{"result"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kipass_http_request_duration_seconds",
		Help:    "HTTP request durations by route pattern and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "code"})
	m.phoneCheckins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_phone_checkins_total",
		Help: "Phone check-ins (안심콜) by answer.",
	}, []string{"status"})
	m.traceQueries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_trace_queries_total",
		Help: "Answered investigator queries by action.",
	}, []string{"action"})
	queueDepth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kipass_ingest_queue_depth",
		Help: "Batches waiting for the store's group-commit writer.",
	}, func() float64 { return float64(s.ingestStats().QueueDepth) })
	indexLag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kipass_visit_index_lag",
		Help: "Visits committed but not yet in the store's lookup index (SQLite): lookups scan them, and a growing lag means the indexer is failing.",
	}, func() float64 { return float64(s.ingestStats().IndexLag) })
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kipass_ingest_inflight",
		Help: "Ingest requests being handled now.",
	}, func() float64 { return float64(len(s.inflight)) })
	m.registry.MustRegister(m.visits, m.batchSize, m.commitLatency, m.shed, m.purged, m.purgeRuns,
		m.httpDuration, m.phoneCheckins, m.traceQueries, queueDepth, indexLag, inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.visitsStored = m.visits.WithLabelValues(kipass.VisitStored)
	m.visitsDuplicate = m.visits.WithLabelValues(kipass.VisitDuplicate)
	m.visitsRejected = m.visits.WithLabelValues(kipass.VisitRejected)
	for _, c := range []string{"inflight", "store_queue", "device_rate", "streams"} {
		m.shed.WithLabelValues(c)
	}
	return m
}

// Registry returns the server's Prometheus registry, for tests and for embedding.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

func (s *Server) handleMetrics() http.Handler {
	return promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{ErrorLog: nil})
}
