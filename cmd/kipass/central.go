package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/postgres"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/trust"
	scanweb "github.com/kipass/kipass/web/scanner"
	webstatus "github.com/kipass/kipass/web/status"
)

func init() {
	services["central"] = func(ctx context.Context, env *Env, args []string) error {
		m := newCentralMain(env)
		if err := m.ParseFlags(args); err != nil {
			return err
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			return err
		}
		<-ctx.Done()
		return m.Close()
	}
}

// CentralDBFile is the name of the central database file in the --data directory.
const CentralDBFile = "central.db"

// centralStore is what central needs of a database: the services, health checks,
// ingest statistics and a Close that drains the ingest queue.
type centralStore interface {
	kipass.VisitService
	kipass.FacilityService
	kipass.AuditService
	kipass.NoticeService
	Ping(ctx context.Context) error
	Ready(ctx context.Context) error
	IngestStats() kipass.IngestStats
	Close() error
}

// centralMain is `kipass serve central`: the visit ledger's HTTP service on SQLite or
// PostgreSQL. Tests run it in-process: ParseFlags, Run, then Close.
type centralMain struct {
	env *Env

	Addr            string
	DataDir         string
	PostgresDSN     string
	BundlePath      string
	RootKeyPath     string
	AdminTokens     []string
	Investigators   map[string]string
	AuditorTokens   []string
	PhoneSecret     string
	QueueSize       int
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
	LogFormat       string
	Config          kiphttp.Config

	// Now is the clock of the server and the store; tests set it.
	Now func() time.Time
	// Mounts are web front ends served beside the API (pattern -> handler), such as
	// the scanner at /scan/.
	Mounts map[string]http.Handler

	logger *slog.Logger
	db     centralStore
	server *kiphttp.Server
}

func newCentralMain(env *Env) *centralMain {
	return &centralMain{env: env, Config: kiphttp.DefaultConfig(), Now: time.Now}
}

// ParseFlags reads the command line. Every flag has a KIPASS_* environment variable
// that sets its default, so secrets need not appear on the command line; a flag given
// explicitly wins.
func (m *centralMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve central", flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	env := func(name, def string) string { return envOr(m.env, name, def) }
	c := &m.Config
	fs.StringVar(&m.Addr, "addr", env("KIPASS_ADDR", "127.0.0.1:8080"), "listen address (KIPASS_ADDR)")
	fs.StringVar(&m.DataDir, "data", env("KIPASS_DATA", ""), "data directory for the SQLite database (KIPASS_DATA)")
	fs.StringVar(&m.PostgresDSN, "postgres", env("KIPASS_POSTGRES", ""), "PostgreSQL connection string; selects PostgreSQL (KIPASS_POSTGRES)")
	fs.StringVar(&m.BundlePath, "bundle", env("KIPASS_BUNDLE", ""), "signed trust bundle file (KIPASS_BUNDLE)")
	fs.StringVar(&m.RootKeyPath, "root-key", env("KIPASS_ROOT_KEY", ""), "authority root public key file that signs the bundle (KIPASS_ROOT_KEY)")
	admin := fs.String("admin-token", env("KIPASS_ADMIN_TOKEN", ""), "operator bearer token(s), comma-separated (KIPASS_ADMIN_TOKEN)")
	inv := fs.String("investigator-tokens", env("KIPASS_INVESTIGATOR_TOKENS", ""), `investigator tokens "name:token,name2:token2" (KIPASS_INVESTIGATOR_TOKENS)`)
	auditor := fs.String("auditor-token", env("KIPASS_AUDITOR_TOKEN", ""), "auditor bearer token(s), comma-separated (KIPASS_AUDITOR_TOKEN)")
	fs.StringVar(&m.PhoneSecret, "phone-secret", env("KIPASS_PHONE_SECRET", ""), "HMAC secret of the telco gateway's 안심콜 webhook (KIPASS_PHONE_SECRET)")
	logLevel := fs.String("log-level", env("KIPASS_LOG_LEVEL", "info"), "debug, info, warn or error (KIPASS_LOG_LEVEL)")
	fs.StringVar(&m.LogFormat, "log-format", env("KIPASS_LOG_FORMAT", "text"), "text or json (KIPASS_LOG_FORMAT)")

	var err error
	intVar := func(p *int, name, envName string, def int, usage string) {
		v := def
		if s := env(envName, ""); s != "" {
			n, perr := strconv.Atoi(s)
			if perr != nil && err == nil {
				err = usageErrorf("%s: %q is not a number", envName, s)
			}
			v = n
		}
		fs.IntVar(p, name, v, usage+" ("+envName+")")
	}
	durVar := func(p *time.Duration, name, envName string, def time.Duration, usage string) {
		v := def
		if s := env(envName, ""); s != "" {
			d, perr := time.ParseDuration(s)
			if perr != nil && err == nil {
				err = usageErrorf("%s: %q is not a duration", envName, s)
			}
			v = d
		}
		fs.DurationVar(p, name, v, usage+" ("+envName+")")
	}
	floatRate := fs.String("device-rate", env("KIPASS_DEVICE_RATE", fmt.Sprint(c.DeviceRate)), "ingest requests per second per device (KIPASS_DEVICE_RATE)")
	intVar(&c.DeviceBurst, "device-burst", "KIPASS_DEVICE_BURST", c.DeviceBurst, "burst of the per-device ingest limit")
	intVar(&c.MaxInflightIngest, "max-inflight", "KIPASS_MAX_INFLIGHT", c.MaxInflightIngest, "concurrent ingest requests before shedding with 429")
	intVar(&m.QueueSize, "queue-size", "KIPASS_QUEUE_SIZE", 10000, "visits waiting for a commit before shedding with 429")
	durVar(&c.RetentionInterval, "retention-interval", "KIPASS_RETENTION_INTERVAL", c.RetentionInterval, "how often visits older than 28 days are destroyed")
	durVar(&c.StatusInterval, "status-interval", "KIPASS_STATUS_INTERVAL", c.StatusInterval, "how often component health is checked")
	durVar(&c.CommitLatencyThreshold, "slow-commit", "KIPASS_SLOW_COMMIT", c.CommitLatencyThreshold, "commit latency above which ingest is degraded")
	durVar(&m.ShutdownTimeout, "shutdown-timeout", "KIPASS_SHUTDOWN_TIMEOUT", 8*time.Second, "how long to finish in-flight requests on SIGTERM")
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if c.DeviceRate, err = strconv.ParseFloat(*floatRate, 64); err != nil || c.DeviceRate <= 0 {
		return usageErrorf("--device-rate: want a positive number")
	}
	if (m.DataDir == "") == (m.PostgresDSN == "") {
		return usageErrorf("give exactly one of --data DIR (SQLite) or --postgres DSN")
	}
	if m.BundlePath == "" || m.RootKeyPath == "" {
		return usageErrorf("--bundle and --root-key are required")
	}
	m.AdminTokens = splitList(*admin)
	m.AuditorTokens = splitList(*auditor)
	if m.Investigators, err = kiphttp.ParseInvestigatorTokens(*inv); err != nil {
		return usageErrorf("--investigator-tokens: %v", err)
	}
	if err := m.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErrorf("--log-level: %v", err)
	}
	if m.LogFormat != "text" && m.LogFormat != "json" {
		return usageErrorf("--log-format: want text or json")
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Run verifies the trust bundle, listens, opens the database and starts serving. It
// returns once the server is up; Close stops it.
func (m *centralMain) Run(ctx context.Context) error {
	m.logger = newLogger(m.env.Stderr, m.LogFormat, m.LogLevel)
	root, err := trust.ReadPublicKey(m.RootKeyPath)
	if err != nil {
		return fmt.Errorf("--root-key: %w", err)
	}
	signed, err := os.ReadFile(m.BundlePath)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	bundle, err := trust.Verify(signed, root, nil)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	if len(bundle.SealingKey) == 0 {
		return errors.New("--bundle: the bundle has no sealing key")
	}

	// Listen first: a taken port is reported at once, before the database opens.
	ln, err := net.Listen("tcp", m.Addr)
	if err != nil {
		return err
	}
	if m.db, err = m.openStore(ctx); err != nil {
		ln.Close()
		return err
	}

	s := kiphttp.NewServer()
	s.VisitService, s.FacilityService, s.AuditService, s.NoticeService = m.db, m.db, m.db, m.db
	s.DB = m.db
	s.IngestStats = m.db.IngestStats
	s.Auth = kiphttp.Auth{
		AdminTokens:        m.AdminTokens,
		InvestigatorTokens: m.Investigators,
		AuditorTokens:      m.AuditorTokens,
		PhoneSecret:        []byte(m.PhoneSecret),
	}
	s.Config = m.Config
	s.Logger = m.logger
	s.Now = m.Now
	s.SetBundle(signed, bundle)
	// The web scanner and the status page are served by every central node, on the
	// same origin as the API they call.
	s.Handle(scanweb.Prefix, scanweb.Handler(scanweb.Config{RootKey: root}))
	s.Handle(webstatus.Prefix, webstatus.Handler())
	for pattern, h := range m.Mounts {
		s.Handle(pattern, h)
	}
	if err := s.Open(ln); err != nil {
		ln.Close()
		return err
	}
	m.server = s
	m.logger.Info("central listening", "url", s.URL(), "backend", m.backend(), "bundle_version", bundle.Version)
	return nil
}

func (m *centralMain) backend() string {
	if m.PostgresDSN != "" {
		return "postgres"
	}
	return "sqlite"
}

func (m *centralMain) openStore(ctx context.Context) (centralStore, error) {
	if m.PostgresDSN != "" {
		db, err := postgres.OpenOptions(ctx, m.PostgresDSN, postgres.Options{QueueSize: m.QueueSize, Now: m.Now})
		if err != nil {
			return nil, fmt.Errorf("--postgres: %w", err)
		}
		return db, nil
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	db, err := sqlite.OpenOptions(filepath.Join(m.DataDir, CentralDBFile), sqlite.Options{QueueSize: m.QueueSize, Now: m.Now, Logger: m.logger})
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	return db, nil
}

// URL returns the base URL of the running server.
func (m *centralMain) URL() string { return m.server.URL() }

// Close stops accepting, finishes the requests in flight within ShutdownTimeout, then
// closes the database, which commits what is still queued.
func (m *centralMain) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout)
		if err := m.server.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
		cancel()
		m.server = nil
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
		m.db = nil
	}
	if m.logger != nil {
		m.logger.Info("central stopped")
	}
	return errors.Join(errs...)
}

// newLogger returns the structured logger of a service.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
