// Package http serves the central visit ledger over HTTP/JSON (the /v1 API) and holds a
// small Go client for it. Other packages import it as kiphttp.
package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/trust"
)

// Body size limits. A full batch of 1000 visits with every field is about 500 KB.
const (
	MaxBodySize      = 64 << 10 // any request but a visit batch
	MaxVisitBodySize = 2 << 20  // POST /v1/visits
	MaxBatchSize     = 1000     // visits in one batch
)

// Checker reports the health of the store: Ping says it is reachable, Ready that it is
// reachable and its migrations are current.
type Checker interface {
	Ping(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Config holds the tunables of a Server. Zero values take the defaults of DefaultConfig.
type Config struct {
	MaxInflightIngest      int           // concurrent POST /v1/visits; more are shed with 429
	DeviceRate             float64       // ingest requests per second per device
	DeviceBurst            int           // bucket size of the per-device limit
	MaxTrackedDevices      int           // bound of the per-device limiter's map
	DeviceCacheTTL         time.Duration // how long a looked-up device credential is trusted; <0 disables
	MaxStreams             int           // concurrent /v1/status/stream subscribers
	RetentionInterval      time.Duration // how often visits past retention are purged
	StatusInterval         time.Duration // how often the health of the components is checked
	StreamHeartbeat        time.Duration // how often an unchanged status is re-sent on the stream
	CommitLatencyThreshold time.Duration // a slower commit marks ingest degraded
	EnrollmentCodeTTL      time.Duration // default lifetime of an enrollment code
}

// DefaultConfig returns the settings a production node starts with.
func DefaultConfig() Config {
	return Config{
		MaxInflightIngest:      64,
		DeviceRate:             5,
		DeviceBurst:            20,
		MaxTrackedDevices:      200_000,
		DeviceCacheTTL:         30 * time.Second,
		MaxStreams:             10_000,
		RetentionInterval:      time.Hour,
		StatusInterval:         5 * time.Second,
		StreamHeartbeat:        15 * time.Second,
		CommitLatencyThreshold: time.Second,
		EnrollmentCodeTTL:      24 * time.Hour,
	}
}

// Server is the central service's HTTP server. Set the services, the bundle and the
// credentials, then call Open; Close shuts it down gracefully.
type Server struct {
	ln     net.Listener
	server *http.Server
	mux    *http.ServeMux
	routes []string

	ctx    context.Context // cancelled by Close: ends streams and background jobs
	cancel context.CancelFunc
	wg     sync.WaitGroup

	bundle atomic.Pointer[bundleState]

	inflight chan struct{}
	streams  chan struct{}
	limiter  *rateLimiter
	devices  *deviceCache
	shed     shedCounter
	metrics  *metrics
	status   *statusHub

	lastStoreLatency atomic.Int64 // nanoseconds of the last StoreVisits, when the store reports none

	// Services the handlers use.
	VisitService    kipass.VisitService
	FacilityService kipass.FacilityService
	AuditService    kipass.AuditService
	NoticeService   kipass.NoticeService

	// DB reports the store's health for /readyz and the status page.
	DB Checker

	// IngestStats, when set, reports the store's group-commit queue.
	IngestStats func() kipass.IngestStats

	// Auth holds the credentials of the operators, investigators, auditors and gateway.
	Auth Auth

	// Config holds the tunables; set before Open.
	Config Config

	// Logger receives structured logs. Never a phone number, a name or a token.
	Logger *slog.Logger

	// Now is the clock; tests inject their own.
	Now func() time.Time
}

// bundleState is the trust bundle as served (signed bytes and ETag) and as used.
type bundleState struct {
	signed []byte
	etag   string
	bundle *trust.Bundle
}

// NewServer returns a Server with its routes registered and the default configuration.
func NewServer() *Server {
	s := &Server{
		mux:    http.NewServeMux(),
		Config: DefaultConfig(),
		Logger: slog.Default(),
		Now:    time.Now,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.status = newStatusHub()
	s.registerRoutes()
	s.server = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // the status stream lifts it for itself
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s
}

// SetBundle installs the signed trust bundle served at /v1/bundle and the verified
// bundle whose categories, regions and sealing key the server uses.
func (s *Server) SetBundle(signed []byte, b *trust.Bundle) {
	s.bundle.Store(&bundleState{signed: signed, etag: trust.ETag(signed), bundle: b})
}

// Bundle returns the verified trust bundle in use, or nil before SetBundle.
func (s *Server) Bundle() *trust.Bundle {
	if st := s.bundle.Load(); st != nil {
		return st.bundle
	}
	return nil
}

// Open starts serving on ln and the background jobs (status checks and retention).
func (s *Server) Open(ln net.Listener) error {
	if s.VisitService == nil || s.FacilityService == nil || s.AuditService == nil || s.NoticeService == nil {
		return errors.New("http: server needs its visit, facility, audit and notice services")
	}
	if s.bundle.Load() == nil {
		return errors.New("http: server needs a trust bundle")
	}
	c, def := &s.Config, DefaultConfig()
	fillDefaults(c, def)
	s.inflight = make(chan struct{}, c.MaxInflightIngest)
	s.streams = make(chan struct{}, c.MaxStreams)
	s.limiter = newRateLimiter(c.DeviceRate, c.DeviceBurst, c.MaxTrackedDevices)
	s.devices = newDeviceCache(c.DeviceCacheTTL, c.MaxTrackedDevices)
	s.server.ErrorLog = slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn)
	if len(s.Auth.AdminTokens) == 0 {
		s.Logger.Warn("no admin token configured: operator routes refuse every request")
	}
	s.ln = ln

	s.checkStatus(s.ctx) // a first status before the first request
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.monitor(s.ctx) }()
	go func() { defer s.wg.Done(); s.retention(s.ctx) }()
	go func() {
		defer s.wg.Done()
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Logger.Error("http serve", "err", err)
		}
	}()
	return nil
}

func fillDefaults(c *Config, def Config) {
	if c.MaxInflightIngest <= 0 {
		c.MaxInflightIngest = def.MaxInflightIngest
	}
	if c.DeviceRate <= 0 {
		c.DeviceRate = def.DeviceRate
	}
	if c.DeviceBurst <= 0 {
		c.DeviceBurst = def.DeviceBurst
	}
	if c.MaxTrackedDevices <= 0 {
		c.MaxTrackedDevices = def.MaxTrackedDevices
	}
	if c.DeviceCacheTTL == 0 {
		c.DeviceCacheTTL = def.DeviceCacheTTL
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = def.MaxStreams
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = def.RetentionInterval
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = def.StatusInterval
	}
	if c.StreamHeartbeat <= 0 {
		c.StreamHeartbeat = def.StreamHeartbeat
	}
	if c.CommitLatencyThreshold <= 0 {
		c.CommitLatencyThreshold = def.CommitLatencyThreshold
	}
	if c.EnrollmentCodeTTL <= 0 {
		c.EnrollmentCodeTTL = def.EnrollmentCodeTTL
	}
}

// Addr returns the address the server listens on, once open.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL returns the base URL of the open server, e.g. http://127.0.0.1:8080.
func (s *Server) URL() string {
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// Close stops accepting connections, ends the status streams and background jobs, and
// waits until the requests in flight are answered or ctx is done.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	err := s.server.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// ServeHTTP serves one request through the middleware: panic recovery, logging and
// metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Logger.Error("panic in handler", "route", r.Pattern, "panic", fmt.Sprint(v))
			if rw.status == 0 {
				s.Error(rw, r, errors.New("panic"))
			}
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		d := time.Since(start)
		s.metrics.httpDuration.WithLabelValues(route, strconv.Itoa(rw.code())).Observe(d.Seconds())
		if route != "GET /v1/status/stream" && s.Logger.Enabled(r.Context(), slog.LevelDebug) {
			s.Logger.Debug("request", "route", route, "status", rw.code(), "duration_ms", float64(d.Microseconds())/1000)
		}
	}()
	s.mux.ServeHTTP(rw, r)
}

// handle registers a route and remembers its pattern for the OpenAPI check.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Handle serves h at pattern beside the API, such as the web scanner at /scan/. It
// is kept out of Routes: those are the API that the OpenAPI document describes.
// Call it before Open.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Routes returns the patterns of every registered route, e.g. "POST /v1/visits".
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

func (s *Server) registerRoutes() {
	s.registerOpenAPIRoutes()
	s.registerBundleRoutes()
	s.registerFacilityRoutes()
	s.registerVisitRoutes()
	s.registerPhoneRoutes()
	s.registerTraceRoutes()
	s.registerStatusRoutes()
	s.mux.HandleFunc("/", s.notFound)
}

// notFound answers a request no route matches: 405 with Allow when the path exists
// for other methods, else 404, both as JSON errors.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, &ErrorResponse{Error: ErrorBody{Code: kipass.EINVALID, Message: "method not allowed: use " + strings.Join(allow, ", ")}})
		return
	}
	s.Error(w, r, kipass.Errorf(kipass.ENOTFOUND, "no such route"))
}

// statusWriter records the status code for the logs and metrics.
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

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// codes maps domain error codes to HTTP statuses: the one place that does.
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

// ErrorStatusCode returns the HTTP status of a domain error code.
func ErrorStatusCode(code string) int {
	if v, ok := codes[code]; ok {
		return v
	}
	return http.StatusInternalServerError
}

// FromErrorStatusCode returns the domain error code of an HTTP status.
func FromErrorStatusCode(status int) string {
	for k, v := range codes {
		if v == status {
			return k
		}
	}
	return kipass.EINTERNAL
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a domain error as a client sees it.
type ErrorBody struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error writes err as a JSON error. Internal errors are logged and answered with a
// generic message; a 429 carries Retry-After (one second unless set already).
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := kipass.ErrorCode(err), kipass.ErrorMessage(err)
	switch {
	case code == kipass.EINTERNAL && r.Context().Err() != nil:
		// The client left first (its request context ended): nothing went wrong here.
		s.Logger.Debug("request abandoned by the client", "route", r.Pattern)
		code, msg = kipass.EUNAVAILABLE, "request abandoned"
	case code == kipass.EINTERNAL:
		s.Logger.Error("internal error", "route", r.Pattern, "err", err)
	case code == kipass.EUNAVAILABLE:
		s.Logger.Warn("unavailable", "route", r.Pattern, "err", err)
	}
	status := ErrorStatusCode(code)
	if w.Header().Get("Retry-After") == "" {
		switch status {
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "5")
		}
	}
	writeJSON(w, status, &ErrorResponse{Error: ErrorBody{Code: code, Field: kipass.ErrorField(err), Message: msg}})
}
