package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/trace"
	"github.com/kipass/kipass/trust"
)

func init() {
	register("trace", command{
		Summary: "investigate a confirmed case: the people to call (investigators)",
		Run:     runTrace,
	})
}

// traceMain is kipass trace: flags, then the trace package's workflow.
type traceMain struct {
	env                    *Env
	central, centralToken  string
	issuerURL, issuerToken string
	issuerKeys             string
	sealKey                string
	caseID, reason         string
	phone, personID        string
	facility, from, to, at string
	days                   int
	before, after          time.Duration
	csvFile                string
}

// ParseFlags reads the command line, with KIPASS_* environment overrides for the
// service addresses and tokens (so that tokens need not appear in a process list).
func (m *traceMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("kipass trace", flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	fs.StringVar(&m.central, "central", envOr(m.env, "KIPASS_CENTRAL", "http://127.0.0.1:8080"), "central's base URL")
	fs.StringVar(&m.centralToken, "central-token", envOr(m.env, "KIPASS_CENTRAL_TOKEN", ""), "investigator token at central")
	fs.StringVar(&m.issuerURL, "issuer", envOr(m.env, "KIPASS_ISSUER", ""), "base URL of the case's issuer")
	fs.StringVar(&m.issuerToken, "issuer-token", envOr(m.env, "KIPASS_ISSUER_TOKEN", ""), "investigator token at the issuers")
	fs.StringVar(&m.issuerKeys, "issuer-keys", envOr(m.env, "KIPASS_ISSUER_KEYS", ""), "other issuers: KID=URL,... (visits of other key ids go to --issuer)")
	fs.StringVar(&m.sealKey, "seal-key", envOr(m.env, "KIPASS_SEAL_KEY", ""), "the authority's private sealing key file (authority/seal.key); it is read here, never sent")
	fs.StringVar(&m.caseID, "case-id", "", "case id (every query names it; required)")
	fs.StringVar(&m.reason, "reason", "", "reason of the investigation (audited; required)")
	fs.StringVar(&m.phone, "phone", "", "the case's phone number")
	fs.StringVar(&m.personID, "person-id", "", "the case's registry person id")
	fs.StringVar(&m.facility, "facility", "", "facility id of a venue-based case (with --from and --to)")
	fs.StringVar(&m.from, "from", "", "venue case: window start, RFC 3339")
	fs.StringVar(&m.to, "to", "", "venue case: window end, RFC 3339")
	fs.IntVar(&m.days, "days", trace.DefaultDays, "KST days back, today included")
	fs.DurationVar(&m.before, "before", kiphttp.DefaultCoBefore, "window before each case visit")
	fs.DurationVar(&m.after, "after", kiphttp.DefaultCoAfter, "window after each case visit")
	fs.StringVar(&m.csvFile, "csv", "", "also write the contact list as CSV to this file")
	fs.StringVar(&m.at, "at", "", "the investigation's clock, RFC 3339 (default: central's clock, as the demo's runs in 2022)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case m.issuerURL == "":
		return usageErrorf("--issuer is required")
	case m.sealKey == "":
		return usageErrorf("--seal-key is required: sealed phone numbers are opened here")
	case m.caseID == "":
		return usageErrorf("--case-id is required: every query names its case")
	case strings.TrimSpace(m.reason) == "":
		return usageErrorf("--reason is required: every query gives its reason")
	}
	return nil
}

// Run traces the case and prints the contact list.
func (m *traceMain) Run(ctx context.Context) error {
	key, err := trust.ReadRawKey(m.sealKey, seal.KeySize)
	if err != nil {
		return fmt.Errorf("sealing key: %w", err)
	}
	central := kiphttp.NewClient(m.central, m.centralToken)
	cfg := trace.Config{
		Central: central, Issuer: kiphttp.NewClient(m.issuerURL, m.issuerToken), SealKey: key,
		IssuersByKey: map[string]*kiphttp.Client{},
		Progress: func(step string) {
			fmt.Fprintf(m.env.Stderr, "… %s\n", step)
		},
	}
	for _, kv := range strings.Split(m.issuerKeys, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		kid, u, ok := strings.Cut(kv, "=")
		if !ok || kid == "" || u == "" {
			return usageErrorf("--issuer-keys: want KID=URL, got %q", kv)
		}
		cfg.IssuersByKey[kid] = kiphttp.NewClient(u, m.issuerToken)
	}
	c := trace.Case{ID: m.caseID, Reason: m.reason, Phone: m.phone, PersonID: m.personID, Facility: m.facility,
		Days: m.days, Before: m.before, After: m.after}
	for _, t := range []struct {
		flag, text string
		to         *time.Time
	}{{"from", m.from, &c.From}, {"to", m.to, &c.To}, {"at", m.at, &c.Now}} {
		if t.text == "" {
			continue
		}
		if *t.to, err = time.Parse(time.RFC3339, t.text); err != nil {
			return usageErrorf("--%s: want RFC 3339, e.g. 2022-01-27T12:00:00+09:00", t.flag)
		}
	}
	if c.Now.IsZero() {
		// The investigation's "today" is central's: the demo's clock is in 2022.
		if st, err := central.Status(ctx); err == nil && !st.ServerTime.IsZero() {
			c.Now = st.ServerTime
		}
	}
	start := time.Now()
	res, err := trace.Run(ctx, cfg, c)
	if errors.Is(err, trace.ErrNoCase) {
		return usageErrorf("give --phone, --person-id, or --facility with --from and --to")
	} else if err != nil {
		return err
	}
	fmt.Fprintf(m.env.Stderr, "… %d contacts in %s\n", len(res.Contacts), time.Since(start).Round(time.Millisecond))
	if err := trace.WriteTable(m.env.Stdout, res); err != nil {
		return err
	}
	if m.csvFile == "" {
		return nil
	}
	f, err := os.OpenFile(m.csvFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := trace.WriteCSV(f, res); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(m.env.Stderr, "… CSV written to %s\n", m.csvFile)
	return nil
}

func runTrace(ctx context.Context, env *Env, args []string) error {
	m := &traceMain{env: env}
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	return m.Run(ctx)
}
