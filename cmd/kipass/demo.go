package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/trust"
	"github.com/kipass/kipass/web/console"
)

func init() {
	register("demo", command{
		Summary: "every service in one process with demo data (the quick start)",
		Run: func(ctx context.Context, env *Env, args []string) error {
			m := &demoMain{env: env}
			if err := m.ParseFlags(args); err != nil {
				return err
			}
			return m.Run(ctx)
		},
	})
}

// demoMain is `kipass demo`: an authority, an issuer key and a trust bundle made in the
// data directory on first start, demo passes minted and verified on the demo clock.
type demoMain struct {
	env          *Env
	Addr         string // central, the scanner and the console
	IssuerAddr   string // the issuer and the wallet
	RegistryAddr string // the immunization registry
	Data         string
	At           time.Time
	Once         bool
	rootKey      ed25519.PublicKey

	now       func() time.Time
	bundle    *trust.Bundle
	signed    []byte
	issuerKey ed25519.PrivateKey
}

// ParseFlags reads the command line, with KIPASS_* environment overrides.
func (m *demoMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	fs.StringVar(&m.Addr, "addr", envOr(m.env, "KIPASS_ADDR", "127.0.0.1:8080"), "listen address")
	fs.StringVar(&m.IssuerAddr, "issuer-addr", envOr(m.env, "KIPASS_ISSUER_ADDR", "127.0.0.1:8081"), "listen address of the issuer and wallet")
	fs.StringVar(&m.RegistryAddr, "registry-addr", envOr(m.env, "KIPASS_REGISTRY_ADDR", "127.0.0.1:8082"), "listen address of the registry")
	fs.StringVar(&m.Data, "data", envOr(m.env, "KIPASS_DATA", "kipass-data"), "data directory (one database file per service)")
	at := fs.String("at", envOr(m.env, "KIPASS_DEMO_AT", demo.Start.Format(time.RFC3339)), `where the demo clock starts, RFC 3339, or "now"`)
	fs.BoolVar(&m.Once, "once", false, "set up, show the demo passes and their decisions, and exit")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("%v", err)
	}
	if *at == "now" {
		m.At = time.Now()
	} else {
		t, err := parseTimeFlag("at", *at, time.Time{})
		if err != nil {
			return err
		}
		m.At = t
	}
	m.now = demo.Clock(m.At)
	return nil
}

// Run sets up the demo, shows its passes, and (unless Once) serves every service
// until ctx ends.
func (m *demoMain) Run(ctx context.Context) error {
	r, err := m.Start(ctx)
	if err != nil || r == nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(m.env.Stdout, "kipass demo: stopping")
	return r.Close()
}

// Start sets up the demo and starts the services; with Once it only shows the passes
// and returns a nil run.
func (m *demoMain) Start(ctx context.Context) (*demoRun, error) {
	if err := os.MkdirAll(m.Data, 0o700); err != nil {
		return nil, err
	}
	if err := m.setupAuthority(); err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	if err := m.showPasses(); err != nil || m.Once {
		return nil, err
	}
	r, err := m.startServices(ctx)
	if err != nil {
		return nil, err
	}
	r.printURLs(m)
	return r, nil
}

// mounts returns the web front ends central serves beside its API.
func (m *demoMain) mounts(issuerURL string) map[string]http.Handler {
	return map[string]http.Handler{
		console.Prefix: console.Handler(console.Config{IssuerURL: issuerURL}),
	}
}

// hasConsole reports whether the investigator console is mounted.
func (m *demoMain) hasConsole() bool { _, ok := m.mounts("")[console.Prefix]; return ok }

// setupAuthority makes (once) the authority, one issuer and the trust bundle under
// DATA/authority, and loads them.
func (m *demoMain) setupAuthority() error {
	dir := filepath.Join(m.Data, "authority")
	keyFile := filepath.Join(m.Data, "issuer", "issuer.key")
	bundleFile := filepath.Join(dir, authority.DefaultBundle)
	if _, err := os.Stat(bundleFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
			return err
		}
		a, err := authority.Init(dir)
		if err != nil {
			return err
		}
		// Valid from well before the demo clock, so that passes minted "in 2022" verify.
		from := time.Date(2021, 1, 1, 0, 0, 0, 0, kipass.KST)
		if _, _, err := a.AddIssuer("kipass 데모 발급기관", nil, from, time.Date(2031, 1, 1, 0, 0, 0, 0, kipass.KST), keyFile); err != nil {
			return err
		}
		signed, _, err := a.SignBundle(nil, from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(bundleFile, signed, 0o644); err != nil {
			return err
		}
	}
	root, err := trust.ReadPublicKey(filepath.Join(dir, authority.RootPubFile))
	if err != nil {
		return err
	}
	m.rootKey = root
	if m.signed, err = os.ReadFile(bundleFile); err != nil {
		return err
	}
	if m.bundle, err = trust.Verify(m.signed, root, nil); err != nil {
		return err
	}
	m.issuerKey, err = trust.ReadPrivateKey(keyFile)
	return err
}

// showPasses mints a pass for each demo visitor, shows the first as a QR code and
// prints what a gym's scanner decides for each.
func (m *demoMain) showPasses() error {
	sc, err := scanner.New(m.bundle)
	if err != nil {
		return err
	}
	w := m.env.Stdout
	now := m.now().Truncate(time.Second)
	kid := pass.KeyID(m.issuerKey.Public().(ed25519.PublicKey))
	place := kipass.Place{Category: "gym", Region: "seoul"}
	fmt.Fprintf(w, "kipass demo: the clock reads %s (KST); data in %s\n\n", now.In(kipass.KST).Format("2006-01-02 15:04:05"), m.Data)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "gym, seoul\tbasis\tvalid until\thistory\tvisitor")
	var first string
	for i, p := range demo.People() {
		text, err := pass.Sign(&pass.Claims{
			KeyID: kid, IssuedAt: now, Expiry: now.Add(pass.DefaultTTL), TokenID: pass.NewTokenID(),
			SRef: randomBytes(pass.SRefSize), DTag: randomBytes(pass.DTagSize), Holder: p.Holder,
		}, m.issuerKey)
		if err != nil {
			return err
		}
		if i == 0 {
			first = text
		}
		r := sc.Decide(text, place, 1, now)
		until := "-"
		if r.Decision.ValidUntil != nil {
			until = untilText(*r.Decision.ValidUntil)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Outcome, r.Decision.Basis, until, p.Story, p.Name)
	}
	tw.Flush()
	q, err := qrcode.New(first, qrcode.Medium)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s's pass (%d characters, QR version %d-M), valid for %s:\n%s\n%s\n", demo.People()[0].Name, len(first), q.VersionNumber, pass.DefaultTTL, first, q.ToSmallString(false))
	return nil
}

// untilText writes an end time as people say it: the end of a day is "24:00" of that
// day, not "00:00" of the next.
func untilText(t time.Time) string {
	t = t.In(kipass.KST)
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 {
		return t.Add(-time.Second).Format("2006-01-02") + " 24:00"
	}
	return t.Format("2006-01-02 15:04")
}
