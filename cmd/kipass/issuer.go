package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/registry"
	"github.com/kipass/kipass/trust"
)

func init() {
	services["issuer"] = func(ctx context.Context, env *Env, args []string) error {
		m := newIssuerMain(env)
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

// issuerMain is `kipass serve issuer`: the QR issuer and the wallet page on its own
// SQLite database. Tests run it in-process: ParseFlags, Run, then Close.
type issuerMain struct {
	env *Env

	Addr              string
	DataDir           string
	KeyPath           string
	RegistryURL       string
	RegistryToken     string
	Investigators     map[string]string
	AuditorToken      string
	PassTTL           time.Duration
	FactsTTL          time.Duration
	MaxFactsAge       time.Duration
	RegistryTimeout   time.Duration
	RetentionInterval time.Duration
	ShutdownTimeout   time.Duration
	LogLevel          slog.Level
	LogFormat         string

	// Now is the issuer's clock; tests and the demo set it.
	Now func() time.Time
	// Verifier, when set, replaces the console one-time code (tests read codes).
	Verifier issuer.Verifier

	logger  *slog.Logger
	svc     *issuer.Service
	ln      net.Listener
	srv     *http.Server
	serveCh chan error
}

func newIssuerMain(env *Env) *issuerMain {
	return &issuerMain{env: env, Now: time.Now}
}

// ParseFlags reads the command line. Every flag has a KIPASS_* environment variable
// that sets its default, so that tokens need not appear on the command line.
func (m *issuerMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve issuer", flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	env := func(name, def string) string { return envOr(m.env, name, def) }
	fs.StringVar(&m.Addr, "addr", env("KIPASS_ADDR", "127.0.0.1:8081"), "listen address (KIPASS_ADDR)")
	fs.StringVar(&m.DataDir, "data", env("KIPASS_DATA", ""), "data directory: issuer.db and the issuer's key file (KIPASS_DATA)")
	fs.StringVar(&m.KeyPath, "key", env("KIPASS_ISSUER_KEY", ""), "issuer signing key file, as kipass authority add-issuer writes it (KIPASS_ISSUER_KEY)")
	fs.StringVar(&m.RegistryURL, "registry", env("KIPASS_REGISTRY", ""), "base URL of the immunization registry (KIPASS_REGISTRY)")
	fs.StringVar(&m.RegistryToken, "registry-token", env("KIPASS_REGISTRY_TOKEN", ""), "the issuer's bearer token at the registry (KIPASS_REGISTRY_TOKEN)")
	inv := fs.String("investigator-tokens", env("KIPASS_INVESTIGATOR_TOKENS", ""), `investigator tokens "name:token,name2:token2" (KIPASS_INVESTIGATOR_TOKENS)`)
	fs.StringVar(&m.AuditorToken, "auditor-token", env("KIPASS_AUDITOR_TOKEN", ""), "bearer token that reads and verifies the audit log (KIPASS_AUDITOR_TOKEN)")
	logLevel := fs.String("log-level", env("KIPASS_LOG_LEVEL", "info"), "debug, info, warn or error (KIPASS_LOG_LEVEL)")
	fs.StringVar(&m.LogFormat, "log-format", env("KIPASS_LOG_FORMAT", "text"), "text or json (KIPASS_LOG_FORMAT)")
	var err error
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
	durVar(&m.PassTTL, "pass-ttl", "KIPASS_PASS_TTL", 30*time.Second, "lifetime of an online pass")
	durVar(&m.FactsTTL, "facts-ttl", "KIPASS_FACTS_TTL", 5*time.Minute, "registry facts older than this are refreshed and shown as stale")
	durVar(&m.MaxFactsAge, "max-facts-age", "KIPASS_MAX_FACTS_AGE", 72*time.Hour, "registry facts older than this are not minted from")
	durVar(&m.RegistryTimeout, "registry-timeout", "KIPASS_REGISTRY_TIMEOUT", 2*time.Second, "one registry call")
	durVar(&m.RetentionInterval, "retention-interval", "KIPASS_RETENTION_INTERVAL", time.Hour, "how often keys and mappings past retention are destroyed")
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
	switch {
	case m.DataDir == "":
		return usageErrorf("--data is required")
	case m.KeyPath == "":
		return usageErrorf("--key is required")
	case m.RegistryURL == "":
		return usageErrorf("--registry is required")
	case m.PassTTL < time.Second || m.PassTTL > 10*time.Minute:
		return usageErrorf("--pass-ttl: must be between 1s and 10m")
	case m.FactsTTL <= 0 || m.MaxFactsAge < m.FactsTTL:
		return usageErrorf("--facts-ttl must be positive and at most --max-facts-age")
	}
	if m.Investigators, err = parseNamedTokens(*inv); err != nil {
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

// parseNamedTokens parses "name:token,name2:token2".
func parseNamedTokens(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, tok, ok := strings.Cut(part, ":")
		if !ok || name == "" || tok == "" {
			return nil, fmt.Errorf("entry %d: want name:token", len(out)+1)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%q named twice", name)
		}
		out[name] = tok
	}
	return out, nil
}

// Run listens, opens the issuer and starts serving. It returns once the server is up;
// Close stops it.
func (m *issuerMain) Run(ctx context.Context) error {
	opts := &slog.HandlerOptions{Level: m.LogLevel}
	if m.LogFormat == "json" {
		m.logger = slog.New(slog.NewJSONHandler(m.env.Stderr, opts))
	} else {
		m.logger = slog.New(slog.NewTextHandler(m.env.Stderr, opts))
	}
	key, err := trust.ReadPrivateKey(m.KeyPath)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	// Listen first: a taken port is reported at once, before the database opens.
	if m.ln, err = net.Listen("tcp", m.Addr); err != nil {
		return err
	}
	client := registry.NewClient(m.RegistryURL, m.RegistryToken, nil)
	client.Timeout = m.RegistryTimeout
	m.svc, err = issuer.Open(issuer.Config{
		DataDir: m.DataDir, SigningKey: key, Facts: issuer.RegistryFacts(client), Verifier: m.Verifier,
		InvestigatorTokens: m.Investigators, AuditorToken: m.AuditorToken, Now: m.Now, Logger: m.logger,
		PassTTL: m.PassTTL, FactsTTL: m.FactsTTL, MaxFactsAge: m.MaxFactsAge, RegistryTimeout: m.RegistryTimeout,
		RetentionInterval: m.RetentionInterval,
	})
	if err != nil {
		m.ln.Close()
		return fmt.Errorf("--data: %w", err)
	}
	m.srv = &http.Server{
		Handler:           m.svc.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	m.serveCh = make(chan error, 1)
	go func() { m.serveCh <- m.srv.Serve(m.ln) }()
	m.logger.Info("issuer listening", "url", m.URL(), "wallet", m.URL()+"/wallet", "key_id", m.svc.KeyID())
	return nil
}

// URL returns the base URL of the running server.
func (m *issuerMain) URL() string { return "http://" + m.ln.Addr().String() }

// Close stops accepting, finishes the requests in flight within ShutdownTimeout, then
// stops the issuer's background jobs and closes its database.
func (m *issuerMain) Close() error {
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout)
		if err := m.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
		cancel()
		if err := <-m.serveCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		m.srv = nil
	}
	if m.svc != nil {
		if err := m.svc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close issuer: %w", err))
		}
		m.svc = nil
	}
	if m.logger != nil {
		m.logger.Info("issuer stopped")
	}
	return errors.Join(errs...)
}
