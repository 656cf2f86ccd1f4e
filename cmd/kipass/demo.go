package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
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
	env  *Env
	Addr string
	Data string
	At   time.Time
	Once bool

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

// Run sets up the demo and shows its passes.
func (m *demoMain) Run(ctx context.Context) error {
	if err := m.setupAuthority(); err != nil {
		return fmt.Errorf("authority: %w", err)
	}
	return m.showPasses()
}

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
	fmt.Fprintln(tw, "visitor\thistory\tgym, seoul\tbasis\tvalid until")
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
			until = r.Decision.ValidUntil.In(kipass.KST).Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Story, r.Outcome, r.Decision.Basis, until)
	}
	tw.Flush()
	q, err := qrcode.New(first, qrcode.Medium)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s's pass (%d characters, QR version %d-M), valid for %s:\n%s\n%s\n", demo.People()[0].Name, len(first), q.VersionNumber, pass.DefaultTTL, first, q.ToSmallString(false))
	return nil
}
