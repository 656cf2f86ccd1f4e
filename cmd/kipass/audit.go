package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/trace"
)

func init() {
	register("audit", command{
		Summary: "oversight: verify the audit chains (verify), list who looked up what (report)",
		Run:     runAudit,
	})
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// auditMain is kipass audit verify|report.
type auditMain struct {
	env          *Env
	sub          string
	central      string
	token        string
	issuers      listFlag
	issuerTokens listFlag
	from, to     string
}

// auditLog is one service's audit log as the auditor sees it.
type auditLog struct {
	name   string
	client *kiphttp.Client
}

// ParseFlags reads the subcommand and its flags.
func (m *auditMain) ParseFlags(args []string) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "report") {
		return usageErrorf("usage: kipass audit verify|report --central URL --token T [--issuer URL --issuer-token T]... [--from T --to T]")
	}
	m.sub = args[0]
	fs := flag.NewFlagSet("kipass audit "+m.sub, flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	fs.StringVar(&m.central, "central", envOr(m.env, "KIPASS_CENTRAL", ""), "central's base URL (empty: skip central)")
	fs.StringVar(&m.token, "token", envOr(m.env, "KIPASS_AUDITOR_TOKEN", ""), "auditor token at central")
	fs.Var(&m.issuers, "issuer", "an issuer's base URL (repeat for each issuer)")
	fs.Var(&m.issuerTokens, "issuer-token", "the auditor token of each --issuer, in order (one token serves all)")
	fs.StringVar(&m.from, "from", "", "report: first time (RFC 3339 or YYYY-MM-DD, KST)")
	fs.StringVar(&m.to, "to", "", "report: end time, excluded (RFC 3339 or YYYY-MM-DD, KST)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if m.central == "" && len(m.issuers) == 0 {
		return usageErrorf("give --central and/or --issuer")
	}
	if len(m.issuers) > 0 && len(m.issuerTokens) != 1 && len(m.issuerTokens) != len(m.issuers) {
		return usageErrorf("give one --issuer-token, or one for each --issuer")
	}
	return nil
}

func (m *auditMain) logs() []auditLog {
	var out []auditLog
	if m.central != "" {
		out = append(out, auditLog{"central", kiphttp.NewClient(m.central, m.token)})
	}
	for i, u := range m.issuers {
		tok := m.issuerTokens[0]
		if len(m.issuerTokens) > 1 {
			tok = m.issuerTokens[i]
		}
		out = append(out, auditLog{"issuer " + u, kiphttp.NewClient(u, tok)})
	}
	return out
}

// Run runs the subcommand.
func (m *auditMain) Run(ctx context.Context) error {
	if m.sub == "verify" {
		return m.verify(ctx)
	}
	return m.report(ctx)
}

// verify checks every chain; it fails naming the first broken entry of each.
func (m *auditMain) verify(ctx context.Context) error {
	var broken []string
	for _, l := range m.logs() {
		var v struct {
			OK       bool   `json:"ok"`
			Entries  int64  `json:"entries"`
			BrokenAt int64  `json:"broken_at"`
			Message  string `json:"message"`
		}
		if err := l.client.Do(ctx, "GET", "/v1/audit/verify", nil, &v); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		if !v.OK {
			fmt.Fprintf(m.env.Stdout, "%s: BROKEN at entry %d: %s\n", l.name, v.BrokenAt, v.Message)
			broken = append(broken, fmt.Sprintf("%s at entry %d", l.name, v.BrokenAt))
			continue
		}
		fmt.Fprintf(m.env.Stdout, "%s: ok\n", l.name)
	}
	if len(broken) > 0 {
		return fmt.Errorf("audit chain broken: %s", strings.Join(broken, "; "))
	}
	return nil
}

// report lists every answered query of the window, all services merged in time order.
func (m *auditMain) report(ctx context.Context) error {
	q := url.Values{}
	for _, t := range []struct{ name, text string }{{"from", m.from}, {"to", m.to}} {
		if t.text == "" {
			continue
		}
		at, err := parseWhen(t.text)
		if err != nil {
			return usageErrorf("--%s: %v", t.name, err)
		}
		q.Set(t.name, at.Format(time.RFC3339))
	}
	type row struct {
		service string
		e       *kipass.AuditEntry
	}
	var rows []row
	for _, l := range m.logs() {
		var list kiphttp.AuditList
		if err := l.client.Do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &list); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		for _, e := range list.Entries {
			rows = append(rows, row{l.name, e})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].e.At.Before(rows[j].e.At) })
	table := [][]string{{"time (KST)", "service", "seq", "actor", "action", "case", "reason", "query"}}
	for _, r := range rows {
		query := r.e.Query
		if len(query) > 100 {
			query = query[:100] + "…"
		}
		table = append(table, []string{r.e.At.In(kipass.KST).Format("2006-01-02 15:04:05"), r.service, fmt.Sprint(r.e.Seq),
			r.e.Actor, r.e.Action, r.e.CaseID, r.e.Reason, query})
	}
	writeAligned(m.env.Stdout, table)
	fmt.Fprintf(m.env.Stdout, "\n%d queries\n", len(rows))
	return nil
}

// parseWhen reads RFC 3339 or a KST date.
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := kipass.ParseDate(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 or YYYY-MM-DD")
	}
	return d.Start(), nil
}

// writeAligned writes rows as columns aligned for double-width Hangul.
func writeAligned(w interface{ Write([]byte) (int, error) }, rows [][]string) {
	widths := map[int]int{}
	for _, r := range rows {
		for j, c := range r {
			widths[j] = max(widths[j], trace.Width(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for j, c := range r {
			b.WriteString(c)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-trace.Width(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	w.Write([]byte(b.String()))
}

func runAudit(ctx context.Context, env *Env, args []string) error {
	m := &auditMain{env: env}
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	return m.Run(ctx)
}
