package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/httpjson"
)

// Server defaults.
const (
	DefaultMaxBodySize = 64 << 10 // a full record with MaxTests tests is about 20 KB
	DefaultMaxInflight = 512      // concurrent requests; more are answered 429 at once
)

// Config holds the credentials and tunables of a Server. Zero values take defaults.
type Config struct {
	AdminTokens  []string          // registry operators: create and change records
	IssuerTokens map[string]string // issuer name -> token: read holder facts
	MaxBodySize  int64             // bytes in a request body (default DefaultMaxBodySize)
	MaxInflight  int               // concurrent requests before shedding (default DefaultMaxInflight)
	Now          func() time.Time  // the clock facts are computed for (default time.Now)
	Logger       *slog.Logger      // never receives a person's facts or id (default slog.Default())
}

// ParseIssuerTokens parses "name:token,name2:token2", the form of --issuer-tokens.
func ParseIssuerTokens(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, token, ok := strings.Cut(part, ":")
		if !ok || name == "" || token == "" {
			return nil, fmt.Errorf("issuer token %d: want name:token", len(m)+1)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("issuer %q named twice", name)
		}
		m[name] = token
	}
	return m, nil
}

// Server serves the registry's HTTP API (docs/registry.md). It runs on any listener,
// so that `kipass demo` can run it in-process.
type Server struct {
	store    Store
	cfg      Config
	mux      *http.ServeMux
	srv      *http.Server
	routes   []string
	inflight chan struct{}
	metrics  *metrics
}

// NewServer returns a server of store with its routes registered.
func NewServer(store Store, cfg Config) *Server {
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = DefaultMaxBodySize
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{store: store, cfg: cfg, mux: http.NewServeMux(), inflight: make(chan struct{}, cfg.MaxInflight)}
	s.metrics = newMetrics()
	s.registerRoutes()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if len(cfg.AdminTokens) == 0 {
		cfg.Logger.Warn("registry: no admin token configured: record updates refuse every request")
	}
	if len(cfg.IssuerTokens) == 0 {
		cfg.Logger.Warn("registry: no issuer token configured: only admins can read facts")
	}
	return s
}

// Serve answers requests on ln until Shutdown; it then returns nil. Listen first and
// serve in a goroutine, so that a bind error comes back at once.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits until the requests in flight are
// answered or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Routes returns the pattern of every route, e.g. "GET /v1/persons/{id}".
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// Metrics returns the server's own Prometheus registry, served at /metrics.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics.registry }

// ServeHTTP serves one request with panic recovery, load shedding and metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.Logger.Error("registry: panic in handler", "route", r.Pattern, "panic", fmt.Sprint(v))
			if rw.status == 0 {
				s.error(rw, r, errors.New("panic"))
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.metrics.duration.WithLabelValues(route, strconv.Itoa(rw.code())).Observe(time.Since(start).Seconds())
	}()
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.metrics.shed.Inc()
		w.Header().Set("Retry-After", "1")
		s.error(rw, r, kipass.Errorf(kipass.ETOOMANY, "the registry is busy: retry in a second"))
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// handle registers a route and remembers its pattern for Routes and the OpenAPI check.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// statusWriter records the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// codes maps domain error codes to HTTP statuses: the one place in the registry that
// does, the same mapping as the central service's.
var codes = map[string]int{
	kipass.EINVALID:      http.StatusBadRequest,
	kipass.EUNAUTHORIZED: http.StatusUnauthorized,
	kipass.EFORBIDDEN:    http.StatusForbidden,
	kipass.ENOTFOUND:     http.StatusNotFound,
	kipass.ECONFLICT:     http.StatusConflict,
	kipass.ETOOMANY:      http.StatusTooManyRequests,
	kipass.EUNAVAILABLE:  http.StatusServiceUnavailable,
	kipass.EINTERNAL:     http.StatusInternalServerError,
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a domain error as a client sees it: a stable code, the field at fault
// when there is one, and a message safe to show.
type ErrorBody struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// error writes err as a JSON error. Internal errors are logged (without request data)
// and answered with a generic message.
func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	code := kipass.ErrorCode(err)
	switch code {
	case kipass.EINTERNAL:
		s.cfg.Logger.Error("registry: internal error", "route", r.Pattern, "err", err)
	case kipass.EUNAVAILABLE:
		s.cfg.Logger.Warn("registry: unavailable", "route", r.Pattern, "err", err)
	}
	status, ok := codes[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, &ErrorResponse{Error: ErrorBody{Code: code, Field: kipass.ErrorField(err), Message: kipass.ErrorMessage(err)}})
}

// writeJSON writes v with the status; answers are never cached, as they carry health
// records.
func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.WritePrivate(w, status, v) }

// Roles of a caller.
const (
	roleAdmin  = "admin"
	roleIssuer = "issuer"
)

// principal is an authenticated caller; Name is the issuer's name for issuers.
type principal struct {
	Role string
	Name string
}

// authenticate identifies the caller by its bearer token, comparing with every
// configured token in constant time.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	h := r.Header.Get("Authorization")
	if len(h) <= 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "missing bearer token")
	}
	tok := strings.TrimSpace(h[7:])
	var p *principal
	for _, t := range s.cfg.AdminTokens {
		if tokenEqual(tok, t) && p == nil {
			p = &principal{Role: roleAdmin, Name: "admin"}
		}
	}
	for name, t := range s.cfg.IssuerTokens {
		if tokenEqual(tok, t) && p == nil {
			p = &principal{Role: roleIssuer, Name: name}
		}
	}
	if p == nil {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "unknown credential")
	}
	return p, nil
}

// require authenticates the caller and checks that it has one of the roles.
func (s *Server) require(r *http.Request, roles ...string) (*principal, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	for _, role := range roles {
		if p.Role == role {
			return p, nil
		}
	}
	return nil, kipass.Errorf(kipass.EFORBIDDEN, "this credential may not do that")
}

// tokenEqual compares a presented token with a configured one in constant time; both
// are hashed first so that not even their lengths leak.
func tokenEqual(presented, want string) bool {
	if want == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// metrics are the server's Prometheus metrics, in a registry of its own so that
// several servers in one process (tests, the demo) never collide.
type metrics struct {
	registry *prometheus.Registry
	duration *prometheus.HistogramVec
	lookups  *prometheus.CounterVec
	writes   *prometheus.CounterVec
	shed     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kipass_registry_http_request_duration_seconds",
		Help:    "Registry HTTP request durations by route pattern and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "code"})
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_registry_lookups_total",
		Help: "Holder fact look-ups by issuer and result (found, not_found, error).",
	}, []string{"issuer", "result"})
	m.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kipass_registry_writes_total",
		Help: "Record writes through the API by kind (put, dose, test, recovery) and result (changed, unchanged, error).",
	}, []string{"kind", "result"})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kipass_registry_shed_requests_total",
		Help: "Requests answered 429 at once because too many were in flight.",
	})
	m.registry.MustRegister(m.duration, m.lookups, m.writes, m.shed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
