// Package issuer is the QR issuer of kipass (the role Naver, Kakao, Toss and PASS
// played): it enrols visitors, mints their passes from cached registry facts, hands out
// offline passes, issues personal safe numbers, answers investigators through a
// hash-chained audit log, and serves the wallet page. It keeps its own SQLite database
// and key file in a data directory.
//
// A surge costs a signature and a cache hit: facts are cached per person and refreshed
// in the background, so minting goes on from cached facts while the registry is down.
package issuer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer/subject"
	"github.com/kipass/kipass/issuer/web"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/policy"
)

// Config is what an issuer service needs. DataDir, SigningKey and Facts are required;
// every other zero value takes the default documented on its field.
type Config struct {
	DataDir    string             // holds issuer.db and issuer-keys.json; made if missing
	SigningKey ed25519.PrivateKey // the issuer key that signs passes
	Facts      FactSource         // the immunization registry
	// Verifier checks a visitor's identity at enrolment (default: a ConsoleVerifier
	// that logs the one-time code).
	Verifier Verifier
	// InvestigatorTokens maps an investigator's name to their bearer token.
	InvestigatorTokens map[string]string
	// AuditorToken is the bearer token that reads and verifies the audit log.
	AuditorToken string
	// Rules words the holder's status (default policy.Default()).
	Rules *policy.Rules

	Now    func() time.Time // the clock of every issuer time (default time.Now)
	Logger *slog.Logger     // default slog.Default()

	PassTTL          time.Duration // lifetime of an online pass (default pass.DefaultTTL, 30 s)
	FactsTTL         time.Duration // facts older than this are stale (default 5 min)
	MaxFactsAge      time.Duration // facts older than this are not minted from (default 72 h)
	RegistryTimeout  time.Duration // one registry call (default 2 s)
	RegistryCooldown time.Duration // after a failure, calls fail fast this long (default 5 s; <0 disables)
	RefreshWorkers   int           // background refreshers (default 4)
	RefreshQueue     int           // bound of the refresh queue (default 10000)
	MaxCachedPeople  int           // facts kept in memory (default 1000000)

	KeyPolicy          subject.Policy      // key rotation and destruction (default subject.DefaultPolicy())
	SafeNumbers        subject.SafeNumbers // the safe-number space (default: all of it)
	SafeNumberLifetime time.Duration       // a safe number is replaced after this (default 28 days)
	RetentionInterval  time.Duration       // how often retention runs (default 1 h)
	EnrolmentTTL       time.Duration       // a pending enrolment expires after this (default 10 min)
	MaxCodeAttempts    int                 // wrong one-time codes before an enrolment is void (default 5)
	MaxOfflineAhead    time.Duration       // offline passes reach at most this far (default 24 h)
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Rules == nil {
		c.Rules = policy.Default()
	}
	def(&c.PassTTL, pass.DefaultTTL)
	def(&c.FactsTTL, 5*time.Minute)
	def(&c.MaxFactsAge, 72*time.Hour)
	def(&c.RegistryTimeout, 2*time.Second)
	def(&c.RegistryCooldown, 5*time.Second)
	def(&c.SafeNumberLifetime, kipass.Retention)
	def(&c.RetentionInterval, time.Hour)
	def(&c.EnrolmentTTL, 10*time.Minute)
	def(&c.MaxOfflineAhead, 24*time.Hour)
	if c.RefreshWorkers <= 0 {
		c.RefreshWorkers = 4
	}
	if c.RefreshQueue <= 0 {
		c.RefreshQueue = 10000
	}
	if c.MaxCachedPeople <= 0 {
		c.MaxCachedPeople = 1_000_000
	}
	if c.MaxCodeAttempts <= 0 {
		c.MaxCodeAttempts = 5
	}
	if c.KeyPolicy == (subject.Policy{}) {
		c.KeyPolicy = subject.DefaultPolicy()
	}
	if c.Verifier == nil {
		c.Verifier = &ConsoleVerifier{Logger: c.Logger, Now: c.Now}
	}
}

// Service is a running issuer: its database, keys, facts cache and background jobs.
type Service struct {
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	db      *store
	keys    *keyStore
	facts   *factCache
	words   *describer
	tokens  *tokenCache
	metrics *metrics
	keyID   string
	handler http.Handler
	// apiRoutes are the patterns registered by routes, for Routes.
	apiRoutes []string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open opens (creating if needed) the issuer's database and key file in cfg.DataDir,
// makes the keys the clock's day needs, and starts the background refreshers and the
// retention job. Close stops them.
func Open(cfg Config) (*Service, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("issuer: no data directory")
	}
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("issuer: no signing key")
	}
	if cfg.Facts == nil {
		return nil, errors.New("issuer: no fact source (registry)")
	}
	cfg.defaults()
	// Keys must outlive every pass: a seal key the longest pass life after its
	// retirement, day keys made before any pass for their day.
	if p := cfg.KeyPolicy; p.MaxPassLife < cfg.MaxOfflineAhead+MaxOfflineWindow || time.Duration(p.DaysAhead)*24*time.Hour < cfg.MaxOfflineAhead+24*time.Hour {
		return nil, fmt.Errorf("issuer: the key policy (pass life %s, %d days ahead) does not cover offline passes %s ahead", p.MaxPassLife, p.DaysAhead, cfg.MaxOfflineAhead)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	s := &Service{cfg: cfg, now: cfg.Now, log: cfg.Logger.With("service", "issuer"), metrics: newMetrics(),
		keyID: pass.KeyID(cfg.SigningKey.Public().(ed25519.PublicKey)), words: &describer{rules: cfg.Rules}}
	var err error
	if s.db, err = openStore(filepath.Join(cfg.DataDir, DBFile), s.now); err != nil {
		return nil, err
	}
	if s.keys, err = openKeyStore(filepath.Join(cfg.DataDir, KeyFile), cfg.KeyPolicy); err != nil {
		s.db.close()
		return nil, err
	}
	if _, err := s.keys.maintain(s.now()); err != nil {
		s.db.close()
		return nil, err
	}
	s.facts = &factCache{
		src: cfg.Facts, store: s.db, now: s.now, log: s.log, m: s.metrics,
		ttl: cfg.FactsTTL, maxAge: cfg.MaxFactsAge, timeout: cfg.RegistryTimeout, cooldown: cfg.RegistryCooldown,
		maxSize: int64(cfg.MaxCachedPeople), calls: make(map[string]*call), queue: make(chan string, cfg.RefreshQueue),
	}
	s.tokens = newTokenCache(s.now)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range cfg.RefreshWorkers {
		s.wg.Add(1)
		go s.facts.refresher(s.ctx, &s.wg)
	}
	s.wg.Add(1)
	go s.retentionLoop()
	s.handler = s.routes()
	return s, nil
}

// Close stops the background jobs and closes the database. It is safe to call more
// than once.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		err = s.db.close()
	})
	return err
}

// Handler returns the issuer's HTTP handler: the /v1 API, the wallet page at /wallet,
// health, readiness and metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// KeyID returns the key id of the issuer's signing key, as passes carry it.
func (s *Service) KeyID() string { return s.keyID }

func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.Handler) {
		s.apiRoutes = append(s.apiRoutes, pattern)
		mux.Handle(pattern, h)
	}
	handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	handle("GET /readyz", http.HandlerFunc(s.handleReady))
	handle("GET /metrics", s.metrics.handler())
	handle("GET /v1/openapi.json", http.HandlerFunc(handleOpenAPI))
	handle("POST /v1/enrolments", http.HandlerFunc(s.handleEnrol))
	handle("POST /v1/enrolments/{id}/verify", http.HandlerFunc(s.handleVerify))
	handle("GET /v1/pass", http.HandlerFunc(s.handlePass))
	handle("GET /v1/passes/offline", http.HandlerFunc(s.handleOffline))
	handle("GET /v1/safe-number", http.HandlerFunc(s.handleSafeNumber))
	handle("POST /v1/trace/day-tags", http.HandlerFunc(s.handleDayTags))
	handle("POST /v1/trace/resolve", http.HandlerFunc(s.handleResolve))
	handle("GET /v1/audit", http.HandlerFunc(s.handleListAudit))
	handle("GET /v1/audit/verify", http.HandlerFunc(s.handleVerifyAudit))

	// The wallet page and the fallbacks are not part of the API document.
	wallet := web.Handler()
	mux.Handle("GET /wallet", wallet)
	mux.Handle("GET /wallet/", wallet)
	mux.Handle("GET /{$}", http.RedirectHandler("/wallet", http.StatusFound))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, kipass.Errorf(kipass.ENOTFOUND, "no such route: %s %s", r.Method, r.URL.Path))
	})
	return s.metrics.instrument(mux)
}

// Routes lists the patterns of the API routes ("GET /v1/pass", ...), which the
// OpenAPI document describes.
func (s *Service) Routes() []string { return append([]string(nil), s.apiRoutes...) }

func (s *Service) handleReady(w http.ResponseWriter, r *http.Request) {
	if err := s.db.ready(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	k := s.keys.get()
	if len(k.SealKeys) == 0 || !k.HasDay(kipass.DateOf(s.now())) {
		s.writeError(w, r, kipass.Errorf(kipass.EUNAVAILABLE, "keys for today are missing"))
		return
	}
	// The registry being down does not make the issuer unready: it mints from cache.
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "registry_ok": s.now().UnixNano() >= s.facts.breakerUntil.Load()})
}
